"""Live events from ranks to the driver: progress, logs, and failures as they happen.

The driver runs a small TCP server (JSON lines, one per event, each carrying a per-run
token); every rank connects once. A failure reaches the driver at once, with its
traceback tail, instead of after Spark has torn the stage down. Standard library only:
both halves run anywhere.
"""
from __future__ import annotations

import json
import logging
import queue
import socket
import socketserver
import threading
import time
from typing import Any, Dict, Optional

log = logging.getLogger(__name__)

_MAX_LINE = 1 << 20


class EventServer:
    """Driver side: receives events into a queue. Use as a context manager."""

    def __init__(self, host: str, token: str, advertise: Optional[str] = None):
        """Listen on ``host`` (e.g. 0.0.0.0); ranks connect to ``advertise`` (default ``host``)."""
        self.token = token
        self.events: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for raw in self.rfile:
                    if len(raw) > _MAX_LINE:
                        continue
                    try:
                        event = json.loads(raw)
                    except ValueError:
                        continue
                    if isinstance(event, dict) and event.pop("token", None) == outer.token:
                        event.setdefault("received", time.time())
                        outer.events.put(event)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, 0), Handler)
        self.host = advertise or host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="sparkdl-events", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> "EventServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def get(self, timeout: float) -> Optional[Dict[str, Any]]:
        """Next event, or None after ``timeout`` seconds."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None


class EventClient:
    """Rank side: sends events to the driver. Never raises: progress is best effort."""

    def __init__(self, address: Optional[str], token: str, rank: int, connect_timeout_s: float = 10.0):
        self.rank = rank
        self.token = token
        self._sock: Optional[socket.socket] = None
        self._lock = threading.Lock()
        if address:
            host, port = address.rsplit(":", 1)
            try:
                self._sock = socket.create_connection((host, int(port)), timeout=connect_timeout_s)
                self._sock.settimeout(connect_timeout_s)
            except OSError as e:
                log.warning("rank %d cannot reach the driver's event server at %s (%s); "
                            "progress will only show in executor logs", rank, address, e)

    def send(self, type: str, **fields: Any) -> None:
        event = {"type": type, "rank": self.rank, "time": time.time(), "token": self.token, **fields}
        line = (json.dumps(event, default=str) + "\n").encode()
        if self._sock is None:
            log.info("event %s", {k: v for k, v in event.items() if k != "token"})
            return
        with self._lock:
            try:
                self._sock.sendall(line)
            except OSError as e:
                log.warning("rank %d lost the driver's event server (%s)", self.rank, e)
                self._sock = None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
