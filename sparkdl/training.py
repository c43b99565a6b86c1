"""Driver side of training: launch the barrier stage, supervise it, write the run back.

Spark does not retry a failed barrier stage, so the driver does: when an attempt fails
for a reason a retry can help (a lost executor or worker, a collective broken by a
dead peer, a timeout), it launches the stage again and every rank resumes from the
latest complete checkpoint. An error that a retry cannot help (bad config, a bug
raising in the model code) stops at once with its own traceback.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

from sparkdl.config import JobConfig
from sparkdl.lake import Lake, new_id, staged_dir, write_json_atomic
from sparkdl.launch.driver import LaunchTimeouts, check_slots, run_on_ranks
from sparkdl.launch.errors import LaunchError, TrainingError, TrainingTimeoutError
from sparkdl.materialize import MANIFEST, Manifest
from sparkdl.models import model_spec
from sparkdl.report import write_report
from sparkdl.stages import StageClock
from sparkdl.train.checkpoints import list_checkpoints
from sparkdl.train.faults import FaultSpec
from sparkdl.train.loop import TrainSpec, train_rank

log = logging.getLogger(__name__)

METRICS, CONFIG = "metrics.json", "config.yaml"

#: Signs of a failure outside the user's code, which a fresh attempt can get past. Matched
#: against the failing exception line (or Spark's failure text when no rank reported).
RETRYABLE = ("HorovodInternalError", "Gloo", "gloo", "Connection reset", "Connection closed", "Connection refused",
             "Broken pipe", "Python worker exited unexpectedly", "ExecutorLostFailure", "exited with code",
             "Executor heartbeat timed out", "Timed out", "timed out", "EOFError")


def is_retryable(err: TrainingError) -> bool:
    if isinstance(err, TrainingTimeoutError):
        return True
    text = err.exception if err.rank is not None else f"{err.exception}\n{err.traceback_tail}"
    return any(marker in text for marker in RETRYABLE)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    path: Path
    metrics: Dict[str, Any]


def supervise(spark, spec: TrainSpec, ranks: int, cfg: JobConfig, attempts: List[Dict[str, Any]]) -> List[Any]:
    """Run the training stage, retrying retryable failures up to ``train.max_attempts``."""
    t = cfg.train
    timeouts = LaunchTimeouts(start_s=t.start_timeout_s, rendezvous_s=t.rendezvous_timeout_s,
                              progress_s=t.progress_timeout_s)
    for attempt in range(1, t.max_attempts + 1):
        done = list_checkpoints(Path(spec.checkpoint_dir))
        record = {"attempt": attempt, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "resumed_from_epoch": done[0][0] if done else 0, "error": None}
        attempts.append(record)
        t0, wall0 = time.monotonic(), time.time()
        try:
            if attempt > 1:  # a lost executor takes a while to come back
                check_slots(spark, ranks, wait_s=t.start_timeout_s)
            results = run_on_ranks(spark, lambda ctx: train_rank(spec, ctx), ranks, timeouts, attempt=attempt,
                                   env=t.env)
            record["seconds"] = round(time.monotonic() - t0, 2)
            # Launch cost: stage submission → first optimizer step on rank 0 (Spark scheduling,
            # worker start, imports, rendezvous, hvd.init, broadcast, shard plan).
            record["time_to_first_step_s"] = round(results[0]["first_step_at"] - wall0, 2)
            return results
        except TrainingError as err:
            record.update(seconds=round(time.monotonic() - t0, 2), error=str(err).splitlines()[0],
                          rank=err.rank, retryable=is_retryable(err))
            if not record["retryable"] or attempt == t.max_attempts:
                raise
            log.warning("attempt %d failed (%s); resuming from the latest checkpoint", attempt,
                        str(err).splitlines()[0])
    raise AssertionError("unreachable")  # pragma: no cover


def check_identical(results: List[Dict[str, Any]]) -> None:
    digests = {r["rank"]: r["digest"] for r in results}
    if len(set(digests.values())) != 1:
        raise TrainingError(None, f"ranks finished with different parameters: {digests}")


def train(cfg: JobConfig, lake: str, spark=None, manifest: Optional[Manifest] = None,
          fault: Optional[FaultSpec] = None, run_id: Optional[str] = None,
          before_commit: Optional[Callable[[Path, Dict[str, Any]], None]] = None,
          clock: Optional[StageClock] = None) -> RunResult:
    """Train ``cfg`` on its prepared dataset in ``lake`` and commit a complete run.

    ``before_commit(stage_dir, metrics)`` runs once the model is written and may add to
    ``metrics`` (e.g. test-set evaluation) before the run becomes visible. ``clock`` gets
    the launch, train and write_back stage times; all its stages go to ``metrics.json``."""
    from sparkdl.session import get_spark, task_slots

    lake_ = Lake(lake)
    manifest = manifest or Manifest.load(lake_.current_dataset(cfg.name))
    spark = spark or get_spark(cfg.spark)
    ranks = cfg.train.ranks or task_slots(spark)
    if ranks > min(manifest.row_groups["train"], manifest.row_groups["validation"]):
        raise LaunchError(f"{ranks} ranks but the dataset has only {manifest.row_groups} row groups; every rank "
                          "needs at least one: prepare it with a larger materialize.max_ranks")
    spec_model = model_spec(cfg.model, manifest.feature_width, len(manifest.classes))
    init_from = None
    if cfg.train.init_from:
        init_from = str(lake_.find_run(cfg.train.init_from) / "model")
    run_id = run_id or new_id(f"{cfg.name}-")
    final = lake_.run_dir(run_id)
    fault = fault or FaultSpec.from_env()
    clock = clock or StageClock()
    t0 = time.monotonic()
    with staged_dir(final) as stage:
        spec = TrainSpec(train_path=manifest.paths["train"], validation_path=manifest.paths["validation"],
                         model_spec=spec_model, train=cfg.train, checkpoint_dir=str(stage / "checkpoints"),
                         model_dir=str(stage / "model"), init_from=init_from, fault=fault)
        attempts: List[Dict[str, Any]] = []
        try:
            results = supervise(spark, spec, ranks, cfg, attempts)
        except TrainingError as err:
            err.attempts = attempts  # what was tried, for callers and reports
            log.error("training failed after %d attempt(s): %s", len(attempts), json.dumps(attempts))
            raise
        check_identical(results)
        chief = results[0]
        history = chief["history"]
        train_seconds = sum(a.get("seconds", 0) for a in attempts)
        launch_seconds = attempts[-1]["time_to_first_step_s"]
        clock.add("launch", launch_seconds)
        clock.add("train", train_seconds - launch_seconds)
        metrics = {
            "run_id": run_id,
            "history": history,
            "train": {"ranks": ranks, "epochs": len(history),
                      "samples_per_sec": (sum(h["samples_per_sec"] for h in history) / len(history)) if history else 0,
                      "steps_per_epoch": chief["steps_per_epoch"], "rows_per_shard": chief["rows_per_shard"],
                      "devices": [r["device"] for r in results], "seconds": round(train_seconds, 2),
                      "time_to_first_step_s": launch_seconds,
                      # where the launch went on rank 0; spark_task_start: submission → the task running
                      "startup": {"spark_task_start": round(launch_seconds - sum(chief["startup"].values()), 3),
                                  **chief["startup"]},
                      "identical_parameters": True},
            "validation": {"accuracy": history[-1]["val_accuracy"], "loss": history[-1]["val_loss"]} if history else {},
            "attempts": attempts,
            "dataset": {"id": manifest.dataset_id, "path": manifest.paths["dataset"]},
        }
        with clock.stage("write_back"):
            shutil.copytree(manifest.paths["preprocessing"], stage / "preprocessing")
            manifest.save(stage / MANIFEST)
            (stage / CONFIG).write_text(yaml.safe_dump(json.loads(json.dumps(cfg.to_dict())), sort_keys=False))
        if before_commit is not None:
            before_commit(stage, metrics)
        metrics["stages"] = dict(clock.seconds)  # write_back so far; the report and metrics.json follow
        write_report(stage, metrics)
        write_json_atomic(stage / METRICS, metrics)
    log.info("run %s committed in %.1fs: %s (validation accuracy %.4f)", run_id, time.monotonic() - t0, final,
             metrics["validation"].get("accuracy", float("nan")))
    return RunResult(run_id, final, metrics)
