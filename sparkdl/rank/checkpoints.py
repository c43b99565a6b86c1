"""Checkpoints: written by rank 0 each epoch, each one complete or ignored.

A checkpoint is written to a temporary name, flushed to disk, and renamed to
``epoch-NNNN.pt``; a crash mid-write leaves only a temporary file, which resumption
never reads. Loading tries the newest checkpoint first and falls back to older ones
if a file cannot be read, so a damaged file is never trained from.
"""
from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

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
    """Atomically write ``state`` as the checkpoint of ``epoch``; keep the newest ``keep``."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(directory, epoch)
    tmp = directory / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as f:
        torch.save({**state, "epoch": epoch, "complete": True}, f)
        f.flush()
        os.fsync(f.fileno())
    if before_rename is not None:  # fault injection: a crash between write and commit
        before_rename(tmp)
    os.replace(tmp, final)
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
