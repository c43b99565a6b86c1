"""The promotion gate: whether a committed run (the challenger) may replace a model's
champion.

The champion is evaluated again on the challenger's held-out rows (its ``data.test``, or
the same hash split of its input), each run through its own preprocessing and network,
so both numbers come from the same rows however their datasets differ. Then every bound
of ``promote.metrics`` is checked: absolute bounds always, bounds relative to the
champion when there is one, each in the direction its metric improves. The decision,
every number behind it and the reason are kept in the run (``promotion.json``, and
``promotion.png``: challenger against champion per metric) and in the model's history
(:mod:`sparkdl.core.champions`).
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from sparkdl.core.champions import PROMOTED, REJECTED, Champions
from sparkdl.core.config import JobConfig, MetricGate
from sparkdl.core.errors import ConfigError, LakeError
from sparkdl.core.figures import pyplot, save_figure
from sparkdl.core.lake import Lake, write_json_atomic
from sparkdl.core.rundir import RunDir
from sparkdl.core.task_metrics import format_metric, metric_direction
from sparkdl.preparation.ingest import ingest, release
from sparkdl.preparation.materialize import split_frames
from sparkdl.serving.evaluation import evaluate_rows
from sparkdl.serving.transformer import RunModel

log = logging.getLogger(__name__)

@dataclass
class Check:
    """One bound on one metric, and whether the challenger met it."""

    metric: str
    rule: str
    bound: float
    challenger: float
    champion: Optional[float]
    passed: bool

    def text(self) -> str:
        """``auc 0.8970 (bound: at most 0.002 below the champion's 0.9000)``."""
        c = format_metric(float(self.challenger))
        if self.rule in ("min", "max"):
            return f"{self.metric} {c} (bound: {'>=' if self.rule == 'min' else '<='} {format_metric(float(self.bound))})"
        worse = "below" if metric_direction(self.metric) == "max" else "above"
        unit = "%" if self.rule == "max_worse_pct" else ""
        return (f"{self.metric} {c} (bound: at most {self.bound:g}{unit} {worse} the champion's "
                f"{format_metric(float(self.champion))})")


@dataclass
class Decision:
    """The gate's verdict on a challenger (``promote``), with every number behind it."""

    model: str
    run_id: str
    champion_run: Optional[str]
    promote: bool
    reason: str
    split: str
    rows: int
    checks: List[Check] = field(default_factory=list)
    challenger: Dict[str, Any] = field(default_factory=dict)
    champion: Optional[Dict[str, Any]] = None
    forced: bool = False

    @property
    def action(self) -> str:
        return PROMOTED if self.promote else REJECTED

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def lines(self) -> Dict[str, str]:
        out = {"promotion": self.action, "promotion_model": self.model,
               "promotion_champion_before": self.champion_run or "none", "promotion_reason": self.reason,
               "promotion_rows": str(self.rows)}
        for c in self.checks:
            out[f"gate_{c.metric}_challenger"] = f"{c.challenger:.4f}"
            if c.champion is not None:
                out[f"gate_{c.metric}_champion"] = f"{c.champion:.4f}"
        return out


def gate_rules(cfg: JobConfig) -> Dict[str, MetricGate]:
    """``promote.metrics``, or the task's primary metric no worse than the champion's."""
    if cfg.promote.metrics:
        return dict(cfg.promote.metrics)
    primary = "rmse" if cfg.schema.task == "regression" else "accuracy"
    return {primary: MetricGate(max_worse=0.0)}


def judge(rules: Dict[str, MetricGate], challenger: Dict[str, Any],
          champion: Optional[Dict[str, Any]]) -> Tuple[bool, str, List[Check]]:
    """Check every bound; (passed, the reason in words, the checks)."""
    checks: List[Check] = []
    for metric, gate in rules.items():
        c = float(challenger[metric])
        higher = metric_direction(metric) == "max"
        if gate.min is not None:
            checks.append(Check(metric, "min", gate.min, c, None, c >= gate.min))
        if gate.max is not None:
            checks.append(Check(metric, "max", gate.max, c, None, c <= gate.max))
        if champion is None:
            continue
        h = float(champion[metric])
        worse = (h - c) if higher else (c - h)  # > 0: the challenger is worse
        if gate.max_worse is not None:
            checks.append(Check(metric, "max_worse", gate.max_worse, c, h, worse <= gate.max_worse + 1e-12))
        if gate.max_worse_pct is not None:
            checks.append(Check(metric, "max_worse_pct", gate.max_worse_pct, c, h,
                                worse <= gate.max_worse_pct / 100 * abs(h) + 1e-12))
    failed = [c for c in checks if not c.passed]
    if failed:
        return False, "rejected: " + "; ".join(c.text() for c in failed), checks
    first = "first champion" if champion is None else "no worse than the champion"
    return True, f"promoted ({first}): " + ("; ".join(c.text() for c in checks) or "no bounds"), checks


def held_out_rows(spark, cfg: JobConfig, run: RunModel, scratch: Path):
    """The challenger's held-out rows as ingest accepts them (its test source, or the same
    hash split of its input that made its test, else validation, split), the split's name,
    and the ingested frame to release after."""
    if run.manifest.test_source == "data.test":
        accepted, _ = ingest(spark, cfg.data, cfg.schema, cfg.data.test, str(scratch / "test"), key="test")
        return accepted, "test", accepted
    accepted, _ = ingest(spark, cfg.data, cfg.schema, cfg.data.train, str(scratch / "train"))
    split = "test" if "test" in run.manifest.paths else "validation"
    return split_frames(accepted, cfg.materialize, cfg.schema.validation_indicator)[split], split, accepted


def decide(spark, lake: Lake, run_path: Path, model: str, cfg: Optional[JobConfig] = None,
           force: bool = False) -> Decision:
    """The gate's decision on run ``run_path`` for ``model`` (``force``: promoted without
    the gate, for an operator's manual promotion), made against the champion it names.
    Nothing is recorded yet."""
    challenger = RunModel(run_path)
    cfg = cfg or challenger.config
    champions = Champions(lake, model)
    current = champions.champion()
    before = current["run_id"] if current else None
    if before == run_path.name:
        raise LakeError(f"run {before} is already the champion of {model!r}")
    champion_path = champions.champion_run() if current else None
    metrics = challenger.run.read_metrics()
    split = metrics.held_out_split
    if force:
        return Decision(model, run_path.name, before, True, "promoted by hand (--force)", split,
                        int((metrics.held_out or {}).get("rows", 0)), challenger=_scalars(metrics.held_out or {}),
                        forced=True)
    rules = gate_rules(cfg)
    if champion_path is None:  # the first run of a model: its own held-out metrics, absolute bounds
        mine, theirs, rows = dict(metrics.held_out or {}), None, int((metrics.held_out or {}).get("rows", 0))
    else:
        scratch = Path(tempfile.mkdtemp(prefix=".gate-", dir=champions.dir))
        try:
            rows_df, split, ingested = held_out_rows(spark, cfg, challenger, scratch)
            try:
                mine = evaluate_rows(challenger, rows_df)
                theirs = evaluate_rows(RunModel(champion_path), rows_df)
            finally:
                release(ingested)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        rows = int(mine.get("rows", 0))
    missing = [m for m in rules if m not in mine]
    if missing:
        raise ConfigError(f"promote.metrics.{missing[0]}", f"run {run_path.name}'s held-out evaluation has no such "
                                                           f"metric (it has {sorted(k for k in mine if k != 'rows')})")
    ok, reason, checks = judge(rules, mine, theirs)
    decision = Decision(model, run_path.name, before, ok, reason, split, rows, checks, _scalars(mine),
                        _scalars(theirs) if theirs else None)
    log.info("gate for %s, run %s: %s", model, run_path.name, reason)
    return decision


def _scalars(metrics: Dict[str, Any]) -> Dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def write_decision(run: RunDir, decision: Decision) -> None:
    """``promotion.json`` and ``promotion.png`` in the (committed) run."""
    write_json_atomic(run.promotion, decision.to_dict())
    if decision.checks:
        plot_decision(decision, run.promotion_plot)


def plot_decision(decision: Decision, path: Path) -> None:
    """Per gated metric: the challenger and the champion on the same rows, and the bounds."""
    plt = pyplot()
    metrics = list(dict.fromkeys(c.metric for c in decision.checks))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics) + 1, 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        names, values, colors = ["challenger"], [decision.challenger[metric]], ["tab:blue"]
        if decision.champion is not None:
            names.append("champion")
            values.append(decision.champion[metric])
            colors.append("tab:grey")
        ax.bar(names, values, color=colors)
        for c in (c for c in decision.checks if c.metric == metric):
            limit = c.bound if c.rule in ("min", "max") else _relative_limit(c)
            ax.axhline(limit, color="tab:green" if c.passed else "tab:red", linestyle="--",
                       label=f"{c.rule} {format_metric(limit)}")
        low = min(values + [c.bound for c in decision.checks if c.metric == metric and c.rule in ("min", "max")])
        ax.set_ylim(low * 0.98 if low > 0 else None)
        ax.set_title(metric)
        ax.legend(fontsize=7)
    fig.suptitle(f"{decision.model}: run {decision.run_id} {decision.action}")
    fig.tight_layout()
    save_figure(fig, path)


def _relative_limit(check: Check) -> float:
    """The value a relative bound allows, in the metric's units."""
    slack = check.bound if check.rule == "max_worse" else check.bound / 100 * abs(check.champion)
    return check.champion - slack if metric_direction(check.metric) == "max" else check.champion + slack

