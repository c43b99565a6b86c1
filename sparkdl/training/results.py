"""What the ranks returned, checked and assembled into the run's metrics."""
from __future__ import annotations

from typing import Any, Dict, List

from sparkdl.core.errors import TrainingError
from sparkdl.core.run_metrics import RunMetrics
from sparkdl.preparation.materialize import Manifest
from sparkdl.training.rank.loop import kept_entry


def check_identical(results: List[Dict[str, Any]]) -> None:
    """Replicas end with the same parameters: every rank (rank 0 only for FSDP, whose
    shards differ), or, where ranks split a model, the ranks holding the same part."""
    parts: Dict[int, Dict[int, str]] = {}
    for r in results:
        if r["digest"] is not None:
            parts.setdefault(r.get("part", 0), {})[r["rank"]] = r["digest"]
    for digests in parts.values():
        if len(set(digests.values())) != 1:
            raise TrainingError(None, f"ranks finished with different parameters: {digests}")
    if not parts:
        raise TrainingError(None, "no rank returned its parameters' digest")


def run_metrics(run_id: str, ranks: int, results: List[Dict[str, Any]], attempts: List[Dict[str, Any]],
                manifest: Manifest) -> RunMetrics:
    """The run's metrics from every rank's result (rank 0's history) and the attempts;
    ranks that finished with different parameters are an error."""
    check_identical(results)
    chief = results[0]
    history = chief["history"]
    stopping = chief["extras"].get("early_stopping")
    kept = kept_entry(history, chief["extras"])
    kept_epoch = kept["epoch"] if kept else 0
    launch_seconds = attempts[-1]["time_to_first_step_s"]
    train = {"ranks": ranks, "epochs": len(history),
             "samples_per_sec": (sum(h["samples_per_sec"] for h in history) / len(history)) if history else 0,
             "steps_per_epoch": chief["steps_per_epoch"], "rows_per_rank": chief["rows_per_rank"],
             "coverage": min((h["coverage"] for h in history if "coverage" in h), default=None),
             "devices": [r["device"] for r in results], "seconds": round(sum(a.get("seconds", 0) for a in attempts), 2),
             "time_to_first_step_s": launch_seconds, "identical_parameters": True, "kept_epoch": kept_epoch,
             "stopped_early": bool(stopping and stopping["stopped_early"])}
    if stopping:
        train["early_stopping"] = stopping
    if "stopped_by_driver" in chief["extras"]:  # a search's pruner stopped it
        train["stopped_by_driver"] = chief["extras"]["stopped_by_driver"]
    startup = chief["extras"].get("startup")
    if startup:  # where the launch went on rank 0 (a StartupTimer callback); spark_task_start: submission → task
        train["startup"] = {"spark_task_start": round(launch_seconds - sum(startup.values()), 3), **startup}
    return RunMetrics(
        run_id=run_id, history=history, train=train,
        validation={"epoch": kept_epoch, **{k[len("val_"):]: v for k, v in kept.items() if k.startswith("val_")}}
        if kept else {},
        attempts=attempts, dataset={"id": manifest.dataset_id, "path": manifest.paths["dataset"]},
        task=manifest.task)
