"""A model's champion in MLflow's model registry, following the lake's pointer.

The lake (:mod:`sparkdl.core.champions`) decides; MLflow mirrors it. After every
decision the run's MLflow run gets the gate's numbers, its decision as a tag and the
decision's files; after a promotion or a rollback the run's model version (registered
now if the run did not register it) gets the alias ``champion``, so
``models:/NAME@champion`` loads what the lake serves. Failures here warn: the lake's
decision stands, and the next decision sets the alias again.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from sparkdl.core.rundir import RunDir
from sparkdl.tracking.mlflow_run import fluent_tracking_uri

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"


def _tracked(run: RunDir) -> Optional[Dict[str, Any]]:
    if not run.mlflow.is_file():
        return None
    return json.loads(run.mlflow.read_text())


def log_decision(run: RunDir, metrics: Dict[str, float], tags: Dict[str, str], files: List[Path]) -> None:
    """The gate's numbers, its decision and its files on the run's MLflow run (when tracked)."""
    info = _tracked(run)
    if info is None:
        return
    try:
        from mlflow.entities import Metric, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=info["tracking_uri"])
        now = int(time.time() * 1000)
        client.log_batch(info["run_id"], metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
        for f in files:
            if f.is_file():
                client.log_artifact(info["run_id"], str(f))
    except Exception as e:
        log.warning("MLflow: the decision on run %s is in the lake but not logged: %s", run.name, e)


def set_champion_alias(run: RunDir, model: str) -> Optional[str]:
    """Point ``models:/<model>@champion`` at the run's model version; its version, or None
    when the run is not tracked or MLflow could not be reached."""
    info = _tracked(run)
    if info is None or not info.get("model_uri"):
        log.info("MLflow: run %s has no logged model; the alias %s@%s is unchanged", run.name, model, CHAMPION_ALIAS)
        return None
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=info["tracking_uri"], registry_uri=info["tracking_uri"])
        versions = client.search_model_versions(f"name='{model}' and run_id='{info['run_id']}'")
        if versions:
            version = max(versions, key=lambda v: int(v.version)).version
        else:
            import mlflow

            with fluent_tracking_uri(info["tracking_uri"]):
                version = mlflow.register_model(info["model_uri"], model).version
        client.set_registered_model_alias(model, CHAMPION_ALIAS, str(version))
        log.info("MLflow: %s@%s is version %s (run %s)", model, CHAMPION_ALIAS, version, run.name)
        return str(version)
    except Exception as e:
        log.warning("MLflow: the lake's champion of %s is run %s, but the alias %s@%s was not set: %s", model,
                    run.name, model, CHAMPION_ALIAS, e)
        return None


def champion_alias(tracking_uri: str, model: str) -> Optional[str]:
    """The MLflow run id behind ``models:/<model>@champion``; None when there is no alias."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        return client.get_model_version_by_alias(model, CHAMPION_ALIAS).run_id
    except Exception:
        return None
