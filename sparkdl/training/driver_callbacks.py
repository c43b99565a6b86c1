"""What the driver does around a run besides training it, on one interface.

Progress, MLflow, held-out evaluation and the report each implement
:class:`DriverCallback` and are handed to :func:`sparkdl.training.supervisor.train`;
the supervisor calls them at fixed moments and knows none of them. Each method is a
no-op, so a callback overrides only the moments it needs, and touches only what it owns.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from sparkdl.core.config import JobConfig
from sparkdl.core.errors import TrainingError
from sparkdl.core.run_metrics import RunMetrics
from sparkdl.core.rundir import RunDir
from sparkdl.training.launch.events import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunStart:
    """A run about to train: its id, its staging directory, its job and its lake."""

    run_id: str
    stage: RunDir
    cfg: JobConfig
    lake_root: Path


class DriverCallback:
    """One method per moment of a run on the driver. A callback that sets
    ``answers_epochs`` writes a verdict after each epoch's event
    (:func:`sparkdl.training.verdicts.write_verdict` into ``run.stage.verdicts``), and the
    run's ranks wait for it before the next epoch."""

    answers_epochs = False

    def on_run_start(self, run: RunStart) -> None:
        """The run's staging directory exists; training has not started."""

    def on_attempt_start(self, attempt: int) -> None:
        """A barrier stage is about to launch (attempt 1, or a retry)."""

    def on_event(self, event: Event) -> None:
        """An event from a rank (progress, an epoch's metrics, an error...)."""

    def on_attempt_end(self, attempt: int, error: Optional[TrainingError]) -> None:
        """The stage ended: ``error`` is None when every rank finished."""

    def before_commit(self, stage: RunDir, metrics: RunMetrics) -> None:
        """The model is written; add to ``metrics`` or the stage before the run becomes
        visible. Raising here fails the run (nothing is committed)."""

    def after_commit(self, run: RunDir, metrics: RunMetrics) -> None:
        """The run is committed. A failure here is logged and the run stays committed."""

    def on_failure(self, error: BaseException) -> None:
        """The run failed and was not committed."""


class DriverCallbacks:
    """Calls every callback in order at each moment."""

    def __init__(self, callbacks: Sequence[DriverCallback] = ()):
        self.callbacks = tuple(callbacks)

    @property
    def answers_epochs(self) -> bool:
        return any(c.answers_epochs for c in self.callbacks)

    def _each(self, moment: str, *args) -> None:
        for c in self.callbacks:
            getattr(c, moment)(*args)

    def on_run_start(self, run: RunStart) -> None:
        self._each("on_run_start", run)

    def on_attempt_start(self, attempt: int) -> None:
        self._each("on_attempt_start", attempt)

    def on_event(self, event: Event) -> None:
        self._each("on_event", event)

    def on_attempt_end(self, attempt: int, error: Optional[TrainingError]) -> None:
        self._each("on_attempt_end", attempt, error)

    def before_commit(self, stage: RunDir, metrics: RunMetrics) -> None:
        self._each("before_commit", stage, metrics)

    def after_commit(self, run: RunDir, metrics: RunMetrics) -> None:
        for c in self.callbacks:
            try:
                c.after_commit(run, metrics)
            except Exception as e:  # the run is committed: nothing after may lose it
                log.warning("run %s is committed, but %s failed after the commit: %s", run.name,
                            type(c).__name__, e)

    def on_failure(self, error: BaseException) -> None:
        for c in self.callbacks:
            try:
                c.on_failure(error)
            except Exception as e:  # the run's own error is the one to raise
                log.warning("%s failed while the run failed: %s", type(c).__name__, e)
