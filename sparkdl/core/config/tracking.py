"""What a person sees of a run: the ``progress`` and ``tracking`` sections."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from sparkdl.core.config.checks import check


@dataclass(frozen=True)
class ProgressConfig:
    """Live progress of training and of the Spark stages of prepare and score: rank 0
    reports its step every ``interval_s`` (0: never), and the driver shows progress as a
    bar (``bar``: a terminal or Jupyter), as a log line every ``lines_every_s``
    (``lines``: spark-submit logs, CI), or picks by where its output goes (``auto``)."""

    #: How often rank 0 reports its step; 0: only at each epoch's end.
    interval_s: float = 2.0
    #: ``bar`` (tqdm, in a terminal or notebook), ``lines`` (log lines), ``off``; ``auto``
    #: picks by where output goes.
    display: Literal["auto", "bar", "lines", "off"] = "auto"
    #: ``lines``: at most one line per this many seconds (and always each epoch's last).
    lines_every_s: float = 10.0

    def __post_init__(self):
        check(self.interval_s >= 0, "progress.interval_s", "must be >= 0 seconds (0 turns reports off)")
        check(self.lines_every_s > 0, "progress.lines_every_s", "must be > 0 seconds")


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow: each run's parameters, per-epoch metrics, results, pictures and model.
    ``mlflow: auto`` logs when MLflow is installed (``pip install 'sparkdl-torch[mlflow]'``);
    ``on`` requires it. Without ``uri`` the store is SQLite inside the lake
    (``<lake>/mlflow/mlflow.db``, artifacts beside it): no server needed."""

    #: ``auto``: log when MLflow is installed; ``on``: require it; ``off``.
    mlflow: Literal["auto", "on", "off"] = "auto"
    #: A tracking URI (``http://host:5000``, ``sqlite:///path.db``, ``databricks``); None: the lake's own store.
    uri: Optional[str] = None
    #: The MLflow experiment; None: the job's name.
    experiment: Optional[str] = None
    #: Register the run's model under this name in the model registry (a new version per run).
    register_as: Optional[str] = None
    #: An MLflow run id to nest this run's MLflow run under (a search sets it for its trials).
    parent_run: Optional[str] = None
