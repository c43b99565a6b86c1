"""Wall time per named pipeline stage, so a run's fixed overheads are visible.

One clock follows a job through ingest, features, materialize, launch, train,
write-back and evaluate; each stage logs its time as it ends and the totals land in
the run's ``metrics.json`` under ``stages``.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Dict, Iterator

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
