"""Resuming a run that was cut off, and cleaning up runs that never will resume.

While a run trains, its staging directory (``runs/.staging-<id>/``) holds a lock that its
driver keeps for its whole life (``flock``: the operating system drops it when the
process dies, however it dies) and ``resume.json``: a fingerprint of the job's
configuration and the dataset it trains on. Running the same job again finds an
abandoned staging run (its lock is free) with the same fingerprint and continues it
under the same id from its last complete checkpoint, on the same dataset.

A run that fails for good (its retries spent, an error no retry fixes) or is interrupted
(Ctrl-C, a scheduler's SIGTERM) is kept the same way: its driver writes ``outcome.json``
(``failed`` or ``interrupted``, the error, the attempts) before it lets go of the lock,
and the same job continues it. Nothing a run trained is deleted because it stopped.

An abandoned run cannot resume when its ``resume.json`` is missing or unreadable, its
dataset is gone, or a newer abandoned run of the same job and configuration exists
(only the newest resumes). :func:`stale_runs` lists every abandoned run with its state;
:func:`remove_stale` deletes the ones that cannot resume (or all of them).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from sparkdl.core.config import JobConfig, LoaderConfig, MaterializeConfig
from sparkdl.core.lake import STAGING_PREFIX, STAMP_FORMAT, Lake, utc_now, write_json_atomic
from sparkdl.core.locks import DriverLock, try_flock
from sparkdl.core.rundir import RunDir
from sparkdl.preparation.materialize import Manifest
from sparkdl.training.rank.checkpoints import list_checkpoints

log = logging.getLogger(__name__)


#: Optional keys added after layout 0.2: left out of the fingerprint while unset.
UNSET_SINCE_0_2 = ("train.local_sgd", "train.allreduce.powersgd", "train.allreduce.topk",
                   "schema.validation_indicator", "train.pipeline", "train.tensor")


#: Keys added since with a default: left out of the fingerprint while at it.
DEFAULTED_SINCE_0_2 = {"train.loader.shuffle_buffer_bytes": LoaderConfig.shuffle_buffer_bytes,
                       "materialize.max_bytes_per_row_group": MaterializeConfig.max_bytes_per_row_group,
                       "schema.vectors": [], "schema.sparse": [], "schema.bags": []}
#: Keys of each ``schema.columns`` entry added since: left out of the fingerprint while unset.
COLUMN_KEYS_SINCE_0_2 = ("size", "max_items")


def config_fingerprint(cfg: JobConfig, with_ranks: bool = False) -> str:
    """What makes two runs the same run: everything but where Spark runs, on how many
    ranks, how the launch waits and retries, how progress shows, where MLflow logs (those
    may differ between the first driver and the next) and what is checked around the run
    (drift, the gate). ``with_ranks``: as runs staged before a run could change its number
    of ranks were fingerprinted."""
    raw = cfg.to_dict()
    for key in ("spark", "progress", "tracking", "promote", "drift"):
        raw.pop(key, None)
    raw["train"].pop("launch", None)
    raw["train"].pop("failure", None)
    if not with_ranks and raw["train"].get("strategy") != "fsdp":  # an FSDP checkpoint is a shard per rank
        raw["train"].pop("ranks", None)
    raw["materialize"].pop("profile", None)  # what the manifest keeps for drift checks, not what trains
    added = {**{path: None for path in UNSET_SINCE_0_2}, **DEFAULTED_SINCE_0_2}
    for path, default in added.items():  # so a run staged before these keys existed still resumes
        *groups, key = path.split(".")
        parent = raw
        for g in groups:
            parent = parent[g]
        if key in parent and parent[key] == default:
            del parent[key]
    for column in raw["schema"]["columns"]:
        for key in COLUMN_KEYS_SINCE_0_2:
            if column.get(key, 0) is None:
                del column[key]
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()


class RunLock(DriverLock):
    """An exclusive lock on a staging run, held while its driver lives."""

    def __init__(self, run: RunDir):
        super().__init__(run.lock)


def is_abandoned(run: RunDir) -> bool:
    """No live driver holds the staging run's lock (probed without writing to it, so the
    file keeps naming its last driver, and on a read-only lake too)."""
    if not run.path.is_dir():
        return False
    if not run.lock.exists():
        return True
    with open(run.lock, "r") as f:
        if not try_flock(f):
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def write_resume_info(run: RunDir, cfg: JobConfig, manifest: Manifest) -> None:
    """What makes the staging run resumable; a run continued after a failure keeps why it
    stopped each time before (``earlier``), and its ``outcome.json`` goes."""
    earlier = []
    if run.resume_info.exists():
        try:
            earlier = json.loads(run.resume_info.read_text()).get("earlier", [])
        except (OSError, ValueError):
            earlier = []
    last = read_outcome(run)
    if last is not None:
        log.warning("continuing run %s, which stopped (%s) at %s: %s", run.name[len(STAGING_PREFIX):],
                    last["outcome"], last.get("at"), last.get("error"))
        earlier.append(last)
    write_json_atomic(run.resume_info, {"job": cfg.name, "fingerprint": config_fingerprint(cfg),
                                        "dataset": manifest.paths["dataset"], "dataset_id": manifest.dataset_id,
                                        "started": utc_now(), "earlier": earlier})
    run.outcome.unlink(missing_ok=True)


def earlier_stops(run: RunDir) -> List[Dict[str, Any]]:
    """How the run stopped each time before it was continued (failed, interrupted), for its metrics."""
    try:
        return list(json.loads(run.resume_info.read_text()).get("earlier", []))
    except (OSError, ValueError):
        return []


def outcome_of(error: BaseException) -> str:
    """``interrupted`` for Ctrl-C and a signal to stop, ``failed`` for anything else."""
    return "interrupted" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "failed"


#: The outcomes whose staging runs are kept, by default.
KEPT = ("failed", "interrupted")


def keep_stopped(keep: Sequence[str] = KEPT) -> Callable[[Path, BaseException], bool]:
    """For :func:`~sparkdl.core.lake.staged_dir`: keep a run that stopped with one of the
    ``keep`` outcomes and has a checkpoint to continue from (recorded by
    :func:`record_outcome`); anything else goes, as it has nothing to continue."""

    def keep_if_worth_it(staging: Path, error: BaseException) -> bool:
        if outcome_of(error) not in keep or not list_checkpoints(RunDir(staging).checkpoints):
            return False
        record_outcome(staging, error)
        return True

    return keep_if_worth_it


def record_outcome(staging: Path, error: BaseException) -> None:
    """Keep a staging run that stopped on ``error``: why, when, and what was tried
    (``outcome.json``; the checkpoints stay where they are)."""
    lines = str(error).strip().splitlines()
    attempts = getattr(error, "attempts", None)
    record = {"outcome": outcome_of(error), "error": f"{type(error).__name__}: {lines[0] if lines else ''}"[:2000],
              "at": utc_now(), "attempts": json.loads(json.dumps(attempts, default=str)) if attempts else []}
    try:
        write_json_atomic(RunDir(staging).outcome, record)
    except OSError as e:  # the error being raised matters more than this record of it
        log.error("could not record why run %s stopped (%s): %s", staging.name, e, record["error"])
    log.warning("run %s %s; its checkpoints are kept in %s, and the same job continues it (--fresh starts anew)",
                staging.name[len(STAGING_PREFIX):], record["outcome"], staging)


def read_outcome(run: RunDir) -> Optional[Dict[str, Any]]:
    """Why a kept staging run stopped; None for a run whose driver died (or a running one)."""
    try:
        return json.loads(run.outcome.read_text())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class StaleRun:
    """An abandoned staging run and whether it can resume."""

    run_id: str
    path: Path
    epochs_done: int
    resumable: bool
    why: str
    job: Optional[str] = None
    fingerprint: Optional[str] = None
    #: ``failed`` or ``interrupted`` (kept by its driver), ``abandoned`` (its driver died).
    outcome: str = "abandoned"
    error: Optional[str] = None
    #: When it stopped (its outcome's time; for an abandoned run, its last write).
    stopped: Optional[str] = None


def _staging_runs(lake: Lake) -> List[RunDir]:
    if not lake.runs_root.is_dir():
        return []
    return sorted((RunDir(p) for p in lake.runs_root.iterdir() if p.name.startswith(STAGING_PREFIX) and p.is_dir()),
                  key=lambda r: r.name, reverse=True)  # ids start with their UTC start time: newest first


def stale_runs(lake: Lake) -> List[StaleRun]:
    """Every abandoned staging run in ``lake``, newest first, with whether it can resume."""
    out: List[StaleRun] = []
    newest = set()
    for run in _staging_runs(lake):
        if not is_abandoned(run):
            continue
        run_id = run.name[len(STAGING_PREFIX):]
        done = list_checkpoints(run.checkpoints)
        epochs = done[0][0] if done else 0
        last = read_outcome(run)
        how = {"outcome": last["outcome"], "error": last.get("error"), "stopped": last.get("at")} if last else \
            {"stopped": _last_write(run.path)}
        try:
            info = json.loads(run.resume_info.read_text())
        except (OSError, ValueError):
            out.append(StaleRun(run_id, run.path, epochs, False, f"no readable {run.resume_info.name}", **how))
            continue
        key = (info.get("job"), info.get("fingerprint"))
        if not Path(str(info.get("dataset"))).is_dir():
            state = (False, f"its dataset {info.get('dataset')} is gone")
        elif key in newest:
            state = (False, "a newer abandoned run of the same job and configuration resumes instead")
        else:
            state = (True, f"resumes from epoch {epochs} when the same job runs again")
            newest.add(key)
        out.append(StaleRun(run_id, run.path, epochs, *state, job=key[0], fingerprint=key[1], **how))
    return out


def _last_write(path: Path) -> str:
    import datetime

    try:
        stamp = max([path.stat().st_mtime] + [p.stat().st_mtime for p in path.rglob("*") if p.is_file()])
    except OSError:
        return ""
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime(STAMP_FORMAT)


def find_resumable(lake: Lake, cfg: JobConfig) -> Optional[Tuple[str, Manifest]]:
    """The abandoned run this job continues, with the dataset it trains on; None: start anew."""
    fingerprints = {config_fingerprint(cfg), config_fingerprint(cfg, with_ranks=True)}
    for stale in stale_runs(lake):
        if stale.resumable and stale.job == cfg.name and stale.fingerprint in fingerprints:
            info = json.loads(RunDir(stale.path).resume_info.read_text())
            log.info("resuming run %s (%s after epoch %d)", stale.run_id, stale.outcome, stale.epochs_done)
            return stale.run_id, Manifest.load(Path(info["dataset"]))
    return None


def remove_stale(lake: Lake, include_resumable: bool = False, failed: bool = False,
                 older_than_s: Optional[float] = None) -> List[StaleRun]:
    """Delete staging runs that cannot resume; with ``include_resumable`` every one, with
    ``failed`` every failed or interrupted one; ``older_than_s``: only those that stopped
    longer ago than that."""
    removed = []
    for stale in stale_runs(lake):
        chosen = include_resumable or not stale.resumable or (failed and stale.outcome != "abandoned")
        if not chosen or (older_than_s is not None and _age_s(stale.stopped) < older_than_s):
            continue
        lock = RunLock(RunDir(stale.path))
        if not lock.acquire():  # a driver took it up since it was listed
            continue
        try:  # held while deleting, so no driver can start on it meanwhile
            shutil.rmtree(stale.path, ignore_errors=True)
            removed.append(stale)
        finally:
            lock.release()
    return removed


def _age_s(stamp: Optional[str]) -> float:
    """Seconds since a ``utc_now()`` stamp (0 for none: never old)."""
    import datetime

    if not stamp:
        return 0.0
    try:
        then = datetime.datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return 0.0
    return (datetime.datetime.now(datetime.timezone.utc) - then).total_seconds()
