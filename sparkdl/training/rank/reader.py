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

import logging
import queue
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from sparkdl.core.arrow import feature_matrix, index_matrix
from sparkdl.core.columns import FEATURES, LABEL
from sparkdl.core.config.train import LoaderConfig
from sparkdl.core.parquet_index import DatasetIndex, open_dataset_dir
from sparkdl.training.rank.dealing import Deal, RowRange, steps_per_epoch, training_deal, validation_deal

log = logging.getLogger(__name__)

_END = object()


def label_array(col) -> np.ndarray:
    """Class indices as int64; a regression label (a floating-point column) as float32."""
    import pyarrow as pa

    dtype = np.float32 if pa.types.is_floating(col.type) else np.int64
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)


class RangeReader:
    """Reads row ranges of one dataset as aligned arrays, opening each file's footer once."""

    def __init__(self, index: DatasetIndex, filesystem: Any = None):
        self.index = index
        self.fs = filesystem if filesystem is not None else open_dataset_dir(index.root)[0]
        self._footers: Dict[int, Any] = {}
        self._base = open_dataset_dir(index.root)[1].rstrip("/") + "/"

    def footer(self, file: int) -> Any:
        """Data file ``file``'s Parquet metadata, read at its first use."""
        meta = self._footers.get(file)
        if meta is None:
            import pyarrow.parquet as pq

            with self.fs.open_input_file(self._base + self.index.files[file].name) as f:
                meta = self._footers[file] = pq.ParquetFile(f).metadata
        return meta

    def row_bytes(self, r: RowRange) -> float:
        """Bytes per row of ``r``'s row group, uncompressed, all columns: the same for every
        reader of these rows whatever columns it decodes (a pipeline's stages)."""
        group = self.footer(r.file).row_group(r.group)
        return group.total_byte_size / max(group.num_rows, 1)

    def chunks(self, ranges: Sequence[RowRange], features: str, label: str, indices: Optional[str] = None,
               inputs: bool = True, labels: bool = True) -> Iterator[Tuple[np.ndarray, ...]]:
        """(features, labels) per range, or (features, indices, labels) with an index column.
        What ``inputs``/``labels`` leave unread comes as a placeholder of as many rows
        (features and indices zero columns wide, labels zeros), so the rows and their order
        are the same. Image features come as uint8."""
        import pyarrow.parquet as pq

        columns = ([features] + ([indices] if indices else []) if inputs else []) + ([label] if labels else [])
        for r in ranges:
            table = None
            if columns:
                meta = self.footer(r.file)
                with self.fs.open_input_file(self._base + self.index.files[r.file].name) as f:
                    table = pq.ParquetFile(f, metadata=meta).read_row_group(r.group, columns=columns)
                table = table.slice(r.start, r.length)
                if table.num_rows != r.length:
                    raise ValueError(f"{self.index.path(r.file)} row group {r.group} has {table.num_rows + r.start} "
                                     f"rows, the dataset's index says more (rows {r.start}..{r.start + r.length}): "
                                     "the dataset changed after it was prepared; prepare it again")
            where = f"{self.index.path(r.file)} (row group {r.group})"
            n = r.length
            x = (feature_matrix(table.column(features), features, where, raw_pixels=True) if inputs
                 else np.zeros((n, 0), np.float32))
            y = label_array(table.column(label)) if labels else np.zeros(n, np.int64)
            if indices:
                i = index_matrix(table.column(indices), indices, where) if inputs else np.zeros((n, 0), np.int64)
                yield x, i, y
            else:
                yield x, y


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


def _shuffled_rows(chunks: Iterator[Rows], capacity: int, rng: np.random.Generator) -> Iterator[Rows]:
    """A shuffle buffer of ``capacity`` rows. Once it is full, every arriving row takes the
    slot of a uniformly drawn buffered row, which leaves: each row is copied in once and
    out once. A chunk larger than the buffer is instead permuted together with it, and
    ``capacity`` of those rows stay (one copy of each instead of many small draws)."""
    buf: Optional[List[np.ndarray]] = None
    n = 0
    for arrays in chunks:
        rows = len(arrays[-1])
        if buf is None:
            buf = [np.empty((capacity,) + a.shape[1:], a.dtype) for a in arrays]
        start = min(capacity - n, rows)
        for b, a in zip(buf, arrays):
            b[n:n + start] = a[:start]
        n += start
        if rows - start > capacity:
            joined = [np.concatenate([b, a[start:]]) for b, a in zip(buf, arrays)]
            order = rng.permutation(len(joined[-1]))
            yield tuple(j.take(order[capacity:], axis=0) for j in joined)
            buf = [j.take(order[:capacity], axis=0) for j in joined]
        elif start < rows:
            slots = rng.choice(capacity, rows - start, replace=False)
            yield tuple(b.take(slots, axis=0) for b in buf)  # copies, before the slots are refilled
            for b, a in zip(buf, arrays):
                b[slots] = a[start:]
    if n:
        order = rng.permutation(n)
        yield tuple(b[:n].take(order, axis=0) for b in buf)


def shuffled_batches(chunks: Iterator[Rows], batch_size: int, buffer_rows: int,
                     rng: np.random.Generator) -> Iterator[Rows]:
    """Re-batch row-group chunks into ``batch_size`` batches (the last may be short),
    shuffled through a buffer of ``buffer_rows`` rows (0: in order). Batches are writable
    (``torch.from_numpy`` warns on the read-only arrays Arrow's zero-copy reads give)."""
    if buffer_rows:
        rows = _shuffled_rows(chunks, buffer_rows, rng)
    else:
        rows = (tuple(np.require(a, requirements="W") for a in arrays) for arrays in chunks)
    return _rebatch(rows, batch_size)


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
            self._queue.put(_END)

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
    epoch from the rows :func:`~sparkdl.training.rank.dealing.training_deal` gives it, and
    its piece of every row for validation."""

    def __init__(self, index: DatasetIndex, rank: int, size: int, batch_size: int, *, shuffle_buffer: int = 0,
                 shuffle_buffer_bytes: int = DEFAULT_BUFFER_BYTES, seed: int = 0, prefetch: int = 0,
                 multiple_of: int = 1, features: str = FEATURES, label: str = LABEL,
                 to_tensors: Optional[Callable] = None,
                 transform: Optional[Callable[[np.ndarray, np.random.Generator], np.ndarray]] = None,
                 indices: Optional[str] = None, inputs: bool = True, labels: bool = True, filesystem: Any = None):
        self.index, self.rank, self.size, self.batch_size = index, rank, size, batch_size
        self.shuffle_buffer, self.shuffle_buffer_bytes = shuffle_buffer, shuffle_buffer_bytes
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
        self.steps = steps_per_epoch(index.rows, size, batch_size, multiple_of)

    def deal(self, epoch: int) -> Deal:
        """Every rank's rows in ``epoch`` (the same on every rank)."""
        return training_deal(self.index, self.size, self.batch_size, epoch, self.seed, self.shuffle_buffer > 0,
                             self.multiple_of)

    def buffer_rows(self, ranges: Sequence[RowRange]) -> int:
        """The shuffle buffer's rows: ``shuffle_buffer``, or fewer where their bytes would pass
        ``shuffle_buffer_bytes`` (row size from the first range's row group)."""
        if not self.shuffle_buffer or not ranges:
            return self.shuffle_buffer
        by_bytes = int(self.shuffle_buffer_bytes // max(self._ranges.row_bytes(ranges[0]), 1.0))
        return max(1, min(self.shuffle_buffer, by_bytes))

    def _chunks(self, ranges: Sequence[RowRange]) -> Iterator:
        return self._ranges.chunks(ranges, self.features, self.label, self.indices, self.inputs, self.labels)

    def epoch(self, epoch: int, deal: Optional[Deal] = None) -> Iterator:
        """Training batches for ``epoch``: the order depends only on (seed, epoch, rank)."""
        mine = (deal or self.deal(epoch)).ranges[self.rank]
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        batches = shuffled_batches(self._chunks(mine), self.batch_size, self.buffer_rows(mine), rng)
        source = (b for b, _ in zip(batches, range(self.steps)))
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
        mine = validation_deal(self.index, self.size).ranges[self.rank]
        for arrays in shuffled_batches(self._chunks(mine), batch_size, 0, np.random.default_rng(0)):
            yield self.to_tensors(*arrays)
