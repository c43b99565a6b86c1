"""A search trial's driver side: its epochs' validation metrics (from the ranks' epoch
events) go to its Optuna trial, whose pruner's verdict goes back to the ranks after each
epoch; a search that is stopping stops the trial's next attempt from starting."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Optional

from sparkdl.core.errors import SparkdlError
from sparkdl.training.driver_callbacks import DriverCallback, RunStart
from sparkdl.training.launch.events import Event, EventType
from sparkdl.training.verdicts import write_verdict

log = logging.getLogger(__name__)


class SearchStopped(SparkdlError):
    """The search stopped (Ctrl-C, or another trial's error) while this trial ran."""


class TrialPruning(DriverCallback):
    """Reports ``metric`` per epoch to ``trial`` and answers each epoch with its pruner."""

    answers_epochs = True

    def __init__(self, trial, metric: str, stopping: threading.Event):
        self.trial, self.metric, self.stopping = trial, metric, stopping
        self.verdicts: Optional[Path] = None
        self.run_id: Optional[str] = None

    def on_run_start(self, run: RunStart) -> None:
        self.verdicts, self.run_id = run.stage.verdicts, run.run_id
        self.trial.set_user_attr("run_id", run.run_id)

    def on_attempt_start(self, attempt: int) -> None:
        if self.stopping.is_set():
            raise SearchStopped(f"trial {self.trial.number}: the search is stopping; its run {self.run_id} stays "
                                "staged and resumes when the search does")

    def on_event(self, event: Event) -> None:
        if event.type is not EventType.EPOCH or event.rank != 0 or self.verdicts is None:
            return
        epoch, value = int(event.get("epoch")), event.get(self.metric)
        stop, reason = False, ""
        if isinstance(value, (int, float)):
            self.trial.report(float(value), epoch)
            if self.trial.should_prune():
                stop = True
                reason = (f"pruned by the search after epoch {epoch}: {self.metric} {value:.5g} is behind "
                          "the other trials at this epoch")
        write_verdict(self.verdicts, epoch, stop, reason)
