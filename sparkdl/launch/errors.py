"""Errors a distributed run raises on the driver (picklable, so ranks can raise them too)."""
from __future__ import annotations

import enum
import time
from typing import List, Optional


class FailureKind(str, enum.Enum):
    """Why an attempt failed; :class:`sparkdl.launch.failures.RetryPolicy` decides from it."""

    USER = "user"                      # the user's code or data raised: a retry would repeat it
    PEER = "peer"                      # a collective broke because another rank went away
    INFRASTRUCTURE = "infrastructure"  # Spark lost an executor or a Python worker
    TIMEOUT = "timeout"                # a bounded wait ran out


class LaunchError(RuntimeError):
    """The barrier stage could not be started (not enough slots, bad settings)."""


class TrainingError(RuntimeError):
    """A rank failed. Carries the rank, its exception, the tail of its traceback, the kind
    of failure and when it happened by the failing rank's clock."""

    def __init__(self, rank: Optional[int], exception: str, traceback_tail: str = "",
                 kind: FailureKind = FailureKind.USER, time_: Optional[float] = None):
        self.rank = rank
        self.exception = exception
        self.traceback_tail = traceback_tail
        self.kind = FailureKind(kind)
        self.time = time.time() if time_ is None else time_
        self.attempts: List[dict] = []  # filled by the driver's supervisor
        who = f"rank {rank}" if rank is not None else "a rank (which one Spark did not say)"
        msg = f"{who} failed: {exception}"
        if traceback_tail:
            msg += "\n--- traceback tail of " + who + " ---\n" + traceback_tail.rstrip()
        super().__init__(msg)

    def __reduce__(self):
        return (TrainingError, (self.rank, self.exception, self.traceback_tail, self.kind, self.time))


class TrainingTimeoutError(TrainingError):
    """A bounded wait ran out: ranks never arrived, or stopped reporting progress."""

    def __init__(self, message: str, missing_ranks: Optional[List[int]] = None):
        self.missing_ranks = missing_ranks or []
        RuntimeError.__init__(self, message)
        self.rank, self.exception, self.traceback_tail, self.attempts = None, message, "", []
        self.kind, self.time = FailureKind.TIMEOUT, time.time()

    def __reduce__(self):
        return (TrainingTimeoutError, (self.exception, self.missing_ranks))
