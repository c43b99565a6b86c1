"""What kind of failure ended an attempt, and whether another attempt can help.

A failure is classified where it is made, by whoever knows the most about it:
- the rank task knows whether the user's function raised (a user error, unless the
  exception is a collective broken because a peer died) or the launch around it failed;
- the driver knows when Spark lost an executor or a Python worker, and when one of its
  bounded waits ran out.

:class:`RetryPolicy` then decides from the kind and the attempt alone, so it is tested
case by case without Spark. Among several ranks' errors, the root cause is the earliest
by the ranks' own clocks that is not a peer's reaction to it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import FrozenSet, Sequence

from sparkdl.core.errors import ExchangeError, FailureKind, TrainingError

#: Exception text of a collective that broke because another rank went away.
PEER_MARKERS = ("HorovodInternalError", "Horovod has been shut down", "Connection closed by peer",
                "Connection reset by peer", "[enforce fail at", "Gloo", "gloo", "DistBackendError",
                "DistNetworkError", "NCCL communicator was aborted")
#: How an allocation that failed reads: Python's, and torch's CPU allocator's (whose text
#: also carries a peer marker). Another attempt of the same job fails the same way.
_OUT_OF_MEMORY = ("MemoryError", "can't allocate memory", "DefaultCPUAllocator: not enough memory")
#: Exceptions in the launch around the user's function that no retry can fix.
_SETUP_ERRORS = ("ImportError", "ModuleNotFoundError")


def classify_rank_exception(exc: BaseException, in_user_code: bool) -> FailureKind:
    """The kind of an exception raised on a rank: inside the user's function (``in_user_code``)
    or in the launch around it (rendezvous, joining the group)."""
    name = type(exc).__name__
    text = f"{name}: {exc}"
    if any(m in text for m in _OUT_OF_MEMORY):
        return FailureKind.USER
    if isinstance(exc, ExchangeError) or any(m in text for m in PEER_MARKERS):
        return FailureKind.PEER  # the rendezvous or a collective lost another rank
    if in_user_code or name in _SETUP_ERRORS:
        return FailureKind.USER
    return FailureKind.INFRASTRUCTURE


#: What to change when a rank runs out of memory (named in every such error).
MEMORY_FIX = ("raise spark.executor.pyspark.memory, or split the model across ranks with train.strategy: fsdp or "
              "pipeline, with train.launch.release_memory: true (docs/parallelism.md)")


def memory_hint(exc: BaseException, environ=None) -> str:
    """For an allocation that failed on a rank: which limit it hit and what to change (''
    for any other exception)."""
    import os

    chain, seen = [], exc
    while seen is not None and len(chain) < 8:  # a pipeline stage wraps the allocator's error in its own
        chain.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    if not any(m in text for text in chain for m in _OUT_OF_MEMORY):
        return ""
    limit = (environ if environ is not None else os.environ).get("PYSPARK_EXECUTOR_MEMORY_MB")
    where = (f"this rank's Python worker may use at most {limit} MiB (spark.executor.pyspark.memory)" if limit
             else "this rank's host is out of memory (spark.executor.pyspark.memory is unset)")
    return f"out of memory: {where}; {MEMORY_FIX}"


def classify_spark_failure(python_exception: str = "") -> FailureKind:
    """The kind of a failure that only Spark reported (no rank got its error out). With a
    Python exception line, that exception's kind; without one, Spark lost the process a
    rank ran in (a lost executor, a Python worker that exited or was killed)."""
    if python_exception:
        return FailureKind.PEER if any(m in python_exception for m in PEER_MARKERS) else FailureKind.USER
    return FailureKind.INFRASTRUCTURE


def root_cause(errors: Sequence[TrainingError]) -> TrainingError:
    """The earliest error (by the rank's own clock) that is not a peer symptom; when every
    error is a symptom (the cause died without a word), the earliest of them."""
    causes = [e for e in errors if e.kind is not FailureKind.PEER] or list(errors)
    return min(causes, key=lambda e: e.time)


class Decision(enum.Enum):
    RETRY = "retry"
    RAISE = "raise"


@dataclass(frozen=True)
class RetryPolicy:
    """Retry failures that a fresh attempt from the last checkpoint can get past (a dead
    peer, lost infrastructure, a timeout) up to ``max_attempts``; raise the rest at once."""

    max_attempts: int = 3
    retry_kinds: FrozenSet[FailureKind] = frozenset({FailureKind.PEER, FailureKind.INFRASTRUCTURE,
                                                     FailureKind.TIMEOUT})

    def decide(self, error: TrainingError, attempt: int) -> Decision:
        if error.kind in self.retry_kinds and attempt < self.max_attempts:
            return Decision.RETRY
        return Decision.RAISE

    def retryable(self, error: TrainingError) -> bool:
        """Whether the kind alone would allow a retry (recorded with each attempt)."""
        return error.kind in self.retry_kinds
