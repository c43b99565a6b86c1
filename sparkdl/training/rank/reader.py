"""Batches for one rank: the row ranges it is dealt (:mod:`sparkdl.training.rank.dealing`),
a shuffle buffer bounded in rows and in bytes, and asynchronous prefetch, with pyarrow
alone (``pyarrow.fs``: local paths, ``file://`` and any filesystem pyarrow opens).

The rank knows the dataset's files and row groups from its index
(:class:`~sparkdl.core.parquet_index.DatasetIndex`, built once by ``materialize``): it
lists no directory and opens the footer only of files it reads, once each.

Each row range's array column is decoded straight into one contiguous matrix (no
per-row objects), faster than Petastorm's decoder, which builds a numpy array per row
and stacks them (docs/benchmarks.md, data path). Image pixels stay uint8, a quarter of
float32's bytes, until the loop has copied the batch to its device.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from sparkdl.core.arrow import feature_matrix, index_matrix
from sparkdl.core.columns import FEATURES, LABEL
from sparkdl.core.config.train import LoaderConfig
from sparkdl.core.parquet_index import DatasetIndex, open_dataset_dir
from sparkdl.training.rank.dealing import (
    Deal,
    GroupTable,
    RowRange,
    steps_per_epoch,
    training_deal,
    training_piece,
    validation_deal,
)

log = logging.getLogger(__name__)

_END = object()


def label_array(col) -> np.ndarray:
    """Class indices as int64; a regression label (a floating-point column) as float32."""
    import pyarrow as pa

    dtype = np.float32 if pa.types.is_floating(col.type) else np.int64
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)


#: Footers a reader keeps (files it read recently); older ones are read again when needed.
_FOOTERS_KEPT = 1024
#: The most bytes decoded at a time when a range is part of a row group.
_PARTIAL_READ_BYTES = 16 * 2**20
#: The largest row group (decoded) read whole for a range that ends past its middle.
_WHOLE_READ_BYTES = 64 * 2**20
#: Decoded chunks smaller than this are joined before they are pooled for shuffling.
_SMALL_CHUNK_BYTES = 2**20
#: Rows whose gathering into batches is planned at once (bounds the plan's index arrays).
_PLAN_ROWS = 65536


class RangeReader:
    """Reads row ranges of one dataset as aligned arrays, opening only the files it reads
    and keeping their footers."""

    def __init__(self, index: DatasetIndex, filesystem: Any = None):
        self.index = index
        fs, base = open_dataset_dir(index.root)
        self.fs = filesystem if filesystem is not None else fs
        self._base = base.rstrip("/") + "/"
        self._footers: "OrderedDict[int, Any]" = OrderedDict()

    def footer(self, file: int) -> Any:
        """Data file ``file``'s Parquet metadata, read at its first use."""
        meta = self._footers.get(file)
        if meta is None:
            import pyarrow.parquet as pq

            with self.fs.open_input_file(self._base + self.index.files[file].name) as f:
                meta = self._footers[file] = pq.ParquetFile(f).metadata
            if len(self._footers) > _FOOTERS_KEPT:
                self._footers.popitem(last=False)
        else:
            self._footers.move_to_end(file)
        return meta

    def _read(self, r: RowRange, columns: List[str]) -> Any:
        """Range ``r``'s ``columns`` as a table: its row group whole (sliced, for a range ending
        past the middle of a group of at most :data:`_WHOLE_READ_BYTES`), or, for part of a
        larger one, decoded a few MiB at a time up to the range's end, keeping only its rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta = self.footer(r.file)
        group = meta.row_group(r.group)
        if group.num_rows != self.index.files[r.file].row_groups[r.group]:
            raise ValueError(f"{self.index.path(r.file)} row group {r.group} has {group.num_rows} rows, the dataset's "
                             f"index says {self.index.files[r.file].row_groups[r.group]}: the dataset changed after "
                             "it was prepared; prepare it again")
        with self.fs.open_input_file(self._base + self.index.files[r.file].name) as f:
            pf = pq.ParquetFile(f, metadata=meta)
            end = r.start + r.length
            if end == group.num_rows and r.start == 0:
                return pf.read_row_group(r.group, columns=columns)
            if 2 * end >= group.num_rows and group.total_byte_size <= _WHOLE_READ_BYTES:
                # most of the group is decoded anyway: once, with pyarrow's threads, then sliced
                return pf.read_row_group(r.group, columns=columns).slice(r.start, r.length)
            step = max(1, int(_PARTIAL_READ_BYTES * group.num_rows // max(group.total_byte_size, 1)))
            seen, kept = 0, []
            for batch in pf.iter_batches(batch_size=step, row_groups=[r.group], columns=columns):
                lo, hi = max(seen, r.start), min(seen + batch.num_rows, end)
                if hi > lo:
                    kept.append(batch.slice(lo - seen, hi - lo))
                seen += batch.num_rows
                if seen >= end:
                    break
            return pa.Table.from_batches(kept)  # a range holds at least one row

    def chunks(self, ranges: Sequence[RowRange], features: str, label: str, indices: Optional[str] = None,
               inputs: bool = True, labels: bool = True) -> Iterator[Tuple[np.ndarray, ...]]:
        """(features, labels) per range, or (features, indices, labels) with an index column.
        What ``inputs``/``labels`` leave unread comes as a placeholder of as many rows
        (features and indices zero columns wide, labels zeros), so the rows and their order
        are the same. Image features come as uint8."""
        columns = ([features] + ([indices] if indices else []) if inputs else []) + ([label] if labels else [])
        for r in ranges:
            table = self._read(r, columns) if columns else None
            where = f"{self.index.path(r.file)} (row group {r.group})"
            n = r.length
            x = (feature_matrix(table.column(features), features, where, raw_pixels=True) if inputs
                 else np.zeros((n, 0), np.float32))
            y = label_array(table.column(label)) if labels else np.zeros(n, np.int64)
            arrays = (x, index_matrix(table.column(indices), indices, where) if inputs
                      else np.zeros((n, 0), np.int64), y) if indices else (x, y)
            if any(len(a) != n for a in arrays):  # the shuffle pairs rows by position
                raise ValueError(f"{where}: columns of {[len(a) for a in arrays]} rows in a range of {n}")
            yield arrays


#: One block of rows: aligned arrays (features, [indices,] labels), each indexed by row first.
Rows = Tuple[np.ndarray, ...]


def _rebatch(blocks: Iterator[Rows], batch_size: int) -> Iterator[Rows]:
    """Cut a stream of row blocks into ``batch_size`` batches (the last may be short):
    slices of each block, with a copy only where a batch spans two blocks."""
    held: List[Rows] = []
    n_held = 0
    for arrays in blocks:
        n = len(arrays[-1])
        if n_held:
            need = batch_size - n_held
            held.append(tuple(a[:need] for a in arrays))
            n_held += min(need, n)
            arrays, n = tuple(a[need:] for a in arrays), max(n - need, 0)
            if n_held < batch_size:
                continue
            yield tuple(np.concatenate(parts) for parts in zip(*held))
            held, n_held = [], 0
        whole = n // batch_size * batch_size
        for i in range(0, whole, batch_size):
            yield tuple(a[i:i + batch_size] for a in arrays)
        if whole < n:
            held, n_held = [tuple(a[whole:] for a in arrays)], n - whole
    if n_held:
        yield tuple(np.concatenate(parts) for parts in zip(*held))


def row_bytes_of(arrays: Rows) -> int:
    """Bytes one row takes in these aligned arrays."""
    return sum(a.itemsize * int(np.prod(a.shape[1:])) for a in arrays)


def _gathered(pool: List[Rows], picks: np.ndarray, batch_size: int, parts: int = 1) -> Iterator[Rows]:
    """Rows ``picks`` (numbered across the pool's chunks laid end to end) in batches of
    ``batch_size`` (the last may be short), each a set of new writable arrays into which
    every row is copied once, straight from its chunk. Within each of a batch's ``parts``
    contiguous parts (a pipeline's micro-batches), one chunk's rows go together: one
    ``take`` per part, chunk and column, planned a window of batches at a time."""
    if not len(picks):
        return
    offsets = np.cumsum([0] + [len(p[-1]) for p in pool])
    window = batch_size * max(1, _PLAN_ROWS // batch_size)
    for w in range(0, len(picks), window):
        mine = picks[w:w + window]
        position = np.arange(len(mine))
        chunk = np.searchsorted(offsets, mine, side="right") - 1
        group = position // batch_size * parts + (position % batch_size) * parts // batch_size
        key = group * len(pool) + chunk  # (batch, part, chunk): the rows taken together
        order = np.argsort(key, kind="stable")
        local, key = (mine - offsets[chunk])[order], key[order]
        cuts = np.flatnonzero(np.diff(key)) + 1
        starts, ends = [0] + cuts.tolist(), cuts.tolist() + [len(mine)]
        chunks = (key[starts] % len(pool)).tolist()
        segment = 0
        for lo in range(0, len(mine), batch_size):
            hi = min(lo + batch_size, len(mine))
            out = tuple(np.empty((hi - lo,) + a.shape[1:], a.dtype) for a in pool[0])
            while segment < len(starts) and starts[segment] < hi:
                a_lo, a_hi, c = starts[segment], ends[segment], chunks[segment]
                for o, a in zip(out, pool[c]):  # "clip": written into ``out`` directly, not through a buffer
                    np.take(a, local[a_lo:a_hi], axis=0, out=o[a_lo - lo:a_hi - lo], mode="clip")
                segment += 1
            yield out


def _shuffled_rows(chunks: Iterator[Rows], capacity: Capacity, batch_size: int, rng: np.random.Generator,
                   parts: int = 1) -> Iterator[Rows]:
    """Batches shuffled in blocks: decoded chunks are pooled until they hold the buffer's
    rows (:class:`Capacity`, at least a batch), then the pool is permuted whole and each
    batch gathered from it (a row is copied once, from its decoded chunk into its batch).
    The fewer than ``batch_size`` rows a block leaves go into the next one. Near the end of
    the rows (``capacity.limit``), the last full block is split in two, so the last block is
    not a small one. Chunks of under 1 MiB are joined first (a row of those is copied twice,
    which is cheaper than a ``take`` per tiny chunk)."""
    pool: List[Rows] = []
    small: List[Rows] = []
    held = small_bytes = seen = 0
    cap: Optional[int] = None

    def flush_small() -> None:
        nonlocal small, small_bytes
        if small:
            pool.append(small[0] if len(small) == 1 else tuple(np.concatenate(parts_) for parts_ in zip(*small)))
            small, small_bytes = [], 0

    def drain(emit: int) -> Iterator[Rows]:
        nonlocal pool, held
        flush_small()
        order = rng.permutation(held)
        yield from _gathered(pool, order[:emit], batch_size, parts)
        rest = order[emit:]
        pool = list(_gathered(pool, rest, len(rest))) if len(rest) else []
        held = len(rest)

    for arrays in chunks:
        rows = len(arrays[-1])
        if cap is None:
            cap = max(capacity.rows(arrays), batch_size)
        size = rows * row_bytes_of(arrays)
        if size < _SMALL_CHUNK_BYTES:
            small.append(arrays)
            small_bytes += size
            if small_bytes >= 4 * _SMALL_CHUNK_BYTES:
                flush_small()
        else:
            flush_small()
            pool.append(arrays)
        held += rows
        seen += rows
        if held >= cap:
            left = None if capacity.limit is None else capacity.limit - seen
            emit = held if left is None or left >= cap else (held + left) // 2  # split the last full block
            yield from drain(max(batch_size, emit // batch_size * batch_size))
    if held:
        yield from drain(held)


@dataclass(frozen=True)
class Capacity:
    """A shuffle buffer's size: at most ``rows_cap`` rows, ``bytes`` bytes and ``limit`` rows
    (all the rows it will see), the smallest winning. Rows' size is ``row_bytes`` when given
    (decoded, every column: the same for every reader of the rows, whatever columns it
    reads), else that of the first chunk."""

    rows_cap: int
    bytes: Optional[int] = None
    row_bytes: Optional[int] = None
    limit: Optional[int] = None

    def rows(self, first: Rows) -> int:
        out = self.rows_cap
        if self.bytes is not None:
            out = min(out, self.bytes // max(self.row_bytes or row_bytes_of(first), 1))
        if self.limit is not None:
            out = min(out, self.limit)
        return max(1, out)


def shuffled_batches(chunks: Iterator[Rows], batch_size: int, buffer: "int | Capacity",
                     rng: np.random.Generator, parts: int = 1) -> Iterator[Rows]:
    """Re-batch row-group chunks into ``batch_size`` batches (the last may be short),
    shuffled through a buffer of ``buffer`` rows or :class:`Capacity` (0: in order), each of
    a batch's ``parts`` contiguous parts a uniform draw of its block. Batches are writable
    (``torch.from_numpy`` warns on the read-only arrays Arrow's zero-copy reads give)."""
    capacity = buffer if isinstance(buffer, Capacity) else Capacity(buffer)
    if capacity.rows_cap:
        return _shuffled_rows(chunks, capacity, batch_size, rng, parts)
    return _rebatch((tuple(np.require(a, requirements="W") for a in arrays) for arrays in chunks), batch_size)


class Prefetcher:
    """Runs a batch iterator in a background thread, ``depth`` batches ahead."""

    def __init__(self, source: Iterator, depth: int):
        self._source = source
        self._queue: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
        self._error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sparkdl-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._source:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as e:  # re-raised in the consumer
            self._error = e
        finally:
            while not self._stop.is_set():  # closed: nobody reads the end, and the queue may be full
                try:
                    self._queue.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def __iter__(self):
        while True:
            item = self._queue.get()
            if item is _END:
                if self._error is not None:
                    raise self._error
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=10)


#: The shuffle buffer's byte cap when none is given: ``train.loader.shuffle_buffer_bytes``'s default.
DEFAULT_BUFFER_BYTES = LoaderConfig.shuffle_buffer_bytes


class ShardReader:
    """One rank's view of a dataset: exactly :attr:`steps` shuffled training batches per
    epoch from the rows :func:`~sparkdl.training.rank.dealing.training_piece` gives it, and
    its piece of every row for validation."""

    def __init__(self, index: DatasetIndex, rank: int, size: int, batch_size: int, *, shuffle_buffer: int = 0,
                 shuffle_buffer_bytes: int = DEFAULT_BUFFER_BYTES, row_bytes: Optional[int] = None, seed: int = 0,
                 prefetch: int = 0, multiple_of: int = 1, features: str = FEATURES, label: str = LABEL,
                 to_tensors: Optional[Callable] = None,
                 transform: Optional[Callable[[np.ndarray, np.random.Generator], np.ndarray]] = None,
                 indices: Optional[str] = None, inputs: bool = True, labels: bool = True, parts: int = 1,
                 filesystem: Any = None):
        if shuffle_buffer and row_bytes is None and not (inputs and labels):
            raise ValueError("a reader of part of the columns needs row_bytes (every column's), so that it "
                             "shuffles as the readers of the other columns do")
        self.index, self.rank, self.size, self.batch_size = index, rank, size, batch_size
        #: Contiguous parts of a batch that must each be a uniform draw (a pipeline's micro-batches).
        self.parts = parts
        self.shuffle_buffer, self.shuffle_buffer_bytes = shuffle_buffer, shuffle_buffer_bytes
        #: Decoded bytes per row, every column (the loop gives it from the spec, so a pipeline's
        #: stages size their buffers alike); None: measured on the first chunk read.
        self.row_bytes = row_bytes
        self.seed, self.prefetch, self.multiple_of = seed, prefetch, multiple_of
        self.features, self.label = features, label
        #: An integer array column (embedding indices): batches are then (features, indices, labels).
        self.indices = indices
        self.to_tensors = to_tensors or (lambda *arrays: arrays)
        #: Applied to each training batch's features in the prefetch thread (augmentation),
        #: with a generator seeded by (seed, epoch, rank).
        self.transform = transform if inputs else None
        #: Whether this rank reads the rows' inputs and their labels (a pipeline's first stage
        #: needs only the inputs, its last only the labels); see :meth:`RangeReader.chunks`.
        self.inputs, self.labels = inputs, labels
        self._ranges = RangeReader(index, filesystem)
        self._table: Optional[GroupTable] = None
        self._validation: Optional[Tuple[RowRange, ...]] = None
        self.steps = steps_per_epoch(index.rows, size, batch_size, multiple_of)
        #: The last epoch's :func:`~sparkdl.training.rank.dealing.order_digest` (every rank's must match).
        self.digest: Optional[int] = None

    def deal(self, epoch: int) -> Deal:
        """Every rank's rows in ``epoch`` (the same on every rank)."""
        return training_deal(self.index, self.size, self.batch_size, epoch, self.seed, self.shuffle_buffer > 0,
                             self.multiple_of)

    def piece(self, epoch: int) -> Tuple[Tuple[RowRange, ...], int]:
        """This rank's rows in ``epoch``, and the deal's digest."""
        if self._table is None:
            self._table = GroupTable(self.index)
        return training_piece(self._table, self.size, self.batch_size, epoch, self.seed, self.rank,
                              self.shuffle_buffer > 0, self.multiple_of)

    def capacity(self, ranges: Sequence[RowRange]) -> Capacity:
        """The shuffle buffer for these ranges: ``shuffle_buffer`` rows, fewer where their bytes
        would pass ``shuffle_buffer_bytes``, and never more than the ranges hold."""
        return Capacity(self.shuffle_buffer, self.shuffle_buffer_bytes, self.row_bytes,
                        sum(r.length for r in ranges))

    def _chunks(self, ranges: Sequence[RowRange]) -> Iterator:
        return self._ranges.chunks(ranges, self.features, self.label, self.indices, self.inputs, self.labels)

    def epoch(self, epoch: int) -> Iterator:
        """Training batches for ``epoch``: the order depends only on (seed, epoch, rank)."""
        mine, self.digest = self.piece(epoch)
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        batches = shuffled_batches(self._chunks(mine), self.batch_size, self.capacity(mine), rng, self.parts)
        source = itertools.islice(batches, self.steps)
        if self.transform is not None:
            aug_rng = np.random.default_rng([self.seed, epoch, self.rank, 1])
            source = ((self.transform(b[0], aug_rng),) + tuple(b[1:]) for b in source)
        tensors = (self.to_tensors(*arrays) for arrays in source)  # in the prefetch thread (pinned copies there)
        if self.prefetch > 0:
            pf = Prefetcher(tensors, self.prefetch)
            try:
                yield from pf
            finally:
                pf.close()
        else:
            yield from tensors

    def all_rows(self, batch_size: int) -> Iterator:
        """This rank's piece of every row, in file order (for validation)."""
        if self._validation is None:
            self._validation = validation_deal(self.index, self.size).ranges[self.rank]
        for arrays in shuffled_batches(self._chunks(self._validation), batch_size, 0, np.random.default_rng(0)):
            yield self.to_tensors(*arrays)
