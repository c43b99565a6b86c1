"""The backends' rendezvous, reachable only by this job's ranks.

**Horovod's Gloo rendezvous**, and only while the ranks need it.

Horovod's own ``RendezvousServer`` is a plain HTTP key-value store bound to every
interface: anyone who can reach the port can read, overwrite or delete the keys ranks
exchange while ``hvd.init()`` builds its Gloo contexts. Its C++ client cannot carry a
secret, so sparkdl closes the server in the three ways left:

- it listens only on the address the ranks connect to (rank 0's host as Spark knows it);
- it answers only the job's rank hosts (the barrier tasks' addresses), 403 to anyone else;
- rank 0 stops it as soon as every rank reports that ``hvd.init()`` returned (Gloo uses
  the rendezvous only while building its contexts), instead of at the end of training.

Horovod's server and request handler classes do the serving; this module only adds the
checks around them.

**torch.distributed's ``TCPStore``** has no authentication either, and it binds every
interface. Rank 0's store listens on loopback only (a socket sparkdl binds and hands to
it), and :class:`GuardedForwarder` carries the job's rank hosts, and nobody else, from
rank 0's address to it for as long as the group lives.
"""
from __future__ import annotations

import logging
import socket
import socketserver
import threading
from typing import Iterable, List, Optional

log = logging.getLogger(__name__)

FORBIDDEN = 403


def _handler_class():
    from horovod.runner.http.http_server import RendezvousHandler

    class RanksOnlyHandler(RendezvousHandler):
        """Horovod's handler, for the job's rank hosts only."""

        def _allowed(self) -> bool:
            if _admit(self.server, self.client_address[0], f"a rendezvous request ({self.command} {self.path})"):
                return True
            self.send_status_code(FORBIDDEN)
            return False

        def do_GET(self):
            if self._allowed():
                super().do_GET()

        def do_PUT(self):
            if self._allowed():
                super().do_PUT()

        def do_DELETE(self):
            if self._allowed():
                super().do_DELETE()

    return RanksOnlyHandler


def _admit(server, host: str, what: str) -> bool:
    """Whether ``host`` is one of ``server.allowed_hosts``; if not, it is recorded in
    ``server.refused`` and logged."""
    if host in server.allowed_hosts:
        return True
    server.refused.append(host)
    log.warning("refused %s from %s (not a rank of this job)", what, host)
    return False


class _GuardedServer:
    """A socketserver for the ``allowed_hosts`` (and ``bind_host``) only, served from its own
    thread until :meth:`stop`."""

    def __init__(self, server, bind_host: str, allowed_hosts: Iterable[str], name: str):
        server.allowed_hosts = frozenset(allowed_hosts) | {bind_host}
        server.refused = []
        self._server = server
        self.host, self.port = server.server_address[:2]
        self._thread: Optional[threading.Thread] = threading.Thread(target=server.serve_forever, name=name,
                                                                    daemon=True)
        self._thread.start()

    @property
    def refused(self) -> List[str]:
        """Client addresses refused so far."""
        return list(self._server.refused)

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class GuardedRendezvous(_GuardedServer):
    """Horovod's rendezvous server on ``bind_host`` for the ``allowed_hosts`` only."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str]):
        from horovod.runner.http.http_server import RendezvousHTTPServer

        super().__init__(RendezvousHTTPServer((bind_host, 0), _handler_class(), False), bind_host, allowed_hosts,
                         "sparkdl-rendezvous")

    def init(self, hosts: str, size: int) -> None:
        """Load the host plan (Horovod's ``host:slots,...`` string) that scopes the keys."""
        from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts

        self._server.init(get_host_assignments(parse_hosts(hosts), size))


#: Bytes moved per read while forwarding a store connection.
_CHUNK = 1 << 16


class GuardedForwarder(_GuardedServer):
    """Listens on ``bind_host`` and forwards each connection from ``allowed_hosts`` to
    ``127.0.0.1:target_port``; a connection from anywhere else is closed at once and logged.
    Stopping it ends accepting; forwarded connections end with their ends."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str], target_port: int):
        class Pump(socketserver.BaseRequestHandler):
            def handle(self):
                upstream = socket.create_connection(("127.0.0.1", target_port), timeout=10)
                upstream.settimeout(None)
                back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True,
                                        name="sparkdl-store-forward")
                back.start()
                _pump(self.request, upstream)
                back.join()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def verify_request(self, request, client_address) -> bool:
                return _admit(self, client_address[0], "a connection to the torch.distributed store")

        super().__init__(Server((bind_host, 0), Pump), bind_host, allowed_hosts, "sparkdl-store-guard")


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until either closes, then close both."""
    try:
        while True:
            data = source.recv(_CHUNK)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def loopback_listener() -> socket.socket:
    """A listening socket on 127.0.0.1 (a free port), for a store that only this host reaches."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock
