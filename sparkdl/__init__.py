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
    "load_config": "sparkdl.config_loading",
    "parse_config": "sparkdl.config_loading",
    "JobConfig": "sparkdl.config",
    "get_spark": "sparkdl.session",
    "prepare": "sparkdl.workflow",
    "run_job": "sparkdl.workflow",
    "train": "sparkdl.supervisor",
    "score": "sparkdl.inference",
    "load_run": "sparkdl.run_model",
    "RunModel": "sparkdl.run_model",
    "evaluate_run": "sparkdl.evaluation",
    "Manifest": "sparkdl.materialize",
    "RunResult": "sparkdl.supervisor",
    "RunMetrics": "sparkdl.run_metrics",
    "RunDir": "sparkdl.rundir",
    "ScoreReport": "sparkdl.inference",
    "Callback": "sparkdl.rank.callbacks",
    "ConfigError": "sparkdl.config",
    "BadDataError": "sparkdl.ingest",
    "LakeError": "sparkdl.lake",
    "LaunchError": "sparkdl.launch.errors",
    "TrainingError": "sparkdl.launch.errors",
    "TrainingTimeoutError": "sparkdl.launch.errors",
    "ScoringError": "sparkdl.inference",
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
