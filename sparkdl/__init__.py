"""sparkdl: deep learning on Apache Spark, end to end.

Spark ingests and featurizes the data, one barrier-mode stage trains a PyTorch model
with ring-allreduce inside the executors, and the run (model, preprocessing, metrics)
is committed to the lake atomically, ready for batch scoring in Spark::

    import sparkdl

    cfg = sparkdl.load_config("conf/adult.yaml")
    run = sparkdl.run_job(cfg, "/lake")
    sparkdl.score(spark, run.path, "new.csv", "predictions/")

Names are imported on first use, so ``import sparkdl`` stays light (executors import
the training side only).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "load_config": "sparkdl.core.config.loading",
    "parse_config": "sparkdl.core.config.loading",
    "JobConfig": "sparkdl.core.config",
    "get_spark": "sparkdl.core.session",
    "prepare": "sparkdl.workflow",
    "run_job": "sparkdl.workflow",
    "train": "sparkdl.workflow",
    "score": "sparkdl.serving.score",
    "tune": "sparkdl.tuning.search",
    "run_scheduled": "sparkdl.promotion.pipeline",
    "promote": "sparkdl.promotion.promote",
    "rollback": "sparkdl.promotion.promote",
    "check_drift": "sparkdl.promotion.drift",
    "Champions": "sparkdl.core.champions",
    "load_run": "sparkdl.serving.transformer",
    "RunModel": "sparkdl.serving.transformer",
    "evaluate_run": "sparkdl.serving.evaluation",
    "Manifest": "sparkdl.preparation.materialize",
    "RunResult": "sparkdl.training.supervisor",
    "RunMetrics": "sparkdl.core.run_metrics",
    "RunDir": "sparkdl.core.rundir",
    "ScoreReport": "sparkdl.serving.score",
    "Callback": "sparkdl.training.rank.callbacks",
    "ConfigError": "sparkdl.core.errors",
    "ParamError": "sparkdl.core.errors",
    "BadDataError": "sparkdl.core.errors",
    "LakeError": "sparkdl.core.errors",
    "LaunchError": "sparkdl.core.errors",
    "TrainingError": "sparkdl.core.errors",
    "TrainingTimeoutError": "sparkdl.core.errors",
    "ScoringError": "sparkdl.core.errors",
    "DriftError": "sparkdl.core.errors",
    "SparkdlError": "sparkdl.core.errors",
    "InputError": "sparkdl.core.errors",
    "RunError": "sparkdl.core.errors",
    "DriverCallback": "sparkdl.training.driver_callbacks",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sparkdl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
