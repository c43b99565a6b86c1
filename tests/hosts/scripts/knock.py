"""A stranger's knocks, run on a host that is not a rank: a forged event on the event
channel, and a read of the rendezvous (Horovod: HTTP; torch: a store client).

    python knock.py KNOCK_JSON BACKEND   → prints events=closed|open, guard=refused|...
"""
import http.client
import json
import socket
import sys


def closed_at_once(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def main(path: str, backend: str) -> None:
    knock = json.load(open(path))
    host, port = knock["events"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b'{"type": "epoch", "rank": 0, "token": "a-guess", "epoch": 99}\n')
        print("events=" + ("closed" if closed_at_once(s) else "open"))
    host, port = knock["guard"].rsplit(":", 1)
    if backend == "horovod":
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/global/0")
        print(f"guard={conn.getresponse().status}")
    else:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            print("guard=" + ("closed" if closed_at_once(s) else "open"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
