"""One owner for the layout of a run directory, ``<lake>/runs/<run_id>/``::

    model/            weights.pt (a state dict) and spec.json
    preprocessing/    the fitted Spark ML PipelineModel
    checkpoints/      one file per epoch (the latest few)
    tensorboard/      rank 0's TensorBoard event files (``train.tensorboard``)
    manifest.json     the dataset the run trained on
    config.yaml       the job configuration
    metrics.json      :class:`sparkdl.core.run_metrics.RunMetrics`
    confusion.json    classification: the held-out split's confusion matrix
    metrics.png       loss, validation metrics and learning rate per epoch (written after the commit)
    confusion.png     classification: the confusion matrix as a picture (written after the commit)
    summary.txt       the same in text (written after the commit)
    mlflow.json       the MLflow run and model of this run, when tracked (:mod:`sparkdl.tracking.mlflow_run`)
    input.json        what the job's input was (its files' listing's digest): how a repeat is recognized
    drift.json        the input's drift from the champion's training rows, and drift.png, when checked
    promotion.json    the promotion gate's decision and its numbers, and promotion.png (after the commit)
    events/           rank events spooled here when the driver cannot be reached (a Connect client)
    verdicts/         the driver's answer after each epoch, when a search may stop the run
    _COMMITTED        written last, by :func:`sparkdl.core.lake.staged_dir`

and, while the run is being written (``runs/.staging-<run_id>/``), ``resume.json`` and
``.lock`` (:mod:`sparkdl.training.resume`); a staging run that failed or was interrupted
is kept with its checkpoints and ``outcome.json`` (why it stopped), and the same job
continues it.

A dataset directory keeps a ``manifest.json`` too; ``model/`` holds ``weights.pt`` and
``spec.json``; ``preprocessing/`` keeps ``embeddings.json``, ``image.json`` and
``portable.json`` beside the PipelineModel. Nothing else in sparkdl spells these names.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import yaml

from sparkdl.core.lake import write_text_atomic
from sparkdl.core.run_metrics import RunMetrics

MANIFEST = "manifest.json"
WEIGHTS, SPEC = "weights.pt", "spec.json"
PLAN_FILE = "embeddings.json"
IMAGE_SETTINGS = "image.json"
PORTABLE_FILE = "portable.json"
VECTORS_FILE = "vectors.json"
MLFLOW_FILE = "mlflow.json"
EVENT_SPOOL = "events"
VERDICTS = "verdicts"
INPUT_FILE = "input.json"
#: Why a kept staging run stopped (failed or interrupted), written as it stopped.
OUTCOME_FILE = "outcome.json"
DRIFT_FILE, DRIFT_PLOT = "drift.json", "drift.png"
PROMOTION_FILE, PROMOTION_PLOT = "promotion.json", "promotion.png"


@dataclass(frozen=True)
class RunDir:
    """The paths of one run (committed, or its staging directory while it is written)."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model(self) -> Path:
        return self.path / "model"

    @property
    def preprocessing(self) -> Path:
        return self.path / "preprocessing"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def plot(self) -> Path:
        return self.path / "metrics.png"

    @property
    def confusion(self) -> Path:
        return self.path / "confusion.json"

    @property
    def confusion_plot(self) -> Path:
        return self.path / "confusion.png"

    @property
    def summary(self) -> Path:
        return self.path / "summary.txt"

    @property
    def resume_info(self) -> Path:
        return self.path / "resume.json"

    @property
    def mlflow(self) -> Path:
        return self.path / MLFLOW_FILE

    @property
    def event_spool(self) -> Path:
        return self.path / EVENT_SPOOL

    @property
    def verdicts(self) -> Path:
        return self.path / VERDICTS

    @property
    def input_record(self) -> Path:
        return self.path / INPUT_FILE

    @property
    def drift_report(self) -> Path:
        return self.path / DRIFT_FILE

    @property
    def drift_plot(self) -> Path:
        return self.path / DRIFT_PLOT

    @property
    def promotion(self) -> Path:
        return self.path / PROMOTION_FILE

    @property
    def promotion_plot(self) -> Path:
        return self.path / PROMOTION_PLOT

    @property
    def outcome(self) -> Path:
        return self.path / OUTCOME_FILE

    @property
    def lock(self) -> Path:
        return self.path / ".lock"

    def read_confusion(self) -> Optional[Dict[str, Any]]:
        return json.loads(self.confusion.read_text()) if self.confusion.exists() else None

    def read_metrics(self) -> RunMetrics:
        return RunMetrics.load(self.metrics)

    def write_config(self, config: Dict[str, Any]) -> None:
        plain = json.loads(json.dumps(config))  # tuples → lists, so the YAML stays plain
        write_text_atomic(self.config, yaml.safe_dump(plain, sort_keys=False))

    def read_config(self) -> Dict[str, Any]:
        return yaml.safe_load(self.config.read_text()) or {}
