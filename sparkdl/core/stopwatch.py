"""Wall time per named pipeline stage, so a run's fixed overheads are visible.

One clock follows a job through ingest, features, materialize, launch, train,
write-back and evaluate; each stage logs its time as it ends and the totals land in
the run's ``metrics.json`` under ``stages``.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

log = logging.getLogger(__name__)


class StageClock:
    """Seconds per stage; a stage entered twice (e.g. ingest of train and test) adds up."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = round(self.seconds.get(name, 0.0) + seconds, 3)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            dt = time.monotonic() - t0
            self.add(name, dt)
            log.info("stage %s: %.1fs", name, dt)


class Laps:
    """Consecutive steps timed by one stopwatch: ``lap(name)`` records the time since the
    previous lap (used for the launch, where each step starts as the last one ends)."""

    def __init__(self, seconds: Optional[Dict[str, float]] = None) -> None:
        self.seconds: Dict[str, float] = dict(seconds or {})
        self._mark = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._mark, 3)
        self._mark = now
