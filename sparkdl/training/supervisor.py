"""Driver side of training: the run's lifecycle (lock, staging, commit) and the retry loop
around the barrier stage. What ranks get is built by :mod:`~sparkdl.training.spec`, what
they return becomes the run's metrics in :mod:`~sparkdl.training.results`.

Spark does not retry a failed barrier stage, so the driver does: when an attempt fails
in a way a retry can help (a lost executor or worker, a collective broken by a dead
peer, a timeout: :class:`~sparkdl.training.launch.failures.RetryPolicy`), it launches the stage
again and every rank resumes from the latest complete checkpoint. An error that a retry
cannot help (a bug raising in the model code, bad data) stops at once with its own
traceback. The rank-side loop is :mod:`sparkdl.training.rank.loop`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from sparkdl.core.champions import resolve_optional
from sparkdl.core.config import JobConfig
from sparkdl.core.errors import LakeError, TrainingError
from sparkdl.core.lake import Lake, new_id, staged_dir, staging_path, utc_now
from sparkdl.core.run_metrics import RunMetrics
from sparkdl.core.rundir import RunDir
from sparkdl.core.stopwatch import StageClock
from sparkdl.preparation.materialize import Manifest
from sparkdl.training.driver_callbacks import DriverCallback, DriverCallbacks, RunStart
from sparkdl.training.launch.driver import check_slots, log_event, run_on_ranks
from sparkdl.training.launch.events import Event, EventType
from sparkdl.training.launch.failures import Decision, RetryPolicy
from sparkdl.training.launch.slots import ledger_for
from sparkdl.training.rank.callbacks import Callback
from sparkdl.training.rank.checkpoints import list_checkpoints
from sparkdl.training.rank.loop import TrainSpec, train_rank
from sparkdl.training.results import run_metrics
from sparkdl.training.resume import KEPT, RunLock, earlier_stops, find_resumable, keep_stopped, write_resume_info
from sparkdl.training.spec import dataset_data, train_spec
from sparkdl.training.verdicts import AwaitVerdict

log = logging.getLogger(__name__)

#: How long a driver tries for its run's lock: another driver checking whether the run is
#: abandoned holds it for an instant, a live driver writing the run holds it for good.
RUN_LOCK_WAIT_S = 2.0


@dataclass(frozen=True)
class RunResult:
    """A committed run: its id, its directory and what it measured."""

    run_id: str
    path: Path
    metrics: RunMetrics

    @property
    def run_dir(self) -> RunDir:
        return RunDir(self.path)


def supervise(spark, spec: TrainSpec, ranks: int, cfg: JobConfig, attempts: List[Dict[str, Any]],
              policy: Optional[RetryPolicy] = None, callbacks: DriverCallbacks = DriverCallbacks(),
              spool: Optional[Path] = None, holder: str = "a run") -> List[Any]:
    """Run the training stage, retrying what ``policy`` allows (``train.failure.max_attempts``).
    Every event the ranks send but progress is logged; all go to ``callbacks``. ``spool``:
    where ranks that cannot reach this process write their events (one directory per
    attempt, removed once the attempt's events are read). Each attempt first reserves its
    slots among this driver's other runs (:mod:`~sparkdl.training.launch.slots`), as ``holder``."""
    from sparkdl.core.session import known_task_slots, master_of

    launch = cfg.train.launch
    if cfg.train.horovod is not None:  # Horovod's knobs are environment variables of its ranks
        launch = dataclasses.replace(launch, env={**cfg.train.horovod.env(), **launch.env})
    policy = policy or RetryPolicy(cfg.train.failure.max_attempts)
    by_spark = launch.launcher == "spark"
    ledger = ledger_for(master_of(spark)) if by_spark else None
    attempt = 0
    while True:
        attempt += 1
        done = list_checkpoints(Path(spec.checkpoint_dir))
        record = {"attempt": attempt, "started": utc_now(), "resumed_from_epoch": done[0][0] if done else 0,
                  "ranks": ranks, "error": None}
        attempts.append(record)
        t0, wall0 = time.monotonic(), time.time()
        attempt_spool = spool / f"attempt-{attempt}" if spool else None
        try:
            reserved = contextlib.nullcontext(0.0)  # another launcher's ranks are its processes, not task slots
            if by_spark:
                if attempt > 1:  # a lost executor takes a while to come back
                    check_slots(spark, ranks, wait_s=launch.start_timeout_s)
                # a cluster still short of slots is check_slots' to wait for and report, not the ledger's
                total = max(known_task_slots(spark) or ranks, ranks)
                reserved = ledger.reserve(holder, ranks, total, launch.slot_wait_s)
            with reserved as waited:
                t0, wall0 = time.monotonic(), time.time()
                # the stage's start, after any wait for slots (and in seconds since the epoch, to
                # set runs' stages against each other)
                record.update(started=utc_now(), started_unix=round(wall0, 3))
                if waited >= 1.0:
                    record["waited_for_slots_s"] = round(waited, 2)
                callbacks.on_attempt_start(attempt)
                results = run_on_ranks(spark, lambda ctx: train_rank(spec, ctx), ranks, launch,
                                       on_event=lambda e: _dispatch(e, callbacks),
                                       # a launcher's own restarts number the ranks' attempts in between
                                       attempt=(attempt - 1) * (launch.launcher_restarts + 1) + 1,
                                       backend=cfg.train.backend, strategy=cfg.train.strategy,
                                       spool=str(attempt_spool) if attempt_spool else None)
            callbacks.on_attempt_end(attempt, None)
            record["seconds"] = round(time.monotonic() - t0, 2)
            # Launch cost: stage submission → first optimizer step on rank 0 (Spark scheduling,
            # worker start, imports, rendezvous, joining the group, broadcast, shard plan).
            record["time_to_first_step_s"] = round(results[0]["first_step_at"] - wall0, 2)
            if results[0].get("skipped_checkpoints"):  # newer checkpoints that did not load, set aside
                record["skipped_checkpoints"] = results[0]["skipped_checkpoints"]
                record["resumed_from_epoch"] = results[0]["resumed_from_epoch"]
            return results
        except TrainingError as err:
            callbacks.on_attempt_end(attempt, err)
            record.update(seconds=round(time.monotonic() - t0, 2), error=str(err).splitlines()[0],
                          rank=err.rank, kind=err.kind.value, retryable=policy.retryable(err))
            if policy.decide(err, attempt) is Decision.RAISE:
                raise
            log.warning("attempt %d failed (%s: %s); resuming from the latest checkpoint", attempt, err.kind.value,
                        str(err).splitlines()[0])
        finally:
            if attempt_spool is not None:
                shutil.rmtree(attempt_spool, ignore_errors=True)
                with contextlib.suppress(OSError):
                    spool.rmdir()  # empty now (a rank that never spooled left none)


def _dispatch(event: Event, callbacks: DriverCallbacks) -> None:
    if event.type is not EventType.PROGRESS:  # progress shows as a bar or its own lines
        log_event(event)
    callbacks.on_event(event)


def train(cfg: JobConfig, lake: str, spark=None, manifest: Optional[Manifest] = None,
          callbacks: Sequence[Callback] = (), run_id: Optional[str] = None,
          clock: Optional[StageClock] = None, driver_callbacks: Sequence[DriverCallback] = (),
          fresh: bool = False, keep: Sequence[str] = KEPT) -> RunResult:
    """Train ``cfg`` on its prepared dataset in ``lake`` and commit a complete run.

    A run of the same job and configuration that was cut off (its driver died, it failed
    for good, it was interrupted: its staging directory is kept, with why in
    ``outcome.json``) is continued instead, under its id, from its last checkpoint, on its
    dataset (:mod:`sparkdl.training.resume`); ``fresh`` starts a new run regardless.
    ``keep``: the outcomes (``failed``, ``interrupted``) whose run is kept to continue;
    a run without a checkpoint is never kept.
    ``callbacks`` run in every rank's loop (:mod:`sparkdl.training.rank.callbacks`);
    ``driver_callbacks`` on this driver (:mod:`sparkdl.training.driver_callbacks`: progress,
    evaluation before the commit, the report and MLflow). ``clock`` gets the launch, train
    and write_back stage times; all its stages go to ``metrics.json``."""
    from sparkdl.core.session import get_spark, task_slots

    hooks = DriverCallbacks(driver_callbacks)
    lake_ = Lake(lake)
    if run_id is None and not fresh and (found := find_resumable(lake_, cfg)) is not None:
        run_id, manifest = found
    manifest = manifest or Manifest.load(lake_.current_dataset(cfg.name))
    if cfg.train.launch.launcher == "spark":
        spark = spark or get_spark(cfg.spark)
        ranks = cfg.train.ranks or task_slots(spark)
    else:  # another launcher starts the ranks: this driver needs no Spark
        from sparkdl.training.launch.processes import check_launcher, default_ranks

        check_launcher(cfg.train.launch.launcher)
        ranks = cfg.train.ranks or default_ranks(cfg.train.launch.launcher)
    # each replica reads its rows, a model's ranks share their replica's
    data = dataset_data(cfg.train, manifest, cfg.train.replicas(ranks))
    init_from = None
    if cfg.train.fine_tune.init_from:
        start = resolve_optional(lake_, cfg.train.fine_tune.init_from)
        if start is None:
            log.info("%s: no champion yet, so this run starts from scratch", cfg.train.fine_tune.init_from)
        init_from = str(RunDir(start).model) if start else None
    run_id = run_id or new_id(f"{cfg.name}-")
    final = lake_.run_dir(run_id)
    clock = clock or StageClock()
    t0 = time.monotonic()
    staging = RunDir(staging_path(final))
    staging.path.mkdir(parents=True, exist_ok=True)
    lock = RunLock(staging)
    if not lock.acquire(wait_s=RUN_LOCK_WAIT_S):
        raise LakeError(f"run {run_id} is being written by another driver ({lock.holder()}); "
                        "wait for it, or start a run of your own")
    started = False
    try:
        with staged_dir(final, keep_existing=True, keep_failed=keep_stopped(keep)) as stage_path:
            stage = RunDir(stage_path)
            write_resume_info(stage, cfg, manifest)
            hooks.on_run_start(RunStart(run_id, stage, cfg, lake_.root))
            started = True
            if hooks.answers_epochs:  # the ranks wait for the driver's verdict after each epoch
                callbacks = (*callbacks, AwaitVerdict(str(stage.verdicts)))
            spec = train_spec(cfg, manifest, stage, init_from, data, callbacks)
            metrics = _train_and_write_back(spark, spec, ranks, cfg, manifest, stage, run_id, clock, hooks)
            stage.resume_info.unlink()
            stage.lock.unlink()
    except BaseException as e:
        if started:
            hooks.on_failure(e)
        raise
    finally:
        lock.release()
    log.info("run %s committed in %.1fs: %s (validation: %s)", run_id, time.monotonic() - t0, final,
             metrics.headline("validation"))
    hooks.after_commit(RunDir(final), metrics)
    return RunResult(run_id, final, metrics)


def _train_and_write_back(spark, spec: TrainSpec, ranks: int, cfg: JobConfig, manifest: Manifest, stage: RunDir,
                          run_id: str, clock: StageClock, hooks: DriverCallbacks) -> RunMetrics:
    """Supervise the training stage, then write the model's companions and metrics into ``stage``."""
    attempts: List[Dict[str, Any]] = []
    try:
        results = supervise(spark, spec, ranks, cfg, attempts, callbacks=hooks, spool=stage.event_spool,
                            holder=f"run {run_id}")
    except TrainingError as err:
        err.attempts = attempts  # what was tried, for callers and reports
        log.error("training failed after %d attempt(s): %s", len(attempts), attempts)
        raise
    metrics = run_metrics(run_id, ranks, results, attempts, manifest)
    earlier = earlier_stops(stage)
    if earlier:  # the run failed or was interrupted before, and was continued
        metrics.train["earlier_stops"] = earlier
    clock.add("launch", metrics.train["time_to_first_step_s"])
    clock.add("train", metrics.train["seconds"] - metrics.train["time_to_first_step_s"])
    with clock.stage("write_back"):
        shutil.copytree(manifest.paths["preprocessing"], stage.preprocessing, dirs_exist_ok=True)
        manifest.save(stage.manifest)
        stage.write_config(cfg.to_dict())
    hooks.before_commit(stage, metrics)
    metrics.stages = dict(clock.seconds)
    metrics.save(stage.metrics)
    return metrics
