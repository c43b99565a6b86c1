"""Checkpoints: written by rank 0 each epoch, each one complete or ignored.

A checkpoint is written to a temporary name, flushed to disk, and renamed to
``epoch-NNNN.pt``; a crash mid-write leaves only a temporary file, which resumption
never reads. Loading tries the newest checkpoint first and falls back to older ones
if a file cannot be read, so a damaged file is never trained from.
"""
from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from sparkdl.core.errors import CheckpointWriteError
from sparkdl.core.lake import write_bytes_atomic

log = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch-(\d{4,})\.pt$")


def checkpoint_path(directory: Path, epoch: int) -> Path:
    return directory / f"epoch-{epoch:04d}.pt"


def list_checkpoints(directory: Path) -> List[Tuple[int, Path]]:
    """Complete checkpoints, newest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), directory / name) for name in os.listdir(directory) if (m := _NAME.match(name))]
    return sorted(found, reverse=True)


def save_checkpoint(directory: Path, epoch: int, state: Dict[str, Any], keep: int = 3,
                    before_rename: Optional[Callable[[Path], None]] = None) -> Path:
    """Atomically write ``state`` as the checkpoint of ``epoch``; keep the newest ``keep``.
    A write the file system refuses is a :class:`CheckpointWriteError` naming the path;
    the previous checkpoint stays as it was."""
    import torch

    final = checkpoint_path(directory, epoch)
    buffer = io.BytesIO()  # serialized first: torch.save turns a failed write into a vague RuntimeError
    torch.save({**state, "epoch": epoch, "complete": True}, buffer)
    try:
        write_bytes_atomic(final, buffer.getbuffer(), before_replace=before_rename)
    except OSError as e:  # a full or read-only lake: keep the previous checkpoint, say where and why
        previous = list_checkpoints(directory)
        raise CheckpointWriteError(
            f"could not write the checkpoint of epoch {epoch} to {final}: {e.strerror or e} (is the lake full, "
            f"over a quota or read-only?); "
            + (f"the checkpoint of epoch {previous[0][0]} is intact and a rerun resumes from it"
               if previous else "no earlier checkpoint exists")) from e
    for _, old in list_checkpoints(directory)[keep:]:
        old.unlink(missing_ok=True)
    return final


def load_latest(directory: Path, map_location: str = "cpu") -> Optional[Dict[str, Any]]:
    """The newest readable, complete checkpoint, or None."""
    import torch

    for epoch, path in list_checkpoints(directory):
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # unreadable: fall back to the previous one
            log.warning("checkpoint %s is unreadable (%s); trying an older one", path, e)
            continue
        if state.get("complete") and state.get("epoch") == epoch:
            return state
        log.warning("checkpoint %s is incomplete; trying an older one", path)
    return None
