"""How a dataset's rows are dealt to ranks: row ranges (row group + offset + length), not
whole row groups, so every rank gets the same number of rows whatever the file layout.

Training, each epoch: one seeded permutation of the row groups and one seeded starting
row, the same on every rank (they depend on ``(seed, epoch)`` only); from that row, the
permuted rows laid end to end (wrapping round to the first) are cut into ``world`` equal
contiguous pieces of ``steps x batch`` rows, and rank r takes piece r. Every rank runs the
same number of steps, no row is dealt twice, and the rows past ``world x steps x batch``
(fewer than ``world x batch x multiple_of``, just before the starting row: other rows
each epoch) are left out of that epoch. A rank's rows change every epoch.

Validation: every row once, the row groups in file order cut into ``world`` contiguous
pieces whose sizes differ by at most one row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from sparkdl.core.parquet_index import DatasetIndex, RowGroup


@dataclass(frozen=True)
class RowRange:
    """Rows ``[start, start + length)`` of row group ``group`` of data file number ``file``."""

    file: int
    group: int
    start: int
    length: int


@dataclass(frozen=True)
class Deal:
    """One pass over a dataset, for every rank: its row ranges, in the order it reads them."""

    ranges: Tuple[Tuple[RowRange, ...], ...]
    #: Rows in the dataset (the split).
    total: int

    @property
    def rows_per_rank(self) -> List[int]:
        return [sum(r.length for r in mine) for mine in self.ranges]

    @property
    def left_out(self) -> int:
        return self.total - sum(self.rows_per_rank)

    @property
    def coverage(self) -> float:
        return sum(self.rows_per_rank) / self.total if self.total else 0.0


def steps_per_epoch(total: int, world: int, batch_size: int, multiple_of: int = 1) -> int:
    """Steps every rank runs in an epoch of ``total`` rows: as many whole batches as the
    rows give every rank, rounded down to a multiple of ``multiple_of`` (the backward
    passes accumulated per optimizer step)."""
    return (total // (world * batch_size)) // multiple_of * multiple_of


def epoch_order(groups: Sequence[RowGroup], seed: int, epoch: int) -> Tuple[List[RowGroup], int]:
    """The row groups in epoch ``epoch``'s order, and the row of that order where the deal
    starts: one permutation and one offset seeded by ``(seed, epoch)`` alone, so every rank
    computes the same ones without talking to the others."""
    rng = np.random.default_rng([seed, epoch, 0x5D1DEA1])
    order = rng.permutation(len(groups))
    total = sum(g.rows for g in groups)
    return [groups[i] for i in order], int(rng.integers(total)) if total else 0


def cut(groups: Sequence[RowGroup], bounds: Sequence[int]) -> Tuple[Tuple[RowRange, ...], ...]:
    """The rows of ``groups`` laid end to end, cut at ``bounds`` (non-decreasing, from 0):
    piece i is rows ``[bounds[i], bounds[i + 1])`` as row ranges."""
    ends = np.cumsum([g.rows for g in groups], dtype=np.int64)
    pieces = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mine: List[RowRange] = []
        i = int(np.searchsorted(ends, lo, side="right"))
        while lo < hi and i < len(groups):
            g_start = int(ends[i]) - groups[i].rows
            take = min(hi, int(ends[i])) - lo
            mine.append(RowRange(groups[i].file, groups[i].group, lo - g_start, take))
            lo += take
            i += 1
        pieces.append(tuple(mine))
    return tuple(pieces)


def training_deal(index: DatasetIndex, world: int, batch_size: int, epoch: int, seed: int,
                  shuffle: bool = True, multiple_of: int = 1) -> Deal:
    """Epoch ``epoch`` of training: ``world`` equal pieces (see the module's text), laid from
    a seeded offset of the permuted row groups and wrapping round, so that even a single
    row group gives a rank other rows each epoch. With ``shuffle`` off, the row groups stay
    in file order from row 0 and the pieces are the same every epoch."""
    groups = index.groups()
    total = sum(g.rows for g in groups)
    share = steps_per_epoch(total, world, batch_size, multiple_of) * batch_size
    ordered, start = epoch_order(groups, seed, epoch) if shuffle else (groups, 0)
    return Deal(cut(ordered + ordered, [start + r * share for r in range(world + 1)]), total)


def validation_deal(index: DatasetIndex, world: int) -> Deal:
    """Every row once, in file order, in ``world`` pieces differing by at most one row."""
    groups = index.groups()
    total = sum(g.rows for g in groups)
    return Deal(cut(groups, [r * total // world for r in range(world + 1)]), total)
