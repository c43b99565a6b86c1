"""Test-only: a loop callback that records a 64-bit key of every row each rank trains on,
so a test can check that an epoch dealt no row twice and left out what it says it did.

A row's key is a multiplicative hash of its feature bytes (rows of random real features
do not collide); each rank writes ``rank-<r>-epoch-<e>.npy`` under ``directory``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import numpy as np

from sparkdl.training.rank.callbacks import Callback, LoopState


def row_keys(features: np.ndarray) -> np.ndarray:
    """One uint64 per row of a 2-D array, from its bytes."""
    words = np.ascontiguousarray(features).view(np.uint8).reshape(len(features), -1)
    pad = (-words.shape[1]) % 4
    words = np.pad(words, ((0, 0), (0, pad))).view(np.uint32).astype(np.uint64)
    mult = np.random.default_rng(0).integers(1, 2**63, words.shape[1], dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        return (words * mult).sum(axis=1, dtype=np.uint64) ^ (words[:, 0] << np.uint64(32))


@dataclass
class RowKeys(Callback):
    directory: str
    _keys: Dict[int, List[np.ndarray]] = field(default_factory=dict)

    def on_step_start(self, state: LoopState) -> None:
        features = state.batch[0].numpy()
        self._keys.setdefault(state.epoch, []).append(row_keys(features.reshape(len(features), -1)))

    def on_epoch_end(self, state: LoopState) -> None:
        keys = self._keys.pop(state.epoch, [])
        out = Path(self.directory)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / f"rank-{state.rank}-epoch-{state.epoch}.npy",
                np.concatenate(keys) if keys else np.zeros(0, np.uint64))
