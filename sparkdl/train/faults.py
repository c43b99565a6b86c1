"""Test-only fault injection: make a chosen rank fail at a chosen point.

Set ``SPARKDL_FAULT`` on the driver (or pass a FaultSpec), e.g.
``rank=1,epoch=2,step=5,mode=raise`` (modes: ``raise`` a Python error, ``exit`` the
Python worker hard, ``kill`` it with SIGKILL, ``checkpoint``: die while writing the
checkpoint of that epoch). ``attempt`` (default 1) limits it to one attempt, so a
retried stage runs clean; ``attempt=0`` fails every attempt.
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Optional

ENV = "SPARKDL_FAULT"
MODES = ("raise", "exit", "kill", "checkpoint")


class InjectedFault(RuntimeError):
    """The error the ``raise`` mode raises."""


@dataclass(frozen=True)
class FaultSpec:
    rank: int = 0
    epoch: int = 1
    step: int = 0
    mode: str = "raise"
    attempt: int = 1

    @classmethod
    def parse(cls, text: str) -> "FaultSpec":
        fields = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = part.partition("=")
            if key not in cls.__dataclass_fields__:
                raise ValueError(f"{ENV}={text!r}: unknown field {key!r}; use rank, epoch, step, mode, attempt")
            fields[key] = value if key == "mode" else int(value)
        spec = cls(**fields)
        if spec.mode not in MODES:
            raise ValueError(f"{ENV}={text!r}: mode must be one of {MODES}")
        return spec

    @classmethod
    def from_env(cls) -> Optional["FaultSpec"]:
        text = os.environ.get(ENV)
        return cls.parse(text) if text else None

    def applies(self, rank: int, epoch: int, attempt: int) -> bool:
        return rank == self.rank and epoch == self.epoch and self.attempt in (0, attempt)

    def at_step(self, rank: int, epoch: int, step: int, attempt: int) -> None:
        """Fail here if this is the chosen (rank, epoch, step, attempt)."""
        if self.mode == "checkpoint" or step != self.step or not self.applies(rank, epoch, attempt):
            return
        fire(self.mode, f"injected fault: rank {rank} epoch {epoch} step {step}")

    def during_checkpoint(self, rank: int, epoch: int, attempt: int):
        """A hook for save_checkpoint that dies after writing, before the rename."""
        if self.mode != "checkpoint" or not self.applies(rank, epoch, attempt):
            return None
        return lambda _tmp: fire("exit", f"injected fault while writing checkpoint of epoch {epoch}")


def fire(mode: str, message: str) -> None:
    if mode == "raise":
        raise InjectedFault(message)
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)
