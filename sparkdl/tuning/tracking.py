"""A search in MLflow: one parent run per search (continued when the search resumes),
its trials' runs nested under it (``tracking.parent_run``), and at the end the best
trial's values and metrics with the summary and the plot."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from sparkdl.core.config import JobConfig
from sparkdl.tracking.mlflow_run import experiment_for, mlflow_available, store_uri

log = logging.getLogger(__name__)


class SearchTracking:
    """The search's parent MLflow run."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id

    @classmethod
    def open(cls, cfg: JobConfig, lake_root: Path, study_name: str, study) -> Optional["SearchTracking"]:
        """The parent run recorded in ``study``, else a new one; None when tracking is off."""
        t = cfg.tracking
        if t.mlflow == "off" or (t.mlflow == "auto" and not mlflow_available()):
            return None
        from mlflow.tracking import MlflowClient

        try:
            client = MlflowClient(tracking_uri=store_uri(t, lake_root))
            run_id = study.user_attrs.get("mlflow_parent_run")
            if run_id:
                client.update_run(run_id, status="RUNNING")
            else:
                run = client.create_run(experiment_for(client, cfg, lake_root), run_name=f"search-{study_name}",
                                        tags={"sparkdl.search": study_name})
                run_id = run.info.run_id
                study.set_user_attr("mlflow_parent_run", run_id)
            log.info("MLflow: search %s is run %s; its trials nest under it", study_name, run_id)
            return cls(client, run_id)
        except Exception as e:
            if t.mlflow == "on":
                raise
            log.warning("MLflow: the search is not tracked (%s)", e)
            return None

    def finish(self, report, status: str) -> None:
        """The best trial and the report's files; the run ends with ``status`` (FINISHED,
        FAILED, or KILLED for an interrupted search that will resume)."""
        try:
            best = report.best
            if best is not None:
                metrics = {f"best_{report.space.metric}": best["value"]}
                metrics.update({f"best_{best['held_out_split']}_{k}": v for k, v in (best["held_out"] or {}).items()})
                for k, v in metrics.items():
                    self.client.log_metric(self.run_id, k, float(v))
                for k, v in best["values"].items():
                    self.client.set_tag(self.run_id, f"best.{k}"[:250], str(v)[:5000])
                self.client.set_tag(self.run_id, "sparkdl.best_run_id", str(best["run_id"]))
            for path in (report.summary, report.plot):
                if path.is_file():
                    self.client.log_artifact(self.run_id, str(path))
            self.client.set_terminated(self.run_id, status)
        except Exception as e:  # the search's results are in the lake already
            log.warning("MLflow: the search's parent run %s is not fully logged: %s", self.run_id, e)
