"""The job's steps as one Python API, shared by the CLI, jobs/ and notebooks: each step
with what a person expects around it (progress, MLflow, the report, held-out evaluation)."""
from __future__ import annotations

import logging
from typing import List, Optional, Sequence

from sparkdl.core.config import JobConfig
from sparkdl.core.lake import Lake, write_json_atomic
from sparkdl.core.progress import SparkStageProgress
from sparkdl.core.run_metrics import RunMetrics
from sparkdl.core.rundir import MANIFEST, RunDir
from sparkdl.core.session import get_spark
from sparkdl.core.stopwatch import StageClock
from sparkdl.preparation.materialize import Manifest, materialize
from sparkdl.serving.evaluation import evaluate_split
from sparkdl.tracking.mlflow_run import MlflowTracking, check_tracking
from sparkdl.tracking.progress import TrainingProgress
from sparkdl.tracking.report import RunReport
from sparkdl.training import supervisor
from sparkdl.training.driver_callbacks import DriverCallback
from sparkdl.training.resume import KEPT, find_resumable
from sparkdl.training.supervisor import RunResult

log = logging.getLogger(__name__)


def prepare(cfg: JobConfig, lake: str, spark=None, clock: Optional[StageClock] = None) -> Manifest:
    """Ingest, featurize and materialize ``cfg``'s data into ``lake``; return the manifest."""
    spark = spark or get_spark(cfg.spark)
    with SparkStageProgress(spark, cfg.progress, "prepare"):
        manifest = materialize(spark, cfg, Lake(lake), clock)
    log.info("manifest: %s/%s", manifest.paths["dataset"], MANIFEST)
    return manifest


def tracking_callbacks(cfg: JobConfig) -> List[DriverCallback]:
    """What every run shows and keeps besides its model: live progress, the report after
    the commit, then MLflow (which logs the report's files)."""
    return [TrainingProgress(cfg.progress), RunReport(), MlflowTracking()]


def train(cfg: JobConfig, lake: str, spark=None, manifest: Optional[Manifest] = None, callbacks: Sequence = (),
          run_id: Optional[str] = None, clock: Optional[StageClock] = None,
          driver_callbacks: Sequence[DriverCallback] = (), fresh: bool = False,
          keep: Sequence[str] = KEPT) -> RunResult:
    """Train ``cfg`` on its prepared dataset and commit the run, with progress, the report
    and MLflow tracking (:func:`sparkdl.training.supervisor.train` has the details).
    ``driver_callbacks`` run before those (evaluation, say, so the report shows it)."""
    check_tracking(cfg.tracking)
    return supervisor.train(cfg, lake, spark=spark, manifest=manifest, callbacks=callbacks, run_id=run_id,
                            clock=clock, driver_callbacks=[*driver_callbacks, *tracking_callbacks(cfg)], fresh=fresh,
                            keep=keep)


class HeldOutEvaluation(DriverCallback):
    """Before the commit: the network and a Spark MLlib linear baseline on the held-out
    split (test, or validation when the job has none), into the run's metrics and its
    confusion matrix."""

    def __init__(self, spark, manifest: Manifest, baseline: bool, clock: StageClock):
        self.spark, self.manifest, self.baseline, self.clock = spark, manifest, baseline, clock
        self.split = "test" if "test" in manifest.paths else "validation"

    def before_commit(self, stage: RunDir, metrics: RunMetrics) -> None:
        metrics.held_out, metrics.baseline = evaluate_split(self.spark, self.manifest, str(stage.model), self.split,
                                                            self.baseline, self.clock)
        confusion = metrics.held_out.pop("confusion", None)
        for other in (metrics.baseline or {}).values():
            other.pop("confusion", None)
        if confusion is not None:
            write_json_atomic(stage.confusion, {"split": self.split, "classes": self.manifest.classes,
                                                "rows": "true class", "columns": "predicted class",
                                                "matrix": confusion})


def run_job(cfg: JobConfig, lake: str, spark=None, baseline: bool = True, callbacks: Sequence = (),
            driver_callbacks: Sequence[DriverCallback] = (), fresh: bool = False,
            keep: Sequence[str] = KEPT) -> RunResult:
    """The whole job: prepare → train → write back, evaluated on the held-out split with a
    Spark MLlib linear baseline beside it; returns the committed RunResult. When a run of
    this job and configuration was cut off (its driver died, it failed, it was interrupted),
    it is continued (on its own dataset) instead of preparing and training anew; ``fresh``
    starts a new run regardless (``keep``: see :func:`train`). ``driver_callbacks`` run after
    the evaluation (files to keep in the run, say)."""
    check_tracking(cfg.tracking)
    clock = StageClock()
    with clock.stage("session"):
        spark = spark or get_spark(cfg.spark)
    resumed = None if fresh else find_resumable(Lake(lake), cfg)  # a run of this job cut off: continue it
    run_id, manifest = resumed if resumed else (None, prepare(cfg, lake, spark, clock))
    evaluation = HeldOutEvaluation(spark, manifest, baseline, clock)
    result = train(cfg, lake, spark=spark, manifest=manifest, callbacks=callbacks, run_id=run_id, clock=clock,
                   # decided here, once: a run kept meanwhile by another driver is not taken up with this dataset
                   driver_callbacks=[evaluation, *driver_callbacks], fresh=run_id is None, keep=keep)
    m = result.metrics
    beside = f" (baseline {m.baseline_metric():.4f})" if m.baseline else ""
    log.info("run %s: %s %s %.4f%s", result.run_id, evaluation.split, m.primary_metric, m.held_out_metric(), beside)
    return result
