"""File locks held for a driver's life: ``flock``, so the operating system drops one when
its process dies, however it dies; the file names the holder for the error a second
driver sees."""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import IO, Iterator, Optional

from sparkdl.core.errors import LakeError

#: How often a driver retries a staging run's lock while someone probes it.
LOCK_RETRY_S = 0.01


def try_flock(f) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


class DriverLock:
    """An exclusive lock on a file, held while its driver lives; the file names the holder."""

    def __init__(self, path: Path):
        self.path = path
        self._file: Optional[IO[str]] = None

    def holder(self) -> str:
        """Who holds (or last held) the lock: ``host pid N``."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return "?"

    def acquire(self, wait_s: float = 0.0) -> bool:
        """Take the lock if nobody holds it, trying for up to ``wait_s`` (another driver
        checking whether the run is abandoned holds it for an instant); True when taken."""
        f = open(self.path, "a+")
        deadline = time.monotonic() + wait_s
        while not try_flock(f):
            if time.monotonic() >= deadline:
                f.close()
                return False
            time.sleep(LOCK_RETRY_S)
        f.seek(0)
        f.truncate()
        f.write(f"{socket.gethostname()} pid {os.getpid()}\n")
        f.flush()
        self._file = f
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


@contextlib.contextmanager
def held(path: Path, what: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lock at ``path`` for a block; a :class:`LakeError` naming ``what`` and the
    holder when another driver has it for longer than ``wait_s``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = DriverLock(path)
    if not lock.acquire(wait_s):
        raise LakeError(f"{what} is held by another driver ({lock.holder()}); wait for it to finish")
    try:
        yield
    finally:
        lock.release()
