"""What a rank optimizes: the task's loss on the network's raw scores.

Classification: cross-entropy on class indices, optionally weighted per class.
Regression: ``mse``, ``huber`` (delta 1, in standard deviations of the target when it is
standardized) or ``l1``, on the target standardized with the training split's mean and
standard deviation. A custom model factory's own loss replaces the built-in one; it gets
the same labels (class indices, or the standardized target).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

LOSSES = ("cross_entropy", "mse", "huber", "l1")


@dataclass
class Objective:
    task: str
    loss_name: str
    class_weights: Optional[List[float]] = None
    target: Optional[Dict[str, float]] = None
    custom: Optional[Callable] = None

    def __post_init__(self):
        if self.loss_name not in LOSSES:
            raise ValueError(f"loss {self.loss_name!r}: use one of {LOSSES}")
        self._weight = None

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    def to(self, device) -> "Objective":
        import torch

        if self.class_weights is not None:
            self._weight = torch.tensor(self.class_weights, dtype=torch.float32, device=device)
        return self

    def labels(self, y):
        """The labels the loss compares with: class indices, or the (standardized) target."""
        if self.regression and self.target:
            return (y - self.target["mean"]) / self.target["std"]
        return y

    def scores(self, out):
        """The scores the loss reads: regression's single output as a vector."""
        return out[:, 0] if self.regression and self.custom is None else out

    def __call__(self, out, y, reduction: str = "mean"):
        """The loss of raw network outputs ``out`` against raw labels ``y``."""
        import torch.nn.functional as F

        target = self.labels(y)
        if self.custom is not None:
            loss = self.custom(out, target)
            return loss * len(y) if reduction == "sum" else loss
        scores = self.scores(out)
        if self.loss_name == "cross_entropy":
            return F.cross_entropy(scores, target, weight=self._weight, reduction=reduction)
        fn = {"mse": F.mse_loss, "huber": F.huber_loss, "l1": F.l1_loss}[self.loss_name]
        return fn(scores, target, reduction=reduction)
