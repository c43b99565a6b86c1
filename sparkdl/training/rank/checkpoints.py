"""Checkpoints: written by rank 0 each epoch, each one complete or ignored.

A checkpoint is written to a temporary name, flushed to disk, and renamed to
``epoch-NNNN.pt``; a crash mid-write leaves only a temporary file, which resumption
never reads. Loading tries the newest checkpoint first and falls back to older ones
if a file cannot be read, so a damaged file is never trained from; the ones it passed
over are set aside (``epoch-NNNN.pt.unreadable``: kept, never tried or pruned for again)
and named in the state it returns, and when checkpoints exist and none loads, the run
fails naming them rather than start again from epoch 0.

A model split across ranks (pipeline stages) keeps each part in a shard of its own,
``epoch-NNNN.shard-KK.pt``, written the same way by the part's rank before rank 0 writes
the epoch's file, which counts them: a checkpoint is whole when its file and every shard
it counts are there, so the shards of an epoch whose file was never written are ignored.
"""
from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from sparkdl.core.errors import CheckpointReadError, CheckpointWriteError
from sparkdl.core.lake import write_bytes_atomic

log = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")
_SHARD = re.compile(r"^epoch-(\d{4,})\.shard-\d+\.pt$")


def checkpoint_path(directory: Path, epoch: int) -> Path:
    return directory / f"epoch-{epoch:04d}.pt"


def shard_path(directory: Path, epoch: int, shard: int) -> Path:
    return directory / f"epoch-{epoch:04d}.shard-{shard:02d}.pt"


def list_checkpoints(directory: Path) -> List[Tuple[int, Path]]:
    """Complete checkpoints, newest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), directory / name) for name in os.listdir(directory) if (m := _NAME.match(name))]
    return sorted(found, reverse=True)


def _serialize(state: Dict[str, Any]) -> io.BytesIO:
    import torch

    buffer = io.BytesIO()  # serialized first: torch.save turns a failed write into a vague RuntimeError
    torch.save(state, buffer)
    return buffer


def _write(final: Path, epoch: int, buffer: io.BytesIO, before_rename: Optional[Callable[[Path], None]] = None) -> None:
    directory = final.parent
    try:
        write_bytes_atomic(final, buffer.getbuffer(), before_replace=before_rename)
    except OSError as e:  # a full or read-only lake: keep the previous checkpoint, say where and why
        previous = list_checkpoints(directory)
        raise CheckpointWriteError(
            f"could not write the checkpoint of epoch {epoch} to {final}: {e.strerror or e} (is the lake full, "
            f"over a quota or read-only?); "
            + (f"the checkpoint of epoch {previous[0][0]} is intact and a rerun resumes from it"
               if previous else "no earlier checkpoint exists")) from e


def save_shard(directory: Path, epoch: int, shard: int, state: Dict[str, Any]) -> Path:
    """Atomically write one part's ``state`` for the checkpoint of ``epoch``."""
    final = shard_path(directory, epoch, shard)
    _write(final, epoch, _serialize({**state, "epoch": epoch, "shard": shard}))
    return final


def save_checkpoint(directory: Path, epoch: int, state: Dict[str, Any], keep: int = 3,
                    before_rename: Optional[Callable[[Path], None]] = None) -> Path:
    """Atomically write ``state`` as the checkpoint of ``epoch``; keep the newest ``keep``
    (and their shards). A write the file system refuses is a :class:`CheckpointWriteError`
    naming the path; the previous checkpoint stays as it was."""
    final = checkpoint_path(directory, epoch)
    _write(final, epoch, _serialize({**state, "epoch": epoch, "complete": True}), before_rename)
    listed = list_checkpoints(directory)
    for _, old in listed[keep:]:
        old.unlink(missing_ok=True)
    kept_epochs = {e for e, _ in listed[:keep]}
    for name in os.listdir(directory):  # shards of dropped epochs, and of epochs never completed
        m = _SHARD.match(name)
        if m and int(m.group(1)) not in kept_epochs:
            (directory / name).unlink(missing_ok=True)
    return final


def load_shard(directory: Path, epoch: int, shard: int, map_location: str = "cpu") -> Dict[str, Any]:
    """One part's state in the checkpoint of ``epoch``."""
    import torch

    return torch.load(shard_path(directory, epoch, shard), map_location=map_location, weights_only=True)


#: The suffix of a checkpoint that did not load, set aside when an older one did.
UNREADABLE = ".unreadable"


def _read(path: Path, map_location: str) -> Dict[str, Any]:
    """A checkpoint file's state; a read the file system refuses is tried once more (a
    shared file system's passing error), a broken file is not."""
    import time

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError as e:
        log.warning("reading checkpoint %s failed (%s); trying once more", path, e)
        time.sleep(1.0)
        return torch.load(path, map_location=map_location, weights_only=True)


def _set_aside(directory: Path, epoch: int, path: Path) -> None:
    """Rename a broken checkpoint and its shards to ``*.unreadable`` (numbered where an
    earlier one of the same epoch was set aside): kept, out of every listing."""
    files = [path] + sorted(directory.glob(f"epoch-{epoch:04d}.shard-*.pt"))
    n = 1
    while any(f.with_name(f.name + UNREADABLE + (f".{n}" if n > 1 else "")).exists() for f in files):
        n += 1
    for f in files:
        f.rename(f.with_name(f.name + UNREADABLE + (f".{n}" if n > 1 else "")))

def load_latest(directory: Path, map_location: str = "cpu",
                accept: Optional[Callable[[Dict[str, Any]], None]] = None) -> Optional[Dict[str, Any]]:
    """The newest readable, complete checkpoint (its ``skipped``: each newer one that did
    not load, ``"<file>: <why>"``, now set aside), or None where there is no checkpoint. A
    :class:`CheckpointReadError` names every file when there are checkpoints and none loads.
    ``accept`` raises for a state that reads but cannot be used (a callback's state)."""

    skipped: List[Tuple[int, Path, str, bool]] = []  # (epoch, file, why, set aside: broken for good)
    for epoch, path in list_checkpoints(directory):
        try:
            state = _read(path, map_location)
            if accept is not None:
                accept(state)
        except Exception as e:  # unreadable: fall back to the previous one
            why = " ".join(str(e).split())[:300] or type(e).__name__
            log.warning("checkpoint %s is unreadable (%s); trying an older one", path, why)
            # a read the file system refused may work later: passed over, not set aside
            skipped.append((epoch, path, f"unreadable ({why})", not isinstance(e, OSError)))
            continue
        shards = [shard_path(directory, epoch, k) for k in range(int(state.get("shards", 0)))]
        missing = [p.name for p in shards if not p.is_file()]
        if state.get("complete") and state.get("epoch") == epoch and not missing:
            for bad_epoch, bad, _, broken in skipped:  # newer than the one in use: never tried or pruned for again
                if broken:
                    _set_aside(directory, bad_epoch, bad)
            state["skipped"] = [f"{p.name}: {why}" for _, p, why, _ in skipped]
            return state
        why = f"incomplete (missing {missing})" if missing else "incomplete"
        log.warning("checkpoint %s is %s; trying an older one", path, why)
        skipped.append((epoch, path, why, True))
    if skipped:
        raise CheckpointReadError(
            f"no checkpoint in {directory} loads: " + "; ".join(f"{p.name}: {why}" for _, p, why, _ in skipped)
            + ". The run does not start again from epoch 0 on its own: restore a good copy, or move these files "
              "aside to train from scratch (or start a new run: sparkdl run --fresh)")
    return None
