"""Test-only fault injection, as a loop callback: make a chosen rank fail at a chosen point.

Pass one to ``train(..., callbacks=[FaultSpec(rank=1, epoch=2, step=5, mode="kill")])``.
Modes: ``raise`` a Python error, ``exit`` the Python worker hard, ``kill`` it with
SIGKILL, ``executor``: SIGKILL the executor JVM the worker belongs to (the whole
executor is lost), ``checkpoint``: die while writing the checkpoint of that epoch (after
the write, before the rename). ``attempt`` (default 1) limits it to one attempt, so a
retried stage runs clean; ``attempt=0`` fails every attempt.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from sparkdl.training.rank.callbacks import Callback, LoopState

MODES = ("raise", "exit", "kill", "executor", "checkpoint")
_EXECUTOR_MAIN = b"CoarseGrainedExecutorBackend"


class InjectedFault(RuntimeError):
    """The error the ``raise`` mode raises."""


@dataclass(frozen=True)
class FaultSpec(Callback):
    rank: int = 0
    epoch: int = 1
    step: int = 0
    mode: str = "raise"
    attempt: int = 1

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"FaultSpec mode {self.mode!r}: use one of {MODES}")

    def applies(self, rank: int, epoch: int, attempt: int) -> bool:
        return rank == self.rank and epoch == self.epoch and self.attempt in (0, attempt)

    def on_step_start(self, state: LoopState) -> None:
        self.at_step(state.rank, state.epoch, state.step, state.attempt)

    def at_step(self, rank: int, epoch: int, step: int, attempt: int) -> None:
        """Fail here if this is the chosen (rank, epoch, step, attempt)."""
        if self.mode == "checkpoint" or step != self.step or not self.applies(rank, epoch, attempt):
            return
        fire(self.mode, f"injected fault: rank {rank} epoch {epoch} step {step}")

    def before_checkpoint_commit(self, state: LoopState, tmp_path: Path) -> None:
        if self.mode == "checkpoint" and self.applies(state.rank, state.epoch, state.attempt):
            fire("exit", f"injected fault while writing checkpoint of epoch {state.epoch}")


def executor_jvm_pid(pid: int) -> int:
    """The executor JVM above a Python worker (worker → daemon → JVM), found by its main class."""
    for _ in range(4):
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # the parent
        if _EXECUTOR_MAIN in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise RuntimeError("no executor JVM above this Python worker")


def fire(mode: str, message: str) -> None:
    if mode == "raise":
        raise InjectedFault(message)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "executor":
        os.kill(executor_jvm_pid(os.getpid()), signal.SIGKILL)
        time.sleep(5)  # the worker goes down with its executor; if it lingers, it exits here
    os._exit(137)
