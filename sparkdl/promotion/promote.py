"""Recording decisions about a model: promotions (through the gate, or forced) and
rollbacks, in the lake first, then mirrored to MLflow.

The order is what makes a crash harmless: the decision's files are written into the
committed run, then the model's record is replaced in one rename (the old champion or
the new, never neither), then MLflow follows. A crash before the rename leaves the run
undecided, and the scheduled job gates it again when it runs next.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from sparkdl.core.champions import ROLLED_BACK, Champions
from sparkdl.core.config import JobConfig
from sparkdl.core.lake import Lake
from sparkdl.core.rundir import RunDir
from sparkdl.promotion.gate import Decision, decide, write_decision
from sparkdl.tracking.registry import log_decision, set_champion_alias

log = logging.getLogger(__name__)


def promote(spark, lake: Lake, run_path: Path, model: str, cfg: Optional[JobConfig] = None, force: bool = False,
            before_replace: Optional[Callable[[Path], None]] = None) -> Decision:
    """Gate run ``run_path`` for ``model`` and record the decision (see the module
    docstring); ``force`` promotes without the gate. ``before_replace``: fault injection
    just before the record's rename."""
    decision = decide(spark, lake, run_path, model, cfg, force)
    run = RunDir(run_path)
    write_decision(run, decision)
    Champions(lake, model).decide(decision.action, run_path, decision.reason, _details(decision),
                                  expected=decision.champion_run, before_replace=before_replace)
    metrics = {f"gate_{k}_champion": v for k, v in (decision.champion or {}).items() if k != "rows"}
    metrics["promoted"] = 1.0 if decision.promote else 0.0
    log_decision(run, metrics, {"sparkdl.promotion": decision.action, "sparkdl.promotion.model": model},
                 [run.promotion, run.promotion_plot])
    if decision.promote:
        set_champion_alias(run, model)
    return decision


def _details(decision: Decision) -> Dict[str, Any]:
    """What the model's history keeps of a decision: the numbers behind it."""
    return {"split": decision.split, "rows": decision.rows, "forced": decision.forced,
            "checks": [{"metric": c.metric, "rule": c.rule, "bound": c.bound, "challenger": c.challenger,
                        "champion": c.champion, "passed": c.passed} for c in decision.checks]}


def rollback(lake: Lake, model: str, to: Optional[str] = None) -> Dict[str, Any]:
    """Serve the champion before the current one again (or run ``to``, which served before)."""
    champions = Champions(lake, model)
    current = champions.champion()
    target = champions.rollback_target(to)
    before = current["run_id"] if current else None
    entry = champions.decide(ROLLED_BACK, target, f"rolled back from {before} by hand", expected=before)
    set_champion_alias(RunDir(target), model)
    log.info("model %s: champion is run %s again (was %s)", model, target.name, before)
    return entry
