"""Live progress of Spark's stages on the driver (prepare's and score's jobs), from Spark's
status tracker, and the form every progress display takes.

Where output goes decides the form (``progress.display: auto``): a tqdm bar in a terminal
or a Jupyter notebook (a widget there), and otherwise, as under spark-submit or CI, a
plain log line every ``progress.lines_every_s`` seconds. The bars come from tqdm; log
lines written while a bar is open go above it (``logging_redirect_tqdm``).
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, Optional

from sparkdl.core.config import ProgressConfig

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


def bar(**kwargs):
    from tqdm.auto import tqdm

    return tqdm(**kwargs, dynamic_ncols=True)


def eta(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class SparkStageProgress:
    """Shows the Spark stages that run while it is open (prepare's and score's jobs): the
    running stage with the most tasks left, its tasks done out of its total, polled from
    the status tracker every ``poll_s``: a bar, or a log line every ``lines_every_s`` for a
    stage running longer than that. A Spark Connect client has no status tracker: there
    the server's progress reports (:class:`ConnectStages`) stand in for it."""

    def __init__(self, spark, cfg: ProgressConfig, what: str, poll_s: float = 0.5):
        from sparkdl.core.session import is_connect

        self.form, self.every, self.what, self.poll_s = form(cfg), cfg.lines_every_s, what, poll_s
        self._tracker = None
        if self.form != "off":
            self._tracker = ConnectStages(spark) if is_connect(spark) else spark.sparkContext.statusTracker()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._bar = None
        self._bar_stage: Optional[int] = None
        self._seen: Dict[int, float] = {}  # stage id -> when first seen running
        self._last_line: Optional[float] = None  # none yet: the first line may show at once

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
                self._bar = bar(total=stage.numTasks, desc=name, unit="task", leave=False)  # gone when done
            self._bar.n = stage.numCompletedTasks
            self._bar.refresh()
            return
        now = time.monotonic()
        started = self._seen.setdefault(stage.stageId, now)
        if now - started >= self.every and (self._last_line is None or now - self._last_line >= self.every):
            # long stages only
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
