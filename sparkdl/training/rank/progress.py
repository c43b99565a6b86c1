"""One rank's step progress while an epoch runs: reported to the driver, and written to
TensorBoard.

A report is due every ``interval_s`` seconds, never per step; the loss is summed as a
tensor on the device and read once per report, so a GPU never waits for it. The driver
turns the reports into a progress bar or log lines (:mod:`sparkdl.tracking.progress`), and each
report also shows it that training is alive."""
from __future__ import annotations

import logging
import numbers
import time
from pathlib import Path
from typing import Any, Dict, Optional

from sparkdl.training.launch.events import EventType
from sparkdl.training.rank.callbacks import Callback, LoopState

log = logging.getLogger(__name__)


class StepProgress(Callback):
    """On the reporting rank (rank 0; a pipeline's last stage), every ``interval_s``:
    ``epoch``/``epochs``, ``step`` (steps done)/``steps``, ``elapsed_s`` and
    ``samples_per_sec`` since the epoch began (every replica's rows), and ``loss``, the
    mean of that rank's steps since the previous report. This class
    sends them to the driver; :meth:`emit` is the seam for other destinations."""

    def __init__(self, interval_s: float, batch_size: int):
        self.interval_s, self.batch_size = interval_s, batch_size
        self._epoch_start = self._last = 0.0
        self._loss_sum: Optional[Any] = None
        self._losses = 0

    def on_step_start(self, state: LoopState) -> None:
        if state.step == 0:
            self._epoch_start = self._last = time.monotonic()
            self._loss_sum, self._losses = None, 0

    def on_step_end(self, state: LoopState) -> None:
        if state.rank != state.reporting_rank:
            return
        if state.loss is not None:
            self._loss_sum = state.loss if self._loss_sum is None else self._loss_sum + state.loss
            self._losses += 1
        now = time.monotonic()
        done = state.step + 1
        if now - self._last < self.interval_s and done < state.steps_per_epoch:
            return
        self._last = now
        loss = round(float(self._loss_sum) / self._losses, 5) if self._losses else None
        self._loss_sum, self._losses = None, 0
        elapsed = max(now - self._epoch_start, 1e-9)
        self.emit(state, {"epoch": state.epoch, "epochs": state.epochs, "step": done, "steps": state.steps_per_epoch,
                          "loss": loss, "elapsed_s": round(elapsed, 3),
                          "samples_per_sec": round(done * self.batch_size * state.data_parallel_size / elapsed, 1)})

    def emit(self, state: LoopState, fields: Dict[str, Any]) -> None:
        state.report(EventType.PROGRESS, **fields)


class TensorBoardLogger(StepProgress):
    """The reporting rank writes TensorBoard event files in ``log_dir``: every number of each epoch's
    history entry (``epoch/<name>``: loss, validation metrics, learning rate, samples/s,
    the loop's timings) and the step reports (``step/loss``, ``step/samples_per_sec``),
    all at x = steps trained so far, so both share one axis. A resumed run purges the
    points after its checkpoint, which it is about to write again."""

    def __init__(self, log_dir: str, interval_s: float, batch_size: int):
        super().__init__(interval_s, batch_size)
        self.log_dir = log_dir
        self._writer = None

    def on_train_start(self, state: LoopState) -> None:
        if state.rank != state.reporting_rank:
            return
        from torch.utils.tensorboard import SummaryWriter

        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        self._writer = SummaryWriter(self.log_dir, purge_step=state.epoch * state.steps_per_epoch + 1
                                     if state.epoch else None)

    def emit(self, state: LoopState, fields: Dict[str, Any]) -> None:
        step = (state.epoch - 1) * state.steps_per_epoch + fields["step"]
        for name in ("loss", "samples_per_sec"):
            if fields[name] is not None:
                self._writer.add_scalar(f"step/{name}", fields[name], step)

    def on_epoch_end(self, state: LoopState) -> None:
        if self._writer is None:
            return
        entry = state.history[-1]
        for name, value in entry.items():
            if name not in ("epoch", "attempt", "steps") and isinstance(value, numbers.Real):
                self._writer.add_scalar(f"epoch/{name}", value, entry["epoch"] * state.steps_per_epoch)
        self._writer.flush()

    def on_train_end(self, state: LoopState) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __getstate__(self):  # pickled to the executors before any writer exists
        return {**self.__dict__, "_writer": None}
