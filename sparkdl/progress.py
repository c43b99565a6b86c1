"""Live progress on the driver: training steps from rank 0's reports, and the Spark
stages of prepare and score from Spark's status tracker.

Where output goes decides the form (``progress.display: auto``): a tqdm bar in a terminal
or a Jupyter notebook (a widget there), and otherwise, as under spark-submit or CI, a
plain log line every ``progress.lines_every_s`` seconds. The bars come from tqdm; log
lines written while a bar is open go above it (``logging_redirect_tqdm``).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional

from sparkdl.config import ProgressConfig
from sparkdl.launch.events import Event, EventType

log = logging.getLogger(__name__)


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel."""
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and "IPKernelApp" in shell.get_ipython().config
    except Exception:  # IPython imported but no shell running
        return False


def form(cfg: ProgressConfig) -> str:
    """``bar``, ``lines`` or ``off`` for this process."""
    if cfg.display != "auto":
        return cfg.display
    return "bar" if in_notebook() or sys.stderr.isatty() else "lines"


def _bar(**kwargs):
    from tqdm.auto import tqdm

    return tqdm(**kwargs, dynamic_ncols=True)


def _eta(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class TrainingProgress:
    """An event handler for :func:`~sparkdl.launch.driver.run_on_ranks`: rank 0's
    ``progress`` events become a bar per epoch (steps, samples/s, loss, time left) or log
    lines; every other event goes on to ``then`` (the driver's log lines)."""

    def __init__(self, cfg: ProgressConfig, then: Callable[[Event], None]):
        self.form, self.every, self.then = form(cfg), cfg.lines_every_s, then
        self._bar = None
        self._epoch: Optional[int] = None
        self._last_line = 0.0

    def __call__(self, event: Event) -> None:
        if event.type is EventType.PROGRESS:
            if self.form == "bar":
                self._show_bar(event)
            elif self.form == "lines":
                self._show_line(event)
            return
        if event.type in (EventType.EPOCH, EventType.ERROR, EventType.DONE):
            self.close()
        self.then(event)

    def _show_bar(self, event: Event) -> None:
        epoch, step, steps = event.get("epoch"), event.get("step"), event.get("steps")
        if self._bar is None or epoch != self._epoch:
            self.close()
            self._epoch = epoch
            self._bar = _bar(total=steps, desc=f"epoch {epoch}/{event.get('epochs')}", unit="step", leave=True)
        self._bar.n = min(step, steps)
        postfix: Dict[str, str] = {"samples/s": f"{event.get('samples_per_sec', 0):,.0f}"}
        if event.get("loss") is not None:
            postfix["loss"] = f"{event.get('loss'):.4f}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.refresh()

    def _show_line(self, event: Event) -> None:
        now = time.monotonic()
        step, steps = event.get("step"), event.get("steps")
        if now - self._last_line < self.every and step < steps:
            return
        self._last_line = now
        rate = event.get("samples_per_sec", 0.0)
        elapsed = event.get("elapsed_s", 0.0)
        left = elapsed * (steps - step) / step if step else 0.0
        loss = event.get("loss")
        log.info("epoch %s/%s: step %d/%d (%d%%), %s samples/s%s%s", event.get("epoch"), event.get("epochs"),
                 step, steps, 100 * step // max(steps, 1), f"{rate:,.0f}", "" if loss is None else f", loss {loss:.4f}",
                 f", about {_eta(left)} left in the epoch" if step < steps else "")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    @contextlib.contextmanager
    def showing(self) -> Iterator["TrainingProgress"]:
        """While training runs: log lines go above an open bar; the bar is closed after."""
        try:
            if self.form == "bar":
                from tqdm.contrib.logging import logging_redirect_tqdm

                with logging_redirect_tqdm():
                    yield self
            else:
                yield self
        finally:
            self.close()


class SparkStageProgress:
    """Shows the Spark stages that run while it is open (prepare's and score's jobs): the
    running stage with the most tasks left, its tasks done out of its total, polled from
    the status tracker every ``poll_s``: a bar, or a log line every ``lines_every_s`` for a
    stage running longer than that. A Spark Connect client has no status tracker: there
    the server's progress reports (:class:`ConnectStages`) stand in for it."""

    def __init__(self, spark, cfg: ProgressConfig, what: str, poll_s: float = 0.5):
        from sparkdl.session import is_connect

        self.form, self.every, self.what, self.poll_s = form(cfg), cfg.lines_every_s, what, poll_s
        self._tracker = None
        if self.form != "off":
            self._tracker = ConnectStages(spark) if is_connect(spark) else spark.sparkContext.statusTracker()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._bar = None
        self._bar_stage: Optional[int] = None
        self._seen: Dict[int, float] = {}  # stage id -> when first seen running
        self._last_line = 0.0

    def __enter__(self) -> "SparkStageProgress":
        if isinstance(self._tracker, ConnectStages):
            self._tracker.listen()
        if self._tracker is not None:
            self._thread = threading.Thread(target=self._poll, name="sparkdl-stage-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if isinstance(self._tracker, ConnectStages):
            self._tracker.stop()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.poll_s)
        self._close_bar()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                stages = [s for s in (self._tracker.getStageInfo(i) for i in self._tracker.getActiveStageIds())
                          if s is not None]
            except Exception as e:  # the session stopping under us: stop showing, never fail the job
                log.debug("stage progress stopped: %s", e)
                return
            if stages:
                self._show(max(stages, key=lambda s: s.numTasks - s.numCompletedTasks))

    def _show(self, stage) -> None:
        call = stage.name.split(" at ")[0]
        name = f"{self.what}: stage {stage.stageId}" + ("" if call.startswith("$") else f" ({call})")
        if self.form == "bar":
            if self._bar_stage != stage.stageId:
                self._close_bar()
                self._bar_stage = stage.stageId
                self._bar = _bar(total=stage.numTasks, desc=name, unit="task", leave=False)  # gone when done
            self._bar.n = stage.numCompletedTasks
            self._bar.refresh()
            return
        now = time.monotonic()
        started = self._seen.setdefault(stage.stageId, now)
        if now - started >= self.every and now - self._last_line >= self.every:  # long stages only
            self._last_line = now
            log.info("%s: %d/%d tasks done, %d running", name, stage.numCompletedTasks, stage.numTasks,
                     stage.numActiveTasks)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.n = self._bar.total
            self._bar.close()
            self._bar = None


@dataclass
class _StageState:
    """A stage as a Connect progress report tells it, in the status tracker's terms."""

    stageId: int
    numTasks: int
    numCompletedTasks: int
    #: The operation's running tasks (a report does not split them by stage).
    numActiveTasks: int
    name: str = "$"  # reports carry no call site


class ConnectStages:
    """The running stages of a Spark Connect session, from the progress reports the server
    streams with each operation, read like the classic status tracker."""

    def __init__(self, spark):
        self.spark = spark
        self._running: Dict[int, _StageState] = {}
        self._lock = threading.Lock()

    def __call__(self, stages, inflight_tasks, operation_id, done) -> None:
        with self._lock:
            for st in stages or ():
                if st.done or done:
                    self._running.pop(st.stage_id, None)
                else:
                    self._running[st.stage_id] = _StageState(st.stage_id, st.num_tasks, st.num_completed_tasks,
                                                             inflight_tasks)

    def listen(self) -> None:
        self.spark.registerProgressHandler(self)

    def stop(self) -> None:
        try:
            self.spark.removeProgressHandler(self)
        except Exception as e:  # the session closed first
            log.debug("progress handler not removed: %s", e)

    def getActiveStageIds(self):
        with self._lock:
            return list(self._running)

    def getStageInfo(self, stage_id: int):
        with self._lock:
            return self._running.get(stage_id)
