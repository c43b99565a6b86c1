"""The job's steps as one Python API, shared by the CLI, jobs/ and notebooks."""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from sparkdl.config import JobConfig
from sparkdl.lake import Lake, write_json_atomic
from sparkdl.materialize import MANIFEST, Manifest, materialize
from sparkdl.rundir import RunDir
from sparkdl.run_metrics import RunMetrics
from sparkdl.session import get_spark
from sparkdl.stages import StageClock

log = logging.getLogger(__name__)


def prepare(cfg: JobConfig, lake: str, spark=None, clock: Optional[StageClock] = None) -> Manifest:
    """Ingest, featurize and materialize ``cfg``'s data into ``lake``; return the manifest."""
    from sparkdl.progress import SparkStageProgress

    spark = spark or get_spark(cfg.spark)
    with SparkStageProgress(spark, cfg.progress, "prepare"):
        manifest = materialize(spark, cfg, Lake(lake), clock)
    log.info("manifest: %s/%s", manifest.paths["dataset"], MANIFEST)
    return manifest


def run_job(cfg: JobConfig, lake: str, spark=None, baseline: bool = True, callbacks: Sequence = ()):
    """The whole job: prepare → train → write back, evaluated on the held-out split with a
    Spark MLlib linear baseline beside it; returns the committed RunResult. When a run of
    this job and configuration was cut off by its driver's death, it is continued (on its
    own dataset) instead of preparing and training anew."""
    from sparkdl.evaluation import evaluate_split
    from sparkdl.resume import find_resumable
    from sparkdl.supervisor import train
    from sparkdl.tracking import check_tracking

    check_tracking(cfg.tracking)
    clock = StageClock()
    with clock.stage("session"):
        spark = spark or get_spark(cfg.spark)
    resumed = find_resumable(Lake(lake), cfg)  # a run of this job whose driver died: continue it
    run_id, manifest = resumed if resumed else (None, prepare(cfg, lake, spark, clock))
    held_out = "test" if "test" in manifest.paths else "validation"

    def evaluate(stage: RunDir, metrics: RunMetrics) -> None:
        metrics.test, metrics.baseline = evaluate_split(spark, manifest, str(stage.model), held_out, baseline, clock)
        confusion = metrics.test.pop("confusion", None)
        for other in (metrics.baseline or {}).values():
            other.pop("confusion", None)
        if confusion is not None:
            write_json_atomic(stage.confusion, {"split": held_out, "classes": manifest.classes,
                                                "rows": "true class", "columns": "predicted class",
                                                "matrix": confusion})

    result = train(cfg, lake, spark=spark, manifest=manifest, callbacks=callbacks, run_id=run_id,
                   before_commit=evaluate, clock=clock)
    m = result.metrics
    beside = f" (baseline {m.baseline_metric():.4f})" if m.baseline else ""
    log.info("run %s: %s %s %.4f%s", result.run_id, held_out, m.primary_metric, m.held_out(), beside)
    return result
