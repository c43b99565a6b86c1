"""Live events from ranks to the driver: progress, logs, and failures as they happen.

The driver runs a small TCP server (JSON lines, one per event, each carrying a per-run
token); every rank connects once. A failure reaches the driver at once, with its
traceback tail, instead of after Spark has torn the stage down. Standard library only:
both halves run anywhere.

The same channel carries the launch's small exchanges (rank 0's rendezvous port, "every
rank has finished"): a rank ``put``s a value and others ``get`` it, blocking until it is
there. Spark's own ``allGather``/``barrier`` would do, but each call polls once a second.

Where executors cannot connect to the driver (a Spark Connect client behind NAT, a
laptop, a notebook service), a rank writes the same lines to a spool file in the lake
instead (``<spool>/<rank>.jsonl``), and the driver follows the spool directory
(:class:`SpoolFollower`) as well as the socket: the watcher sees one stream either way.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import queue
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from sparkdl.core.errors import ExchangeError

log = logging.getLogger(__name__)

_MAX_LINE = 1 << 20


class EventType(str, enum.Enum):
    """Every kind of message on the channel. The first six are events the driver queues;
    ``PUT``/``GET`` are the launch's value exchanges and never reach the queue."""

    STARTED = "started"
    LOG = "log"
    #: Rank 0's step within the epoch, every ``progress.interval_s``.
    PROGRESS = "progress"
    EPOCH = "epoch"
    ERROR = "error"
    DONE = "done"
    PUT = "put"
    GET = "get"


@dataclass(frozen=True)
class Event:
    """One message from a rank: its type, the rank, the rank's clock, and its fields."""

    type: EventType
    rank: Optional[int] = None
    time: float = 0.0
    fields: Dict[str, Any] = field(default_factory=dict)
    #: The driver's clock when it arrived (set by the server).
    received: Optional[float] = None

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    def encode(self, token: str) -> bytes:
        """One JSON line carrying the run's token."""
        body = {"type": self.type.value, "rank": self.rank, "time": self.time, "token": token, **self.fields}
        return (json.dumps(body, default=str) + "\n").encode()

    @classmethod
    def decode(cls, line: bytes, token: str) -> Optional["Event"]:
        """The event in ``line``, or None (with a debug line) for anything malformed, of an
        unknown type, or without the run's token."""
        if len(line) > _MAX_LINE:
            log.debug("dropped an event line of %d bytes", len(line))
            return None
        try:
            body = json.loads(line)
            if not isinstance(body, dict) or body.pop("token", None) != token:
                return None
            kind = EventType(body.pop("type", None))
        except ValueError as e:  # bad JSON or an unknown type
            log.debug("dropped an event line (%s)", e)
            return None
        rank = body.pop("rank", None)
        return cls(kind, rank if isinstance(rank, int) else None, float(body.pop("time", 0.0) or 0.0), body)


class SpoolFollower:
    """Driver side of the spool: reads the lines ranks appended to ``<dir>/*.jsonl`` since
    the last :meth:`poll` (a line still being written waits for its newline)."""

    def __init__(self, directory: str, token: str):
        self.dir = Path(directory)
        self.token = token
        self._offsets: Dict[str, int] = {}
        self._partial: Dict[str, bytes] = {}
        self._lock = threading.Lock()

    def poll(self) -> list:
        """The complete events appended since the last call, file by file."""
        out = []
        with self._lock:
            try:
                files = sorted((p for p in os.scandir(self.dir) if p.name.endswith(".jsonl")), key=lambda p: p.name)
            except FileNotFoundError:
                return out
            for entry in files:
                offset = self._offsets.get(entry.name, 0)
                try:
                    with open(entry.path, "rb") as f:
                        f.seek(offset)
                        data = f.read()
                except OSError as e:  # a file removed under us: nothing more comes from it
                    log.debug("event spool %s: %s", entry.path, e)
                    continue
                self._offsets[entry.name] = offset + len(data)
                *lines, rest = (self._partial.pop(entry.name, b"") + data).split(b"\n")
                if rest:
                    self._partial[entry.name] = rest
                out += [e for e in (Event.decode(line, self.token) for line in lines if line) if e is not None]
        return out


class EventServer:
    """Driver side: receives events into a queue. Use as a context manager."""

    def __init__(self, host: str, token: str, advertise: Optional[str] = None, spool: Optional[str] = None):
        """Listen on ``host`` (e.g. 0.0.0.0); ranks connect to ``advertise`` (default ``host``).
        With ``spool``, also follow the events ranks that cannot connect write there."""
        self.token = token
        #: Addresses of connections closed for sending something without the launch's token.
        self.refused: list = []
        self.events: "queue.Queue[Event]" = queue.Queue()
        self._spool = SpoolFollower(spool, token) if spool else None
        self._values: Dict[str, Any] = {}
        self._values_changed = threading.Condition()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for raw in self.rfile:
                    event = Event.decode(raw, outer.token)
                    if event is None:  # only a rank of this launch holds the token
                        outer.refused.append(self.client_address[0])
                        log.warning("refused a connection to the event channel from %s: it sent a line without "
                                    "this launch's token", self.client_address[0])
                        return
                    if event.type is EventType.PUT:
                        outer._put(str(event.get("key")), event.get("value"))
                    elif event.type is EventType.GET:
                        value = outer._wait_for(str(event.get("key")), float(event.get("timeout_s", 60)))
                        self.wfile.write((json.dumps({"key": event.get("key"), "value": value}) + "\n").encode())
                        self.wfile.flush()
                    else:
                        outer.events.put(dataclasses.replace(event, received=time.time()))

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

    def _put(self, key: str, value: Any) -> None:
        with self._values_changed:
            self._values[key] = value
            self._values_changed.notify_all()

    def _wait_for(self, key: str, timeout_s: float) -> Any:
        with self._values_changed:
            self._values_changed.wait_for(lambda: key in self._values, timeout=timeout_s)
            return self._values.get(key)

    def get(self, timeout: float) -> Optional[Event]:
        """Next event, or None after ``timeout`` seconds."""
        if self._spool is not None:
            for event in self._spool.poll():
                self.events.put(dataclasses.replace(event, received=time.time()))
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None


#: How long a rank tries to connect to the driver's events: with nowhere else to send them,
#: and with a spool in the lake to fall back to.
CONNECT_TIMEOUT_S = 10.0
SPOOLED_CONNECT_TIMEOUT_S = 5.0


class EventClient:
    """Rank side: sends events to the driver (never raises: progress is best effort), and
    exchanges launch values through it (raises :class:`ExchangeError`: a launch cannot go on)."""

    def __init__(self, address: Optional[str], token: str, rank: int, connect_timeout_s: Optional[float] = None,
                 spool: Optional[str] = None):
        """Connect to the driver at ``address``; where that fails, append to a file in
        ``spool`` (the driver follows it) or, without one, only log. The connection is tried
        for ``connect_timeout_s``: by default shorter when there is a spool to fall back to."""
        if connect_timeout_s is None:
            connect_timeout_s = SPOOLED_CONNECT_TIMEOUT_S if spool else CONNECT_TIMEOUT_S
        self.rank = rank
        self.token = token
        self.address = address
        self._timeout_s = connect_timeout_s
        self._sock: Optional[socket.socket] = None
        self._spool_dir = spool
        self._spool = None
        self._lock = threading.Lock()
        if address:
            host, port = address.rsplit(":", 1)
            try:
                self._sock = socket.create_connection((host, int(port)), timeout=connect_timeout_s)
                self._sock.settimeout(connect_timeout_s)
            except OSError as e:
                self._fall_back(f"cannot reach the driver's event server at {address} ({e})")
        else:
            self._fall_back("has no driver address to send events to")

    @property
    def spooling(self) -> bool:
        """True when events go to the lake's spool instead of the driver's socket."""
        return self._spool is not None

    def _fall_back(self, why: str) -> None:
        if self._spool_dir:
            os.makedirs(self._spool_dir, exist_ok=True)
            self._spool = open(os.path.join(self._spool_dir, f"{self.rank}.jsonl"), "ab")
            log.warning("rank %d %s; writing events to %s for the driver to follow", self.rank, why, self._spool.name)
        else:
            log.warning("rank %d %s; progress will only show in executor logs", self.rank, why)

    def send(self, type: EventType, **fields: Any) -> None:
        event = Event(EventType(type), self.rank, time.time(), fields)
        line = event.encode(self.token)
        with self._lock:
            if self._sock is not None:
                try:
                    self._sock.sendall(line)
                    return
                except OSError as e:
                    self._sock = None
                    self._fall_back(f"lost the driver's event server ({e})")
            if self._spool is not None:
                try:
                    self._spool.write(line)
                    self._spool.flush()
                    return
                except OSError as e:
                    log.warning("rank %d cannot write its event spool (%s)", self.rank, e)
            log.info("event %s from rank %s: %s", event.type.value, self.rank, fields)

    def _require_connection(self) -> None:
        if self._sock is None:
            raise ExchangeError(
                f"rank {self.rank} cannot reach the driver's event server at {self.address}: executors must reach "
                "the driver (check spark.driver.host, spark.driver.bindAddress and firewalls)")

    def put(self, key: str, value: Any) -> None:
        self._require_connection()
        self.send(EventType.PUT, key=key, value=value)

    def get_value(self, key: str, timeout_s: float) -> Any:
        """The value some rank ``put`` under ``key``; waits up to ``timeout_s`` for it."""
        self._require_connection()
        with self._lock:
            try:
                self._sock.settimeout(timeout_s + 10)
                request = Event(EventType.GET, self.rank, time.time(), {"key": key, "timeout_s": timeout_s})
                self._sock.sendall(request.encode(self.token))
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = self._sock.recv(65536)
                    if not chunk:
                        raise ExchangeError(f"the driver closed the event channel while rank {self.rank} "
                                            f"waited for {key!r}")
                    reply += chunk
            except OSError as e:
                raise ExchangeError(f"rank {self.rank} lost the driver's event server waiting for {key!r}: {e}")
            finally:
                if self._sock is not None:
                    self._sock.settimeout(self._timeout_s)
        value = json.loads(reply)["value"]
        if value is None:
            raise ExchangeError(f"rank {self.rank} waited {timeout_s:.0f}s for {key!r} from another rank")
        return value

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
