"""Every error sparkdl raises on purpose, under one root.

:class:`SparkdlError` is the root. Beneath it, :class:`InputError` covers what the user
can fix before anything runs (the configuration, the data, the lake, the cluster's
shape) and :class:`RunError` covers a run that started and failed. Each class carries the
command line's exit code, so the CLI maps classes, never names, to exits.
"""
from __future__ import annotations

import enum
import time
from typing import List, Optional

EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
#: Outcomes a scheduler tells apart (docs/scheduling.md): none of them lost anything.
EXIT_NOTHING_TO_DO = 3   # the input and config are those of a committed run
EXIT_REJECTED = 4        # the run is committed, the gate kept the champion
EXIT_DRIFT = 5           # the input drifted past a fail bound: nothing was trained


class SparkdlError(Exception):
    """The root of sparkdl's errors; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_RUN_FAILED


class InputError(SparkdlError):
    """Something the user gave (a setting, a file, a row, a lake) is wrong; the message
    names it and the fix. Raised before expensive work where it can be."""

    exit_code = EXIT_BAD_INPUT


class RunError(SparkdlError):
    """A run that started could not finish: training or scoring failed."""


class Interrupted(KeyboardInterrupt):
    """The driver was told to stop (SIGTERM from a scheduler; SIGINT is Python's own
    ``KeyboardInterrupt``): the run is kept as interrupted, and the CLI exits 128 + the
    signal's number."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


class ConfigError(InputError, ValueError):
    """A configuration value is missing, unknown, of the wrong type, or out of range."""

    def __init__(self, path: str, message: str, source: Optional[str] = None):
        self.path = path
        where = f" in {source}" if source else ""
        super().__init__(f"config key '{path}'{where}: {message}")


class ParamError(ConfigError):
    """A Spark ML Param of a sparkdl estimator, or the DataFrame it names, is unusable;
    ``path`` is the Param's name (and the config key behind it, where there is one)."""

    def __init__(self, param: str, message: str, owner: str = "the estimator"):
        self.path = param
        InputError.__init__(self, f"Param '{param}' of {owner}: {message}")


class BadDataError(InputError, ValueError):
    """Too many rows failed to parse, or a source does not match its declared schema."""


class DriftError(BadDataError):
    """The input drifted from the rows the model learned from past a ``drift.*_fail`` bound."""

    exit_code = EXIT_DRIFT


class DatasetTooSmallError(BadDataError):
    """A split has fewer rows than the row groups every rank needs."""


class LakeError(InputError, RuntimeError):
    """A lake path, run or dataset is missing, unfinished or not writable."""


class TableError(LakeError):
    """A table to write exists when it should not, or has a different shape."""


class SparkStartError(InputError, RuntimeError):
    """The embedded cluster did not come up."""


class LaunchError(InputError, RuntimeError):
    """The barrier stage could not be started (not enough slots, bad settings)."""


class ScoringError(RunError, RuntimeError):
    """Scoring could not produce a complete, trustworthy output; nothing was published."""


class ExchangeError(RunError, RuntimeError):
    """A launch value could not be exchanged between the ranks (a peer went away)."""


class CheckpointWriteError(RunError, OSError):
    """A checkpoint could not be written (a full, over-quota or read-only lake)."""


class FailureKind(str, enum.Enum):
    """Why an attempt failed; :class:`sparkdl.training.launch.failures.RetryPolicy` decides from it."""

    USER = "user"                      # the user's code or data raised: a retry would repeat it
    PEER = "peer"                      # a collective broke because another rank went away
    INFRASTRUCTURE = "infrastructure"  # Spark lost an executor or a Python worker
    TIMEOUT = "timeout"                # a bounded wait ran out


class CheckpointReadError(RunError, OSError):
    """A run has checkpoints and none of them loads: it fails naming them, never starts
    again from epoch 0 on its own."""


class TrainingError(RunError, RuntimeError):
    """A rank failed. Carries the rank, its exception, the tail of its traceback, the kind
    of failure and when it happened by the failing rank's clock (picklable, so ranks can
    raise it too)."""

    def __init__(self, rank: Optional[int], exception: str, traceback_tail: str = "",
                 kind: FailureKind = FailureKind.USER, time_: Optional[float] = None):
        self.rank = rank
        self.exception = exception
        self.traceback_tail = traceback_tail
        self.kind = FailureKind(kind)
        self.time = time.time() if time_ is None else time_
        self.attempts: List[dict] = []  # filled by the driver's supervisor
        who = f"rank {rank}" if rank is not None else "a rank (which one the launcher did not say)"
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
