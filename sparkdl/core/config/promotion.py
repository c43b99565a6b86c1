"""What a scheduled job checks before a model goes into service: the ``promote`` and
``drift`` sections."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from sparkdl.core.config.checks import check


@dataclass(frozen=True)
class MetricGate:
    """Bounds on one held-out metric of a challenger. ``min`` (a metric where larger is
    better) or ``max`` (where smaller is) is an absolute bound; ``max_worse`` and
    ``max_worse_pct`` bound how much worse than the champion, evaluated on the same rows,
    the challenger may be: in the metric's units, or in percent of the champion's value."""

    #: The lowest value accepted, for a metric where larger is better (``auc: {min: 0.9}``).
    min: Optional[float] = None
    #: The highest value accepted, for a metric where smaller is better (``rmse: {max: 60000}``).
    max: Optional[float] = None
    #: How much worse than the champion's value, in the metric's units (0: at least as good).
    max_worse: Optional[float] = None
    #: How much worse than the champion's value, in percent of it.
    max_worse_pct: Optional[float] = None

    def check_values(self, key: str) -> None:
        check(self.max_worse is None or self.max_worse >= 0, f"{key}.max_worse",
              "must be >= 0 (0: at least as good as the champion)")
        check(self.max_worse_pct is None or self.max_worse_pct >= 0, f"{key}.max_worse_pct", "must be >= 0 percent")


@dataclass(frozen=True)
class PromoteConfig:
    """The promotion gate: after a run is committed and evaluated on its held-out split, it
    becomes the champion of ``model`` (``<lake>/models/<model>/``) only if it passes every
    bound in ``metrics``; a rejected run stays a committed run and the champion is
    unchanged. The first run of a model needs to pass the absolute bounds only."""

    #: The model name the run competes for; unset: no gate and no promotion.
    model: Optional[str] = None
    #: Held-out metric name → its bounds; empty: the task's primary metric, no worse than
    #: the champion's (``max_worse: 0``).
    metrics: Dict[str, MetricGate] = field(default_factory=dict)

    def __post_init__(self):
        check(self.model is None or bool(re.match(r"^[A-Za-z0-9_.\-]+$", self.model)), "promote.model",
              "use letters, digits, '_', '-', '.' (it names a directory in the lake)")
        check(self.model is not None or not self.metrics, "promote.metrics",
              "bounds need a model to promote to: set promote.model")
        for name, gate in self.metrics.items():
            gate.check_values(f"promote.metrics.{name}")


@dataclass(frozen=True)
class DriftConfig:
    """A check of the job's input against the rows a model learned from, before training:
    per feature, the population stability index (PSI) of numeric columns over the
    training split's deciles and of categorical columns over its category shares, the
    share of rows holding a category training never saw, and the share of rows
    quarantined. A value past a ``*_fail`` bound stops the job before any training (its
    own exit status); past a ``*_warn`` bound it is logged and reported."""

    #: The run to compare with: ``champion`` (the champion of ``promote.model``),
    #: ``champion:NAME`` or a run id; unset: no check. Nothing to compare with (no champion
    #: yet) skips the check, saying so.
    against: Optional[str] = None
    #: A feature's PSI that is reported as a shift (by convention: below 0.1 stable).
    psi_warn: float = 0.1
    #: A feature's PSI that stops the job (by convention: above 0.25 a large shift); null: never.
    psi_fail: Optional[float] = 0.25
    #: Share of rows with a category unseen in training, per categorical column, that is reported.
    unseen_warn: float = 0.01
    #: ... that stops the job; null: never.
    unseen_fail: Optional[float] = None
    #: Share of the input's rows quarantined (unparseable, out of the declared classes) that is reported.
    quarantine_warn: float = 0.01
    #: ... that stops the job; null: never.
    quarantine_fail: Optional[float] = None
    #: Features to check; empty: every feature.
    columns: List[str] = field(default_factory=list)

    def __post_init__(self):
        for name in ("psi", "unseen", "quarantine"):
            warn, fail = getattr(self, f"{name}_warn"), getattr(self, f"{name}_fail")
            check(warn >= 0, f"drift.{name}_warn", "must be >= 0")
            check(fail is None or fail >= warn, f"drift.{name}_fail", f"must be >= drift.{name}_warn ({warn})")
