"""The driver's answer to each epoch, for runs whose driver decides whether they go on (a
search's pruner): rank 0 reports the epoch's metrics over the event channel, the driver
writes its verdict into the run's staging directory in the lake, and rank 0 waits for it
and broadcasts it, so every rank stops after the same epoch. The answer goes through the
lake because it always reaches the executors, even where they cannot connect back."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from sparkdl.core.lake import write_json_atomic
from sparkdl.training.rank.callbacks import Callback, LoopState

#: How often rank 0 looks for the verdict, and how long it waits before going on without one.
POLL_S = 0.05
WAIT_S = 120.0


def verdict_path(directory: "Path | str", epoch: int) -> Path:
    return Path(directory) / f"epoch-{epoch}.json"


def write_verdict(directory: "Path | str", epoch: int, stop: bool, reason: str = "") -> None:
    """The driver's answer after ``epoch``: go on, or stop (and why)."""
    Path(directory).mkdir(parents=True, exist_ok=True)
    write_json_atomic(verdict_path(directory, epoch), {"epoch": epoch, "stop": stop, "reason": reason})


def read_verdict(directory: "Path | str", epoch: int) -> Optional[dict]:
    try:
        return json.loads(verdict_path(directory, epoch).read_text())
    except (FileNotFoundError, ValueError):
        return None


class AwaitVerdict(Callback):
    """Rank side: after each reported epoch (but the last), rank 0 waits up to ``wait_s``
    for the driver's verdict and every rank acts on it; a resumed run first rereads the
    verdict on the epoch it resumes after. Without an answer in time, training goes on
    and says so."""

    def __init__(self, directory: str, wait_s: float = WAIT_S):
        self.directory, self.wait_s = directory, wait_s

    def on_train_start(self, state: LoopState) -> None:
        if state.epoch and not state.stop_reason:
            self._apply(state, read_verdict(self.directory, state.epoch) if state.rank == 0 else None)

    def on_epoch_reported(self, state: LoopState) -> None:
        if state.epoch >= state.epochs or state.stop_reason:
            return
        verdict = None
        if state.rank == 0:
            deadline = time.monotonic() + self.wait_s
            while (verdict := read_verdict(self.directory, state.epoch)) is None and time.monotonic() < deadline:
                time.sleep(POLL_S)
            if verdict is None:
                state.log(f"no verdict from the driver {self.wait_s:.0f}s after epoch {state.epoch}: going on",
                          level="warning")
        self._apply(state, verdict)

    def _apply(self, state: LoopState, verdict: Optional[dict]) -> None:
        verdict = state.broadcast(verdict, f"verdict.{state.epoch}")
        if verdict and verdict.get("stop"):
            state.stop_reason = verdict.get("reason") or f"the driver stopped the run after epoch {state.epoch}"
            state.extras["stopped_by_driver"] = {"epoch": state.epoch, "reason": state.stop_reason}
