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


def _store(port, host=RANK, timeout_s=5):
    from datetime import timedelta

    import torch.distributed as dist

    return dist.TCPStore(host, port, 2, False, timedelta(seconds=timeout_s))


def test_torchs_own_store_listens_on_every_address_for_anyone():
    from datetime import timedelta

    import torch.distributed as dist

    server = dist.TCPStore(RANK, 0, 2, True, timedelta(seconds=5), wait_for_workers=False)
    server.set("rank0", "address")
    assert _store(server.port, host=STRANGER).get("rank0") == b"address"  # no address, no token checked


def test_sparkdls_store_is_on_loopback_behind_a_guard_that_admits_the_ranks_only():
    import socket
    from datetime import timedelta

    import torch.distributed as dist

    from sparkdl.training.backends.rendezvous import GuardedForwarder, loopback_listener

    listener = loopback_listener()
    server = dist.TCPStore("127.0.0.1", listener.getsockname()[1], 2, True, timedelta(seconds=5),
                           wait_for_workers=False, master_listen_fd=listener.detach())
    guard = GuardedForwarder(RANK, {RANK}, server.port)
    try:
        server.set("rank0", "address")
        assert _store(guard.port).get("rank0") == b"address"  # a rank, through the guard
        with socket.create_connection((RANK, guard.port), source_address=(STRANGER, 0), timeout=5) as s:
            s.settimeout(5)
            assert s.recv(1) == b""  # a stranger: closed at once, nothing read
        assert guard.refused == [STRANGER]
        with pytest.raises(ConnectionRefusedError):  # the store itself: loopback only
            socket.create_connection((STRANGER, server.port), timeout=5)
    finally:
        guard.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((RANK, guard.port), timeout=5)
