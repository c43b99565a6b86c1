"""The Gloo rendezvous a stranger can touch today (Horovod's own server), and the one
sparkdl runs: bound to the ranks' address, for the ranks only, closed after hvd.init()."""
import http.client

import pytest

from sparkdl.training.backends.rendezvous import GuardedRendezvous

RANK, STRANGER = "127.0.0.1", "127.0.0.2"  # two loopback addresses: a rank's host and another one


def _request(port, method, path, body=None, source=STRANGER, host=RANK):
    conn = http.client.HTTPConnection(host, port, timeout=5, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers={"Content-Length": str(len(body or b""))})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_horovods_own_rendezvous_lets_a_stranger_read_overwrite_and_delete_keys():
    from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts
    from horovod.runner.http.http_server import RendezvousServer

    server = RendezvousServer()
    port = server.start()
    try:
        server.init(get_host_assignments(parse_hosts("localhost:2"), 2))
        assert _request(port, "PUT", "/global/0", b"rank-0-address", source=RANK)[0] == 200
        assert _request(port, "GET", "/global/0") == (200, b"rank-0-address")  # read by a stranger
        assert _request(port, "PUT", "/global/0", b"attacker")[0] == 200  # and overwritten
        assert _request(port, "GET", "/global/0", source=RANK) == (200, b"attacker")
        assert _request(port, "DELETE", "/other/0")[0] == 200
        assert _request(port, "GET", "/global/0", host=STRANGER)[0] == 200  # it listens on every address
    finally:
        server.stop()


def test_sparkdls_rendezvous_refuses_strangers_and_closes():
    with GuardedRendezvous(RANK, {RANK}) as server:
        server.init("localhost:2", 2)
        port = server.port
        assert server.host == RANK
        assert _request(port, "PUT", "/global/0", b"rank-0-address", source=RANK)[0] == 200
        assert _request(port, "GET", "/global/0", source=RANK) == (200, b"rank-0-address")
        for method, body in (("GET", None), ("PUT", b"attacker"), ("DELETE", None)):
            assert _request(port, method, "/global/0", body)[0] == 403
        assert _request(port, "GET", "/global/0", source=RANK) == (200, b"rank-0-address")  # untouched
        assert server.refused == [STRANGER] * 3
        with pytest.raises(ConnectionRefusedError):  # bound to the ranks' address only
            _request(port, "GET", "/global/0", source=RANK, host=STRANGER)
        server.stop()
        with pytest.raises(ConnectionRefusedError):  # closed once the ranks are initialized
            _request(port, "GET", "/global/0", source=RANK)
