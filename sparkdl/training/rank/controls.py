"""Training controls built from the config, as callbacks on the loop's seam: the
learning-rate schedule and early stopping.

Both keep their state in the checkpoint (``state_dict``), so a resumed run continues
the same schedule and the same patience count. Early stopping's decision is made on
rank 0 and broadcast, so every rank leaves the loop after the same epoch and no
allreduce waits for a rank that already left.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

from sparkdl.core.config import EarlyStoppingConfig, LrScheduleConfig
from sparkdl.core.task_metrics import metric_direction
from sparkdl.training.rank.callbacks import Callback, LoopState


def _improved(value: float, best: Optional[float], mode: str, min_delta: float) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta


def scheduled_lr(cfg: LrScheduleConfig, base_lr: float, step: int, steps_per_epoch: int, epochs: int,
                 plateau_factor: float = 1.0) -> float:
    """The rate for global step ``step`` (0-based) of a run of ``epochs`` x ``steps_per_epoch``."""
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return base_lr * (step + 1) / warmup
    if cfg.kind == "cosine":
        span = max(epochs * steps_per_epoch - warmup, 1)
        progress = min((step - warmup) / span, 1.0)
        return cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.kind == "step":
        return base_lr * cfg.gamma ** ((step // steps_per_epoch) // cfg.step_epochs)
    if cfg.kind == "plateau":
        return max(base_lr * plateau_factor, cfg.min_lr)
    return base_lr


class LrSchedule(Callback):
    """Sets the optimizer's rate before every step from :func:`scheduled_lr`."""

    def __init__(self, cfg: LrScheduleConfig, base_lr: float):
        self.cfg, self.base_lr = cfg, base_lr
        self.plateau_factor, self.best, self.bad_epochs = 1.0, None, 0

    def on_step_start(self, state: LoopState) -> None:
        step = (state.epoch - 1) * state.steps_per_epoch + state.step
        lr = scheduled_lr(self.cfg, self.base_lr, step, state.steps_per_epoch, state.epochs, self.plateau_factor)
        for group in state.optimizer.param_groups:
            group["lr"] = lr

    def on_epoch_end(self, state: LoopState) -> None:
        if self.cfg.kind != "plateau" or state.epoch < self.cfg.warmup_epochs:
            return
        value = float(state.history[-1][self.cfg.metric])
        if _improved(value, self.best, metric_direction(self.cfg.metric), 0.0):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.cfg.patience:
            self.plateau_factor *= self.cfg.gamma
            self.bad_epochs = 0
            if state.rank == 0:
                state.log(f"{self.cfg.metric} has not improved for {self.cfg.patience} epochs: learning rate x "
                          f"{self.cfg.gamma:g} (now x {self.plateau_factor:g} of the base rate)")

    def state_dict(self) -> Dict[str, Any]:
        return {"plateau_factor": self.plateau_factor, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.plateau_factor, self.best, self.bad_epochs = state["plateau_factor"], state["best"], state["bad_epochs"]


class EarlyStopping(Callback):
    """Stops after ``patience`` epochs without an improvement of ``min_delta`` in the
    watched metric; with ``keep: best`` the final model is the best epoch's weights.
    Its results go in ``state.extras["early_stopping"]``: the kept epoch and why training
    stopped."""

    def __init__(self, cfg: EarlyStoppingConfig):
        self.cfg = cfg
        self.best: Optional[float] = None
        self.best_epoch = 0
        self.bad_epochs = 0
        self.best_weights: Optional[Dict[str, Any]] = None

    def on_epoch_end(self, state: LoopState) -> None:
        decision = None
        if state.rank == 0:
            value = float(state.history[-1][self.cfg.metric])
            improved = _improved(value, self.best, self.cfg.direction, self.cfg.min_delta)
            bad = 0 if improved else self.bad_epochs + 1
            decision = {"improved": improved, "value": value, "bad_epochs": bad,
                        "stop": bad >= self.cfg.patience}
        decision = state.broadcast(decision, f"early_stopping.{state.epoch}")
        self.bad_epochs = decision["bad_epochs"]
        if decision["improved"]:
            self.best, self.best_epoch = decision["value"], state.epoch
            if self.cfg.keep == "best":
                self.best_weights = {k: v.detach().cpu().clone() for k, v in state.model.state_dict().items()}
        if decision["stop"]:
            state.stop_reason = (f"{self.cfg.metric} did not improve by more than {self.cfg.min_delta:g} for "
                                 f"{self.cfg.patience} epochs after epoch {self.best_epoch} "
                                 f"({self.cfg.metric} {self.best:.5g})")
        self._record(state)

    def on_train_end(self, state: LoopState) -> None:
        if self.cfg.keep == "best" and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)
        self._record(state)

    def _record(self, state: LoopState) -> None:
        last = state.history[-1]["epoch"] if state.history else 0
        kept = self.best_epoch if (self.cfg.keep == "best" and self.best_weights is not None) else last
        state.extras["early_stopping"] = {
            "metric": self.cfg.metric, "mode": self.cfg.direction, "patience": self.cfg.patience,
            "min_delta": self.cfg.min_delta, "keep": self.cfg.keep, "best_epoch": self.best_epoch,
            "best_value": self.best, "kept_epoch": kept, "last_epoch": last,
            "stopped_early": state.stop_reason is not None, "reason": state.stop_reason}

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "best_weights": self.best_weights}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs, self.best_weights = state["bad_epochs"], state["best_weights"]
