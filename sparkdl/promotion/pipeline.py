"""The scheduled job: what ``sparkdl run`` (and ``jobs/etl_train.py``) does each night.

1. **A repeat does nothing.** The job's input is listed (files, sizes, modification
   times; :mod:`sparkdl.preparation.fingerprint`) and joined with the configuration;
   when a committed run of the job has the same fingerprint, it is the answer, unless
   ``force``. If that run was never put to the gate (its driver
   died after the commit), it is gated now.
2. **Drift stops it early.** With ``drift.against``, the input is compared with the rows
   that run learned from before anything is prepared; past a fail bound the job stops
   with :class:`~sparkdl.core.errors.DriftError`.
3. **Train**: :func:`sparkdl.workflow.run_job` (a run cut off by a crash resumes).
4. **The gate**: with ``promote.model``, the committed run is gated and the decision
   recorded (:mod:`sparkdl.promotion.promote`).

Each outcome has its exit status (:class:`Outcome`), so a scheduler can tell them apart.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from sparkdl.core.champions import CHAMPION_PREFIX, Champions, resolve_optional
from sparkdl.core.config import JobConfig
from sparkdl.core.errors import EXIT_NOTHING_TO_DO, EXIT_REJECTED, DriftError
from sparkdl.core.lake import Lake, write_json_atomic
from sparkdl.core.run_metrics import RunMetrics
from sparkdl.core.rundir import DRIFT_PLOT, RunDir
from sparkdl.core.session import get_spark
from sparkdl.preparation.fingerprint import digest, input_listing
from sparkdl.preparation.materialize import Manifest
from sparkdl.promotion.drift import DriftReport, check_drift, drift_directory
from sparkdl.promotion.gate import Decision
from sparkdl.promotion.promote import promote
from sparkdl.tracking.mlflow_run import check_tracking
from sparkdl.training.driver_callbacks import DriverCallback
from sparkdl.training.resume import config_fingerprint, find_resumable
from sparkdl.workflow import run_job

log = logging.getLogger(__name__)

TRAINED, PROMOTED, REJECTED, NOTHING_TO_DO = "trained", "promoted", "rejected", "nothing_to_do"


@dataclass
class Outcome:
    """What a scheduled run did: ``status``, the run it concerns, the gate's decision and
    the drift check, when there were any."""

    status: str
    run_path: Path
    decision: Optional[Decision] = None
    drift: Optional[DriftReport] = None

    @property
    def exit_code(self) -> int:
        return {NOTHING_TO_DO: EXIT_NOTHING_TO_DO, REJECTED: EXIT_REJECTED}.get(self.status, 0)

    @property
    def metrics(self) -> RunMetrics:
        return RunDir(self.run_path).read_metrics()

    def lines(self) -> Dict[str, str]:
        out = {"outcome": self.status}
        if self.drift is not None:
            out.update(self.drift.lines())
        if self.decision is not None:
            out.update(self.decision.lines())
        return out


class KeepInRun(DriverCallback):
    """Before the commit: the input's record and the drift check's files, into the run."""

    def __init__(self, record: Optional[Dict[str, Any]], drift: Optional[DriftReport]):
        self.record, self.drift = record, drift

    def before_commit(self, stage: RunDir, metrics: RunMetrics) -> None:
        if self.record is not None:
            write_json_atomic(stage.input_record, self.record)
        if self.drift is not None and self.drift.directory:
            for target in (stage.drift_report, stage.drift_plot):
                source = Path(self.drift.directory) / target.name
                if source.is_file():
                    shutil.copyfile(source, target)


def input_record(spark, cfg: JobConfig, lake: Lake) -> Optional[Dict[str, Any]]:
    """The job's input as of now joined with its configuration (the fingerprint), and the
    run it starts from; None when the input cannot be listed (then every run trains). A
    warm start names ``champion:NAME`` in the configuration, not the run it resolves to:
    the champion a run produced must not make its own repeat look new."""
    listing = input_listing(spark, cfg.data)
    if listing is None:
        return None
    start = resolve_optional(lake, cfg.train.fine_tune.init_from) if cfg.train.fine_tune.init_from else None
    files = [f for v in listing.values() if isinstance(v, list) for f in v]
    return {"fingerprint": digest(listing, config_fingerprint(cfg)), "config": config_fingerprint(cfg),
            "starts_from": start.name if start else None, "files": len(files), "bytes": sum(f[1] for f in files)}


def repeat_of(lake: Lake, job: str, fingerprint: str) -> Optional[Path]:
    """The newest committed run of ``job`` made from the same input and configuration."""
    for path in reversed(lake.list_runs()):
        record = RunDir(path).input_record
        if path.name.startswith(f"{job}-") and record.is_file() and \
                json.loads(record.read_text()).get("fingerprint") == fingerprint:
            return path
    return None


def decided(lake: Lake, model: str, run_id: str) -> bool:
    return any(e["run_id"] == run_id for e in Champions(lake, model).read()["history"])


def drift_baseline(lake: Lake, cfg: JobConfig) -> Optional[Path]:
    """The run whose training rows the input is compared with; None: nothing to compare with yet."""
    against = cfg.drift.against
    if against == "champion":
        against = CHAMPION_PREFIX + cfg.promote.model
    run = resolve_optional(lake, against)
    if run is None:
        log.info("drift: %s has no champion yet: nothing to compare the input with", against)
    return run


def check_input(spark, cfg: JobConfig, lake: Lake) -> Optional[DriftReport]:
    """The drift check of the job's input (:class:`DriftError` past a fail bound)."""
    baseline = drift_baseline(lake, cfg)
    if baseline is None:
        return None
    run = RunDir(baseline)
    report = check_drift(spark, Manifest.load(run.manifest), run.name, cfg.data, cfg.schema, cfg.data.train,
                         cfg.drift, drift_directory(lake.drift_dir(cfg.name)))
    if report.failed:
        raise DriftError(f"the input {cfg.data.train} drifted from run {run.name}'s training rows: "
                         f"{'; '.join(r for r in report.reasons if r.endswith('(fail)'))}. Nothing was trained; "
                         f"see {Path(report.directory) / DRIFT_PLOT} (the bounds are drift.*_fail)")
    return report


def run_scheduled(cfg: JobConfig, lake: str, spark=None, force: bool = False, baseline: bool = True,
                  fresh: bool = False) -> Outcome:
    """Run ``cfg`` as a scheduled job (see the module docstring)."""
    check_tracking(cfg.tracking)
    spark = spark or get_spark(cfg.spark)
    lake_ = Lake(lake)
    resuming = not fresh and find_resumable(lake_, cfg) is not None  # its checks passed when it started
    record = None if resuming else input_record(spark, cfg, lake_)
    if record is not None and not force:
        earlier = repeat_of(lake_, cfg.name, record["fingerprint"])
        if earlier is not None:
            if cfg.promote.model and not decided(lake_, cfg.promote.model, earlier.name):
                log.info("run %s has the same input and configuration and was never gated: gating it now",
                         earlier.name)
                return _gate(spark, lake_, earlier, cfg, None)
            log.info("nothing to do: run %s was made from the same input and configuration (--force to train "
                     "again)", earlier.name)
            return Outcome(NOTHING_TO_DO, earlier)
    drift = None if resuming or not cfg.drift.against else check_input(spark, cfg, lake_)
    result = run_job(cfg, lake, spark, baseline, driver_callbacks=[KeepInRun(record, drift)], fresh=fresh)
    if not cfg.promote.model:
        return Outcome(TRAINED, result.path, drift=drift)
    return _gate(spark, lake_, result.path, cfg, drift)


def _gate(spark, lake: Lake, run: Path, cfg: JobConfig, drift: Optional[DriftReport]) -> Outcome:
    decision = promote(spark, lake, run, cfg.promote.model, cfg)
    return Outcome(PROMOTED if decision.promote else REJECTED, run, decision, drift)
