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

import zlib
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from sparkdl.core.parquet_index import DatasetIndex


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


class GroupTable:
    """A dataset's non-empty row groups as arrays (file, group, rows), built once per
    reader so an epoch's deal costs a permutation and two binary searches, not an object
    per row group."""

    def __init__(self, index: DatasetIndex):
        groups = index.groups()
        self.file = np.array([g.file for g in groups], dtype=np.int64)
        self.group = np.array([g.group for g in groups], dtype=np.int64)
        self.rows = np.array([g.rows for g in groups], dtype=np.int64)
        self.total = int(self.rows.sum())

    def __len__(self) -> int:
        return len(self.rows)


def epoch_order(table: GroupTable, seed: int, epoch: int) -> Tuple[np.ndarray, int]:
    """Epoch ``epoch``'s order of the row groups and the row of that order where the deal
    starts: one permutation and one offset seeded by ``(seed, epoch)`` alone, so every rank
    computes the same ones without talking to the others."""
    rng = np.random.default_rng([seed, epoch, 0x5D1DEA1])
    order = rng.permutation(len(table))
    return order, int(rng.integers(table.total)) if table.total else 0


def order_digest(order: np.ndarray, start: int) -> int:
    """A 20-bit digest of a deal's order and start: equal on every rank, or the ranks did not
    compute the same deal (an allreduce carries it exactly as a float)."""
    return zlib.crc32(np.asarray(order, dtype=np.int64).tobytes() + int(start).to_bytes(8, "little")) & 0xFFFFF


def cut(table: GroupTable, order: np.ndarray, lo: int, hi: int) -> Tuple[RowRange, ...]:
    """Rows ``[lo, hi)`` of the row groups laid end to end in ``order`` (wrapping round past
    the last, ``hi - lo`` at most every row), as row ranges."""
    if hi <= lo:
        return ()
    rows = table.rows[order]
    ends = np.cumsum(rows)
    total = int(ends[-1])
    out: List[RowRange] = []
    while lo < hi:
        at = lo % total
        i = int(np.searchsorted(ends, at, side="right"))
        g = int(order[i])
        start = at - int(ends[i] - rows[i])
        take = min(hi - lo, int(rows[i]) - start)
        out.append(RowRange(int(table.file[g]), int(table.group[g]), start, take))
        lo += take  # past the order's last row group, divmod wraps round to its first
    return tuple(out)


def training_piece(table: GroupTable, world: int, batch_size: int, epoch: int, seed: int, rank: int,
                   shuffle: bool = True, multiple_of: int = 1) -> Tuple[Tuple[RowRange, ...], int]:
    """Rank ``rank``'s rows in epoch ``epoch`` of training (see the module's text), and the
    deal's :func:`order_digest`. With ``shuffle`` off, the row groups stay in file order from
    row 0 and every rank's rows are the same every epoch."""
    share = steps_per_epoch(table.total, world, batch_size, multiple_of) * batch_size
    order, start = epoch_order(table, seed, epoch) if shuffle else (np.arange(len(table)), 0)
    return cut(table, order, start + rank * share, start + (rank + 1) * share), order_digest(order, start)


def training_deal(index: DatasetIndex, world: int, batch_size: int, epoch: int, seed: int,
                  shuffle: bool = True, multiple_of: int = 1) -> Deal:
    """Epoch ``epoch`` of training for every rank: ``world`` equal pieces laid from a seeded
    offset of the permuted row groups, wrapping round, so that even a single row group gives
    a rank other rows each epoch."""
    table = GroupTable(index)
    return Deal(tuple(training_piece(table, world, batch_size, epoch, seed, r, shuffle, multiple_of)[0]
                      for r in range(world)), table.total)


def validation_deal(index: DatasetIndex, world: int) -> Deal:
    """Every row once, in file order, in ``world`` pieces differing by at most one row."""
    table = GroupTable(index)
    order = np.arange(len(table))
    return Deal(tuple(cut(table, order, r * table.total // world, (r + 1) * table.total // world)
                      for r in range(world)), table.total)
