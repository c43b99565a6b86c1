"""Live training progress on the driver, from rank 0's step reports: a bar per epoch or
plain log lines (:func:`sparkdl.core.progress.form` picks)."""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Dict, Optional

from sparkdl.core.config import ProgressConfig
from sparkdl.core.progress import bar, eta, form
from sparkdl.training.driver_callbacks import DriverCallback
from sparkdl.training.launch.events import Event, EventType

log = logging.getLogger(__name__)


class TrainingProgress(DriverCallback):
    """Rank 0's ``progress`` events as a bar per epoch (steps, samples/s, loss, time left)
    or as log lines; while a bar is open, log lines go above it."""

    def __init__(self, cfg: ProgressConfig):
        self.form, self.every = form(cfg), cfg.lines_every_s
        self._bar = None
        self._epoch: Optional[int] = None
        self._last_line: Optional[float] = None  # none yet: the first line always shows
        self._redirect = contextlib.ExitStack()

    def on_attempt_start(self, attempt: int) -> None:
        if self.form == "bar":
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect.enter_context(logging_redirect_tqdm())

    def on_attempt_end(self, attempt: int, error) -> None:
        self.close()
        self._redirect.close()

    def on_event(self, event: Event) -> None:
        if event.type is EventType.PROGRESS:
            if self.form == "bar":
                self._show_bar(event)
            elif self.form == "lines":
                self._show_line(event)
        elif event.type in (EventType.EPOCH, EventType.ERROR, EventType.DONE):
            self.close()

    def _show_bar(self, event: Event) -> None:
        epoch, step, steps = event.get("epoch"), event.get("step"), event.get("steps")
        if self._bar is None or epoch != self._epoch:
            self.close()
            self._epoch = epoch
            self._bar = bar(total=steps, desc=f"epoch {epoch}/{event.get('epochs')}", unit="step", leave=True)
        self._bar.n = min(step, steps)
        postfix: Dict[str, str] = {"samples/s": f"{event.get('samples_per_sec', 0):,.0f}"}
        if event.get("loss") is not None:
            postfix["loss"] = f"{event.get('loss'):.4f}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.refresh()

    def _show_line(self, event: Event) -> None:
        now = time.monotonic()
        step, steps = event.get("step"), event.get("steps")
        if self._last_line is not None and now - self._last_line < self.every and step < steps:
            return
        self._last_line = now
        rate = event.get("samples_per_sec", 0.0)
        elapsed = event.get("elapsed_s", 0.0)
        left = elapsed * (steps - step) / step if step else 0.0
        loss = event.get("loss")
        log.info("epoch %s/%s: step %d/%d (%d%%), %s samples/s%s%s", event.get("epoch"), event.get("epochs"),
                 step, steps, 100 * step // max(steps, 1), f"{rate:,.0f}", "" if loss is None else f", loss {loss:.4f}",
                 f", about {eta(left)} left in the epoch" if step < steps else "")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
