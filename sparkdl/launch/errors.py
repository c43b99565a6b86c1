"""Errors a distributed run raises on the driver (picklable, so ranks can raise them too)."""
from __future__ import annotations

from typing import List, Optional


class LaunchError(RuntimeError):
    """The barrier stage could not be started (not enough slots, bad settings)."""


class TrainingError(RuntimeError):
    """A rank failed. Carries the rank, its exception and the tail of its traceback."""

    def __init__(self, rank: Optional[int], exception: str, traceback_tail: str = ""):
        self.rank = rank
        self.exception = exception
        self.traceback_tail = traceback_tail
        self.attempts: List[dict] = []  # filled by the driver's supervisor
        who = f"rank {rank}" if rank is not None else "a rank (which one Spark did not say)"
        msg = f"{who} failed: {exception}"
        if traceback_tail:
            msg += "\n--- traceback tail of " + who + " ---\n" + traceback_tail.rstrip()
        super().__init__(msg)

    def __reduce__(self):
        return (TrainingError, (self.rank, self.exception, self.traceback_tail))


class TrainingTimeoutError(TrainingError):
    """A bounded wait ran out: ranks never arrived, or stopped reporting progress."""

    def __init__(self, message: str, missing_ranks: Optional[List[int]] = None):
        self.missing_ranks = missing_ranks or []
        RuntimeError.__init__(self, message)
        self.rank, self.exception, self.traceback_tail, self.attempts = None, message, "", []

    def __reduce__(self):
        return (TrainingTimeoutError, (self.exception, self.missing_ranks))
