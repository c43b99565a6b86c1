"""A run's ``metrics.json`` as a versioned record, written once by the driver and read
back by the report, the CLI, the workflow and the benchmarks.

Version 2 names the held-out evaluation ``held_out`` (with its ``split``); version 1
called it ``test`` even when it came from the validation split, and still loads."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional

from sparkdl.core.records import VersionedRecord
from sparkdl.core.task_metrics import format_metric

METRICS_VERSION = 2


@dataclass
class RunMetrics(VersionedRecord):
    """What a run measured. ``history`` has one entry per epoch; ``train`` the world,
    rates and launch; ``attempts`` every attempt (when, why it failed, where it resumed);
    ``stages`` wall seconds per pipeline stage; ``held_out`` and ``baseline`` the held-out
    evaluation when the job ran one (its ``split`` says which). ``validation`` holds the
    kept epoch's validation metrics (the best epoch under early stopping with ``keep: best``)."""

    run_id: str
    history: List[Dict[str, Any]]
    train: Dict[str, Any]
    validation: Dict[str, float]
    attempts: List[Dict[str, Any]]
    dataset: Dict[str, str]
    stages: Dict[str, float] = field(default_factory=dict)
    held_out: Optional[Dict[str, Any]] = None
    baseline: Optional[Dict[str, Any]] = None
    task: str = "classification"
    version: int = METRICS_VERSION

    VERSION: ClassVar[int] = METRICS_VERSION
    KIND: ClassVar[str] = "metrics"
    REWRITE_HINT: ClassVar[str] = "this run was written by another sparkdl; read it with that version"

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def upgrade(cls, raw: Dict[str, Any]) -> Dict[str, Any]:
        if raw.get("version", 1) == 1:  # sparkdl 0.1 wrote version 1 without the field
            raw = {**{k: v for k, v in raw.items() if k != "test"}, "held_out": raw.get("test"),
                   "version": METRICS_VERSION}
        return raw

    @property
    def held_out_split(self) -> str:
        """Which split the held-out metrics came from (``validation`` when the job had no test split)."""
        return (self.held_out or {}).get("split", "test")

    @property
    def primary_metric(self) -> str:
        """The metric a run is judged by first: accuracy, or RMSE for regression."""
        return "rmse" if self.task == "regression" else "accuracy"

    def held_out_metric(self, metric: Optional[str] = None) -> float:
        return float((self.held_out or {}).get(metric or self.primary_metric, float("nan")))

    def held_out_accuracy(self) -> float:
        return self.held_out_metric("accuracy")

    def baseline_metric(self, metric: Optional[str] = None) -> float:
        """The baseline's value of ``metric`` (the primary one by default) on the held-out split."""
        for result in (self.baseline or {}).values():
            return float(result.get(metric or self.primary_metric, float("nan")))
        return float("nan")

    def baseline_accuracy(self) -> float:
        return self.baseline_metric("accuracy")

    def headline(self, section: str = "held_out") -> str:
        """``accuracy 0.8550`` or ``rmse 51,234``: the primary metric of ``validation`` or ``held_out``."""
        value = (getattr(self, section) or {}).get(self.primary_metric, float("nan"))
        return f"{self.primary_metric} {format_metric(float(value))}"
