"""The lake's layout and atomic writes.

```
<lake>/datasets/<job>/CURRENT            id of the dataset training uses (replaced atomically)
<lake>/datasets/<job>/<id>/              manifest.json, train/, validation/, test/,
                                         preprocessing/, quarantine/
<lake>/runs/<run_id>/                    a finished run (its layout: sparkdl.core.rundir)
<lake>/models/<name>/champion.json       the run in service under a name, and its history
                                         (sparkdl.core.champions)
<lake>/drift/<job>/<check_id>/           drift checks: drift.json and drift.png
```

Everything is first written under a hidden staging name and renamed into place only
when complete, so an interrupted write never looks like a finished dataset or run.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from sparkdl.core.errors import LakeError

STAGING_PREFIX = ".staging-"
COMMIT_MARKER = "_COMMITTED"


def local_path(uri: str) -> Path:
    """A lake URI or path as a local Path (``file://`` accepted; other schemes are not yet supported)."""
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    if "://" in uri:
        raise LakeError(f"lake {uri!r}: only local or file:// lakes are supported by this version "
                        "(mount the object store, or use a shared file system path)")
    return Path(uri)


def absolute(path: str) -> str:
    """A user-given path as the driver means it. Local paths (and ``file://`` URIs) become
    absolute: executors run in another working directory, so a relative path would name
    another file there. Other URIs and ``embedded:`` names are returned unchanged."""
    if path.startswith("embedded:") or ("://" in path and not path.startswith("file://")):
        return path
    return str(local_path(path).expanduser().resolve())


#: How every record sparkdl writes spells a time (ISO 8601, UTC, seconds).
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_now() -> str:
    """Now, as every record sparkdl writes spells a time (:data:`STAMP_FORMAT`)."""
    return time.strftime(STAMP_FORMAT, time.gmtime())


def new_id(prefix: str = "") -> str:
    """Sortable, unique id: UTC time plus a random suffix."""
    return f"{prefix}{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def atomic_target(path: "os.PathLike[str] | str",
                  before_replace: Optional[Callable[[Path], None]] = None) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to. When the block succeeds the file is
    flushed to disk and renamed onto ``path``; when it fails it is removed. Readers see the
    old file or the new, never half of one. ``before_replace(tmp)`` runs between the two
    (fault injection: a crash there leaves ``path`` as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # on a read-only file system there is nothing to remove
            tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: "os.PathLike[str] | str", data: bytes,
                       before_replace: Optional[Callable[[Path], None]] = None) -> None:
    """Write a file so readers see the old content or the new, never half of it."""
    with atomic_target(path, before_replace) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: "os.PathLike[str] | str", text: str) -> None:
    write_bytes_atomic(path, text.encode())


def write_json_atomic(path: "os.PathLike[str] | str", obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=str))


def staging_path(final: Path) -> Path:
    """Where ``final`` is written before it is committed."""
    return final.with_name(f"{STAGING_PREFIX}{final.name}")


@contextlib.contextmanager
def staged_dir(final: Path, keep_existing: bool = False,
               keep_failed: Optional[Callable[[Path, BaseException], bool]] = None) -> Iterator[Path]:
    """Yield a staging directory beside ``final``; rename it to ``final`` only on success.
    ``keep_existing``: continue in a staging directory left by an earlier writer (the
    caller holds its lock) instead of starting empty. ``keep_failed``: on failure, called
    with the staging directory and the error; where it returns True the directory is kept
    (a run's checkpoints), else deleted."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        raise LakeError(f"{final} already exists; refusing to overwrite it")
    staging = staging_path(final)
    if staging.exists() and not keep_existing:
        shutil.rmtree(staging)
    staging.mkdir(exist_ok=True)
    try:
        yield staging
        (staging / COMMIT_MARKER).write_text(utc_now())
        os.replace(staging, final)
    except BaseException as e:
        if keep_failed is None or not keep_failed(staging, e):
            shutil.rmtree(staging, ignore_errors=True)
        raise


def publish_dirs(pairs: "list[tuple[Path, Path]]") -> None:
    """Move each staged directory onto its final path, in order, replacing what was there
    (a staged path that does not exist removes the old final one: a rerun leaves no stale
    output). Each move is a rename, so readers see a whole old or a whole new directory;
    put the one downstream jobs wait for last."""
    for staged, final in pairs:
        old = final.with_name(f".{final.name}.replaced-{uuid.uuid4().hex[:8]}")
        if final.exists():
            os.replace(final, old)
        if staged.exists():
            os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)


def is_committed(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(STAGING_PREFIX) and (path / COMMIT_MARKER).is_file()


def require_run(path: "os.PathLike[str] | str") -> Path:
    """``path`` as an absolute, complete run directory; a clear error when it is missing
    or incomplete (checked on the driver, before any Spark work)."""
    given = str(path)
    path = Path(absolute(given))
    if not path.exists():
        raise LakeError(f"run {given!r} does not exist (looked for {path}); list runs with "
                        "`sparkdl runs list --lake DIR`")
    if not is_committed(path):
        raise LakeError(f"{path} is not a complete run (its write was interrupted, or it is not a run directory)")
    return path


class Lake:
    """Paths inside one lake directory."""

    def __init__(self, root: str):
        self.root = local_path(root).resolve()

    def dataset_root(self, job: str) -> Path:
        return self.root / "datasets" / job

    def publish_dataset(self, job: str, dataset_id: str) -> None:
        write_text_atomic(self.dataset_root(job) / "CURRENT", dataset_id + "\n")

    def has_dataset(self, job: str) -> bool:
        """Whether a dataset of ``job`` was ever published here."""
        return (self.dataset_root(job) / "CURRENT").is_file()

    def current_dataset(self, job: str) -> Path:
        """The directory of the dataset ``job`` trains on; a clear error if none was prepared."""
        pointer = self.dataset_root(job) / "CURRENT"
        if not self.has_dataset(job):
            raise LakeError(f"no prepared dataset for job '{job}' in lake {self.root}: "
                            f"run `sparkdl prepare CONFIG --lake {self.root}` first")
        path = self.dataset_root(job) / pointer.read_text().strip()
        if not is_committed(path):
            raise LakeError(f"{pointer} points to {path}, which is not a complete dataset; prepare it again")
        return path

    @property
    def runs_root(self) -> Path:
        return self.root / "runs"

    def study_dir(self, name: str) -> Path:
        """A hyperparameter search's directory: its Optuna journal, summary and plot."""
        return self.root / "studies" / name

    def model_dir(self, name: str) -> Path:
        """A served model's directory: its champion pointer and history."""
        return self.root / "models" / name

    def drift_dir(self, job: str) -> Path:
        """Where drift checks of a job's input are kept."""
        return self.root / "drift" / job

    def run_dir(self, run_id: str) -> Path:
        return self.runs_root / run_id

    def find_run(self, run: str) -> Path:
        """A run by id or path; a clear error if it is missing or incomplete."""
        return require_run(Path(run) if os.sep in run or Path(run).is_dir() else self.run_dir(run))

    def list_runs(self, committed_only: bool = True) -> list:
        if not self.runs_root.is_dir():
            return []
        runs = sorted(p for p in self.runs_root.iterdir() if p.is_dir())
        return [p for p in runs if is_committed(p)] if committed_only else runs

