"""Task slots shared by the barrier stages one driver runs at once (a CrossValidator's
concurrent fits, a search's trials).

A barrier stage starts all its tasks together, and Spark holds back one whose tasks do
not all fit in the free slots; sparkdl's start timeout would then fail it. So before a
run launches, it reserves its ranks' slots here; a run that finds them held by other runs
of this driver waits (logging who holds them) up to ``train.launch.slot_wait_s``. Stages
of other applications on the same cluster are not seen: the start timeout covers those.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator

from sparkdl.core.errors import LaunchError

log = logging.getLogger(__name__)

#: How often a waiting run says what it waits for.
REPORT_EVERY_S = 30.0


@dataclass
class SlotLedger:
    """The slots this driver's running stages hold, per cluster."""

    held: Dict[str, int] = field(default_factory=dict)  # holder -> slots
    changed: threading.Condition = field(default_factory=threading.Condition)

    @contextlib.contextmanager
    def reserve(self, holder: str, n: int, total: int, wait_s: float) -> Iterator[float]:
        """Hold ``n`` of ``total`` slots for ``holder`` while the block runs; yield the
        seconds spent waiting for them."""
        t0 = time.monotonic()
        next_report = t0
        with self.changed:
            while total - sum(self.held.values()) < n:
                now = time.monotonic()
                if now - t0 >= wait_s:
                    raise LaunchError(
                        f"{holder} waited {wait_s:.0f}s for {n} free task slots of {total}; {self._holders()} "
                        "still hold them. Run fewer at once (parallelism), lower train.ranks, or raise "
                        "train.launch.slot_wait_s")
                if now >= next_report:
                    log.info("%s waits for %d free task slots of %d: %s hold them", holder, n, total, self._holders())
                    next_report = now + REPORT_EVERY_S
                self.changed.wait(min(REPORT_EVERY_S, wait_s - (now - t0)))
            self.held[holder] = self.held.get(holder, 0) + n
        try:
            yield time.monotonic() - t0
        finally:
            with self.changed:
                self.held[holder] -= n
                if not self.held[holder]:
                    del self.held[holder]
                self.changed.notify_all()

    def _holders(self) -> str:
        return ", ".join(f"{h} ({k} slots)" for h, k in sorted(self.held.items())) or "none"


_LEDGERS: Dict[str, SlotLedger] = {}
_LOCK = threading.Lock()


def ledger_for(cluster: str) -> SlotLedger:
    """The one ledger of ``cluster`` (its master URL) in this process."""
    with _LOCK:
        return _LEDGERS.setdefault(cluster, SlotLedger())
