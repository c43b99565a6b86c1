"""MLflow tracking: a sparkdl run logged as an MLflow run, with its model as an MLflow
model that scores raw input rows.

The MLflow run opens when training starts (its parameters: the flattened config), gets
each epoch's metrics as rank 0 reports them to the driver, and after the sparkdl run is
committed gets the test and baseline metrics, the pictures, summary, metrics and config
files, and the model: a ``pyfunc`` model holding the network and the preprocessing as
numbers (:mod:`sparkdl.preparation.portable`), with the declared input columns as its signature.
``mlflow.pyfunc.load_model(uri).predict(raw_rows)`` and ``mlflow.pyfunc.spark_udf`` score
with it, no Spark session needed. A run cut off by its driver's death resumes its MLflow
run too (its id is kept in the run directory, ``mlflow.json``).

MLflow is never allowed to lose a run: once the sparkdl run is committed, a failure to
log it only warns. Logging goes through an ``MlflowClient`` for the configured store, so a
notebook's own ``mlflow.set_tracking_uri`` is left as it was.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from sparkdl.core.config import JobConfig, TrackingConfig
from sparkdl.core.errors import ConfigError
from sparkdl.core.lake import write_json_atomic
from sparkdl.core.run_metrics import RunMetrics
from sparkdl.core.rundir import RunDir
from sparkdl.training.driver_callbacks import DriverCallback, RunStart
from sparkdl.training.launch.events import Event, EventType

log = logging.getLogger(__name__)

MODEL_NAME = "model"


def mlflow_available() -> bool:
    return importlib.util.find_spec("mlflow") is not None


def check_tracking(cfg: TrackingConfig) -> None:
    """Before any Spark work: ``tracking.mlflow: on`` needs MLflow installed."""
    if cfg.mlflow == "on" and not mlflow_available():
        raise ConfigError("tracking.mlflow", "is 'on' but MLflow is not installed: pip install "
                                             "'sparkdl-torch[mlflow]' (or set tracking.mlflow: auto or off)")


def store_uri(cfg: TrackingConfig, lake_root: Path) -> str:
    """The tracking URI: ``tracking.uri``, or the lake's SQLite store."""
    if cfg.uri:
        return cfg.uri
    (lake_root / "mlflow").mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{lake_root / 'mlflow' / 'mlflow.db'}"


def flatten(value: Any, prefix: str = "") -> Dict[str, str]:
    """A nested config as ``{"train.optimizer.lr": "0.002", ...}`` (MLflow parameters)."""
    if isinstance(value, dict):
        out: Dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)}


def experiment_for(client, cfg: JobConfig, lake_root: Path) -> str:
    """The id of the job's experiment (``tracking.experiment``, else the job's name),
    created with its artifacts in the lake when the store is the lake's own."""
    name = cfg.tracking.experiment or cfg.name
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = None if cfg.tracking.uri else (lake_root / "mlflow" / "artifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except Exception:  # created by a concurrent run of this driver a moment ago
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


class MlflowRun:
    """One sparkdl run's MLflow run (see the module docstring)."""

    def __init__(self, client, uri: str, run_id: str, experiment_id: str):
        self.client, self.uri, self.run_id, self.experiment_id = client, uri, run_id, experiment_id

    @classmethod
    def open(cls, cfg: JobConfig, lake_root: Path, run_name: str, stage: RunDir) -> Optional["MlflowRun"]:
        """Start (or, for a resumed run, continue) the MLflow run; None when tracking is
        off, or ``auto`` without MLflow. A store that cannot be reached is an error under
        ``on`` and a warning under ``auto``, before training starts."""
        t = cfg.tracking
        if t.mlflow == "off" or (t.mlflow == "auto" and not mlflow_available()):
            if t.mlflow == "auto":
                log.info("MLflow is not installed: this run is not tracked (pip install 'sparkdl-torch[mlflow]')")
            return None
        uri = store_uri(t, lake_root)
        try:
            return cls._start(cfg, lake_root, uri, run_name, stage)
        except Exception as e:
            if t.mlflow == "on":
                raise ConfigError("tracking.uri", f"MLflow tracking at {uri} failed: {e}") from e
            log.warning("MLflow tracking at %s failed (%s): this run is not tracked", uri, e)
            return None

    @classmethod
    def _start(cls, cfg: JobConfig, lake_root: Path, uri: str, run_name: str, stage: RunDir) -> "MlflowRun":
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        saved = stage.mlflow
        if saved.is_file():  # a resumed sparkdl run continues its MLflow run
            info = json.loads(saved.read_text())
            if info.get("tracking_uri") == uri:
                client.update_run(info["run_id"], status="RUNNING")
                log.info("MLflow: continuing run %s at %s", info["run_id"], uri)
                return cls(client, uri, info["run_id"], info["experiment_id"])
        name = cfg.tracking.experiment or cfg.name
        experiment_id = experiment_for(client, cfg, lake_root)
        tags = {"sparkdl.run_id": run_name}
        if cfg.tracking.parent_run:
            tags["mlflow.parentRunId"] = cfg.tracking.parent_run
        run = client.create_run(experiment_id, run_name=run_name, tags=tags)
        params = [Param(k[:250], v[:6000]) for k, v in sorted(flatten(cfg.to_dict()).items())]
        for i in range(0, len(params), 100):
            client.log_batch(run.info.run_id, params=params[i:i + 100])
        tracked = cls(client, uri, run.info.run_id, experiment_id)
        tracked._save_ids(stage)
        log.info("MLflow: run %s in experiment %r at %s", run.info.run_id, name, uri)
        return tracked

    def _save_ids(self, run: RunDir, **more: str) -> None:
        """``mlflow.json`` in the run directory: where this MLflow run is (and its model)."""
        write_json_atomic(run.mlflow, {"tracking_uri": self.uri, "run_id": self.run_id,
                                       "experiment_id": self.experiment_id, **more})

    def on_event(self, event: Event) -> None:
        """Rank 0's epoch reports → metrics at step = epoch, as they arrive."""
        if event.type is not EventType.EPOCH or event.rank != 0:
            return
        try:
            self.log_metrics({k: v for k, v in event.fields.items() if k not in ("epoch", "attempt")},
                             step=int(event.get("epoch")))
        except Exception as e:  # the training must not stop for a metric
            log.warning("MLflow: epoch metrics not logged: %s", e)

    def log_metrics(self, values: Dict[str, Any], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, run: RunDir, metrics: RunMetrics, cfg: JobConfig) -> None:
        """The committed run's results, files and model; then the MLflow run ends FINISHED."""
        try:
            split = metrics.held_out_split
            results: Dict[str, Any] = {f"{split}_{k}": v for k, v in (metrics.held_out or {}).items()}
            for model, values in (metrics.baseline or {}).items():
                results.update({f"baseline_{model}_{k}": v for k, v in values.items()})
            results.update({f"best_val_{k}": v for k, v in metrics.validation.items() if k != "epoch"})
            self.log_metrics(results)
            for path in (run.metrics, run.plot, run.summary, run.config, run.confusion, run.confusion_plot,
                         run.manifest, run.drift_report, run.drift_plot):
                if path.is_file():
                    self.client.log_artifact(self.run_id, str(path))
            uri = self._log_model(run, cfg)
            self._save_ids(run, model_uri=uri)
            self.client.set_terminated(self.run_id, "FINISHED")
            log.info("MLflow: run %s logged with its model %s", self.run_id, uri)
        except Exception as e:  # the sparkdl run is committed; MLflow must not lose it
            log.warning("MLflow: run %s is committed in the lake but not fully logged to %s: %s", run.name,
                        self.uri, e)

    def fail(self, error: BaseException) -> None:
        try:
            self.client.set_tag(self.run_id, "sparkdl.error", str(error)[:5000])
            self.client.set_terminated(self.run_id, "FAILED")
        except Exception as e:
            log.warning("MLflow: run %s not marked failed: %s", self.run_id, e)

    def _log_model(self, run: RunDir, cfg: JobConfig) -> str:
        """The network and the preprocessing as one pyfunc model; registered when configured."""
        import mlflow

        from sparkdl.tracking.pyfunc import log_pyfunc

        with fluent_tracking_uri(self.uri), mlflow.start_run(run_id=self.run_id):
            info = log_pyfunc(run, cfg)
        if cfg.tracking.register_as:
            with fluent_tracking_uri(self.uri):
                version = mlflow.register_model(info.model_uri, cfg.tracking.register_as)
            log.info("MLflow: registered %s version %s", cfg.tracking.register_as, version.version)
        return info.model_uri


#: MLflow's tracking URI is one per process: two jobs of one driver (threads) that point it
#: at their own stores must take turns, or one job's model lands in the other's store, or
#: in the default ``./mlflow.db`` restored under it.
_FLUENT_URI = threading.Lock()
_BARS = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextlib.contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API pointed at ``uri`` for a moment (one job at a time), without the
    download bars MLflow prints while it checks the model it logged (they say nothing to
    a user whose run is already committed); the caller's settings restored after."""
    import mlflow

    with _FLUENT_URI:
        before = mlflow.get_tracking_uri()
        bars = os.environ.get(_BARS)
        mlflow.set_tracking_uri(uri)
        if bars is None:  # a user who asked for the bars keeps them
            os.environ[_BARS] = "false"
        try:
            yield
        finally:
            mlflow.set_tracking_uri(before)
            if bars is None:
                os.environ.pop(_BARS, None)


class MlflowTracking(DriverCallback):
    """A sparkdl run mirrored to MLflow as it happens: opened with the run, epoch metrics as
    they arrive, results and the model after the commit, FAILED when the run fails."""

    def __init__(self) -> None:
        self.run: Optional[MlflowRun] = None
        self.cfg: Optional[JobConfig] = None

    def on_run_start(self, run: RunStart) -> None:
        self.cfg = run.cfg
        self.run = MlflowRun.open(run.cfg, run.lake_root, run.run_id, run.stage)

    def on_event(self, event: Event) -> None:
        if self.run is not None:
            self.run.on_event(event)

    def after_commit(self, run: RunDir, metrics: RunMetrics) -> None:
        if self.run is not None:
            self.run.finish(run, metrics, self.cfg)

    def on_failure(self, error: BaseException) -> None:
        if self.run is not None:
            self.run.fail(error)
