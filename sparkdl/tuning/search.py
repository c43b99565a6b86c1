"""``sparkdl tune``: a hyperparameter search whose trials are barrier stages, run at once
as far as the cluster's slots allow.

The study is Optuna's (TPE sampling, median or successive-halving pruning), kept in the
lake as Optuna's journal file (``<lake>/studies/<name>/``), so a search whose driver
died resumes by name: finished trials stay finished, and the trials that were running
are run again (each resumes its staged run from its last checkpoint). Every trial is a
normal run in the lake (and an MLflow run nested under the search's), evaluated on the
held-out split; trials that change no data key share one prepared dataset. The first
trial is the job as given, when the space contains its values, so the search reports
what tuning gained. A trial that fails for a user error stops the search with that error;
one that fails for infrastructure has had the run's own retries and is recorded as
failed. Ctrl-C cancels the running trials' Spark jobs and leaves the study resumable.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from sparkdl.core.config import JobConfig
from sparkdl.core.config.convert import split_key
from sparkdl.core.errors import ConfigError, InputError, LakeError, TrainingError
from sparkdl.core.lake import Lake, is_committed
from sparkdl.core.locks import DriverLock
from sparkdl.core.stopwatch import StageClock
from sparkdl.preparation.materialize import Manifest
from sparkdl.training.resume import config_fingerprint
from sparkdl.tuning.pruning import TrialPruning
from sparkdl.tuning.report import SearchReport, trial_record
from sparkdl.tuning.space import SearchSpace
from sparkdl.tuning.tracking import SearchTracking

log = logging.getLogger(__name__)

#: How long a stopping search waits for its running trials to wind down.
STOP_GRACE_S = 60.0


@dataclass
class _Search:
    """What the trials of one search share."""

    cfg: JobConfig
    lake: str
    space: SearchSpace
    spark: Any
    study: Any
    manifest: Optional[Manifest]
    parent_run: Optional[str]
    stopping: threading.Event = field(default_factory=threading.Event)
    done: "queue.Queue" = field(default_factory=queue.Queue)


def _get(cfg: JobConfig, key: str) -> Any:
    node: Any = cfg
    for part in split_key(key, JobConfig):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part)
    return list(node) if isinstance(node, tuple) else node


@contextlib.contextmanager
def _study_lock(directory: Path):
    """One driver per study at a time."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = DriverLock(directory / ".lock")
    if not lock.acquire():
        raise LakeError(f"the search {directory.name} is running in another driver ({lock.holder()}); "
                        "wait for it, or give this one another --study name")
    try:
        yield
    finally:
        lock.release()


def _open_study(cfg: JobConfig, space: SearchSpace, name: str, directory: Path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(directory / "journal.log")))
    study = optuna.create_study(study_name=name, storage=storage, direction=space.direction,
                                pruner=space.make_pruner(), load_if_exists=True)
    # seeded by the trials so far: a resumed search draws new points, not its first ones again
    study.sampler = optuna.samplers.TPESampler(seed=space.seed + len(study.get_trials(deepcopy=False)),
                                               constant_liar=True)
    identity = {"config": config_fingerprint(cfg), "space": space.fingerprint()}
    if not study.user_attrs:
        for k, v in identity.items():
            study.set_user_attr(k, v)
        base = {d.key: _get(cfg, d.key) for d in space.dimensions}
        if all(d.contains(base[d.key]) for d in space.dimensions):  # the job as given, first
            study.enqueue_trial({d.key: d.stored(base[d.key]) for d in space.dimensions},
                                user_attrs={"untuned": True})
        else:
            log.info("the job's own values %s are not all in the space: the search has no untuned trial", base)
    elif any(study.user_attrs.get(k) != v for k, v in identity.items()):
        raise ConfigError("--study", f"search {name!r} in {directory} was started with another config or space; "
                                     "rerun it with the same files, or give this search another --study name")
    return study


def _requeue(study, trial_number: int, params: Dict[str, Any], attrs: Dict[str, Any]) -> None:
    """A trial cut off by a stop or a dead driver: failed, and its point queued again."""
    from optuna.trial import TrialState

    study.tell(trial_number, state=TrialState.FAIL)
    study.set_user_attr(f"requeued.{trial_number}", True)
    study.enqueue_trial(params, user_attrs={**{k: v for k, v in attrs.items() if k == "untuned"},
                                            "requeued_from": trial_number}, skip_if_exists=False)


def requeued(study) -> set:
    """The numbers of trials that were cut off and queued again."""
    return {int(k.split(".", 1)[1]) for k in study.user_attrs if k.startswith("requeued.")}


def _finished(study) -> int:
    """Trials that count toward the search's budget: complete, pruned, or failed for good."""
    from optuna.trial import TrialState

    again = requeued(study)
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and t.number not in again))


def _dataset(search: _Search) -> Manifest:
    """The search's one prepared dataset: the one its study recorded, else prepared now."""
    from sparkdl.workflow import prepare

    lake = Lake(search.lake)
    recorded = search.study.user_attrs.get("dataset_id")
    if recorded and is_committed(lake.dataset_root(search.cfg.name) / recorded):
        log.info("search: reusing its prepared dataset %s", recorded)
        return Manifest.load(lake.dataset_root(search.cfg.name) / recorded)
    manifest = prepare(search.cfg, search.lake, search.spark)
    search.study.set_user_attr("dataset_id", manifest.dataset_id)
    return manifest


def _run_trial(search: _Search, trial) -> None:
    """One trial, in its own thread; ``(trial, result, error)`` goes on ``search.done``."""
    from sparkdl.workflow import HeldOutEvaluation, prepare, train

    try:
        values = search.space.values(trial)
        extra = {"progress.display": "off"}  # trials run side by side: the search reports them
        if search.parent_run:
            extra["tracking.parent_run"] = search.parent_run
        cfg = search.cfg.with_values({**values, **extra})
        manifest = search.manifest or prepare(cfg, search.lake, search.spark)
        log.info("trial %d started: %s", trial.number, ", ".join(f"{k}={v}" for k, v in values.items()))
        pruning = TrialPruning(trial, search.space.metric, search.stopping)
        evaluation = HeldOutEvaluation(search.spark, manifest, False, StageClock())
        # a requeued trial continues its cut-off run; any other starts its own (trials may share a fingerprint)
        again = "requeued_from" in trial.user_attrs
        result = train(cfg, search.lake, spark=search.spark, manifest=manifest,
                       driver_callbacks=[evaluation, pruning], fresh=not again, keep=("interrupted",))
        search.done.put((trial, result, None))
    except BaseException as e:  # reported by the search's thread
        search.done.put((trial, None, e))


def _is_user_error(error: BaseException) -> bool:
    from sparkdl.core.errors import FailureKind

    return isinstance(error, InputError) or (isinstance(error, TrainingError) and error.kind is FailureKind.USER)


def tune(cfg: JobConfig, lake: str, space: SearchSpace, trials: int, study: Optional[str] = None,
         parallel: Optional[int] = None, spark=None) -> SearchReport:
    """Run (or resume) the search named ``study`` (default: the job's name) until
    ``trials`` trials have finished; return its report (see the module docstring)."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise InputError("sparkdl tune needs Optuna: pip install 'sparkdl-torch[tune]'")
    from optuna.trial import TrialState

    from sparkdl.core.session import get_spark, known_task_slots
    from sparkdl.tracking.mlflow_run import check_tracking

    if trials < 1:
        raise ConfigError("--trials", f"must be >= 1, got {trials}")
    if parallel is not None and parallel < 1:
        raise ConfigError("--parallel", f"must be >= 1, got {parallel}")
    check_tracking(cfg.tracking)
    name = study or cfg.name
    directory = Lake(lake).study_dir(name)
    with _study_lock(directory):
        optuna_study = _open_study(cfg, space, name, directory)
        for t in optuna_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            log.warning("trial %d was running when the search's driver stopped: it runs again", t.number)
            _requeue(optuna_study, t.number, t.params, t.user_attrs)
        spark = spark or get_spark(cfg.spark)
        slots = known_task_slots(spark)
        searched = next((d for d in space.dimensions if d.key == "train.ranks"), None)
        ranks = int(max(searched.corners())) if searched else (cfg.train.ranks or slots or 1)
        at_once = max(1, (slots or ranks) // ranks)
        if parallel:
            at_once = min(at_once, parallel)
        left = trials - _finished(optuna_study)
        log.info("search %s: %d of %d trials to run, %d at a time (%s task slots, %d rank(s) per trial); %s %s",
                 name, max(left, 0), trials, at_once, slots if slots is not None else "unknown", ranks,
                 space.direction, space.metric)
        tracking = SearchTracking.open(cfg, Lake(lake).root, name, optuna_study)
        search = _Search(cfg, lake, space, spark, optuna_study, None, tracking.run_id if tracking else None)
        if left > 0 and not space.changes_data:
            search.manifest = _dataset(search)
        report = SearchReport(name, directory, space, at_once, slots, ranks)
        status = "FAILED"
        try:
            _run_trials(search, trials, at_once)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"  # resumable: the same command goes on
            raise
        finally:
            again = requeued(optuna_study)
            report.write([trial_record(t, t.number in again) for t in optuna_study.get_trials(deepcopy=False)])
            if tracking:
                tracking.finish(report, status)
        return report


def _run_trials(search: _Search, trials: int, at_once: int) -> None:
    """Keep ``at_once`` trials running until ``trials`` have finished; record each as it
    ends. A user error stops the search (raised after the others are cancelled and queued
    again); so does Ctrl-C."""
    from optuna.trial import TrialState

    from sparkdl.core.session import cancel_all

    study, active = search.study, {}
    try:
        while True:
            while len(active) < at_once and _finished(study) + len(active) < trials:
                trial = study.ask()
                active[trial.number] = trial
                threading.Thread(target=_run_trial, args=(search, trial), name=f"sparkdl-trial-{trial.number}",
                                 daemon=True).start()
            if not active:
                return
            try:
                trial, result, failure = search.done.get(timeout=1.0)
            except queue.Empty:
                continue
            active.pop(trial.number, None)
            if failure is None:
                _record(study, trial, result, search.space)
            elif _is_user_error(failure):
                log.error("trial %d failed for a user error: the search stops", trial.number)
                study.tell(trial, state=TrialState.FAIL)
                _stop(search, active, cancel_all)
                raise failure
            else:
                log.warning("trial %d failed after its retries (%s): recorded as failed", trial.number,
                            str(failure).splitlines()[0])
                trial.set_user_attr("error", str(failure).splitlines()[0][:500])
                study.tell(trial, state=TrialState.FAIL)
    except KeyboardInterrupt:
        log.warning("interrupted: cancelling %d running trial(s); the search resumes with the same command",
                    len(active))
        _stop(search, active, cancel_all)
        raise


def _record(study, trial, result, space: SearchSpace) -> None:
    """A trial's run: complete with its kept epoch's metric, or pruned."""
    from optuna.trial import TrialState

    m = result.metrics
    trial.set_user_attr("held_out", {k: v for k, v in (m.held_out or {}).items() if isinstance(v, (int, float))})
    trial.set_user_attr("held_out_split", m.held_out_split)
    trial.set_user_attr("started_unix", m.attempts[-1].get("started_unix"))
    trial.set_user_attr("seconds", m.train.get("seconds"))
    trial.set_user_attr("epochs", m.train.get("epochs"))
    stopped = m.train.get("stopped_by_driver")
    if stopped:
        log.info("trial %d pruned after epoch %d (run %s)", trial.number, stopped["epoch"], m.run_id)
        study.tell(trial, state=TrialState.PRUNED)
        return
    value = m.validation.get(space.metric[len("val_"):])
    study.tell(trial, float(value))
    best = study.best_trial
    log.info("trial %d finished: %s %.5g (run %s); best so far: trial %d, %.5g", trial.number, space.metric,
             value, m.run_id, best.number, best.value)


def _stop(search: _Search, active: Dict[int, Any], cancel_all) -> None:
    """Cancel the running trials' stages; wait (bounded) for their threads to report."""
    search.stopping.set()
    try:
        cancel_all(search.spark)
    except Exception as e:  # the session is going away
        log.warning("could not cancel the running trials' Spark jobs: %s", e)
    deadline = time.monotonic() + STOP_GRACE_S
    while active and time.monotonic() < deadline:
        try:
            trial, result, failure = search.done.get(timeout=1.0)
        except queue.Empty:
            continue
        if active.pop(trial.number, None) is None:
            continue
        if failure is None:  # it finished before the cancel reached it
            _record(search.study, trial, result, search.space)
        else:
            _requeue(search.study, trial.number, trial.params, trial.user_attrs)
    for number, trial in list(active.items()):  # did not stop in time: still queued again
        log.warning("trial %d did not stop within %.0fs; it runs again when the search resumes", number, STOP_GRACE_S)
        _requeue(search.study, number, trial.params, trial.user_attrs)
        active.pop(number)
