"""Horovod's Gloo rendezvous, reachable only by this job's ranks and only while they need it.

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
"""
from __future__ import annotations

import logging
import threading
from typing import Iterable, List, Optional

log = logging.getLogger(__name__)

FORBIDDEN = 403


def _handler_class():
    from horovod.runner.http.http_server import RendezvousHandler

    class RanksOnlyHandler(RendezvousHandler):
        """Horovod's handler, for the job's rank hosts only."""

        def _allowed(self) -> bool:
            host = self.client_address[0]
            if host in self.server.allowed_hosts:
                return True
            self.server.refused.append(host)
            log.warning("refused a rendezvous request from %s (not a rank of this job): %s %s", host,
                        self.command, self.path)
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


class GuardedRendezvous:
    """Horovod's rendezvous server on ``bind_host`` for the ``allowed_hosts`` only."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str]):
        from horovod.runner.http.http_server import RendezvousHTTPServer

        self._httpd = RendezvousHTTPServer((bind_host, 0), _handler_class(), False)
        self._httpd.allowed_hosts = frozenset(allowed_hosts) | {bind_host}
        self._httpd.refused = []
        self.host, self.port = self._httpd.server_address[:2]
        self._thread: Optional[threading.Thread] = threading.Thread(
            target=self._httpd.serve_forever, name="sparkdl-rendezvous", daemon=True)
        self._thread.start()

    @property
    def refused(self) -> List[str]:
        """Client addresses refused so far."""
        return list(self._httpd.refused)

    def init(self, hosts: str, size: int) -> None:
        """Load the host plan (Horovod's ``host:slots,...`` string) that scopes the keys."""
        from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts

        self._httpd.init(get_host_assignments(parse_hosts(hosts), size))

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self._thread is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> "GuardedRendezvous":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
