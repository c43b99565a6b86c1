"""Batches for one rank: a row-group plan sharded by rank, a shuffle buffer, and
asynchronous prefetch, with pyarrow alone (``pyarrow.fs``: local paths, ``file://`` and
any filesystem pyarrow opens).

The plan is the one Petastorm's ``make_batch_reader`` makes, so a sparkdl dataset
shards the same way in a Petastorm pipeline: data files sorted by path (names starting
with ``_`` or ``.`` skipped, like ``_SUCCESS`` and ``.crc`` files), each row group one
piece, piece i to rank ``i % size``. Shards are therefore uneven in rows. Every rank
computes every shard's rows from the Parquet footers (no collective needed) and all
ranks run ``min_rows // batch_size`` steps per epoch, so no rank waits in an allreduce
that another never joins.

Each row group's array column is decoded straight into one contiguous float32 matrix
(no per-row objects), faster than Petastorm's decoder, which builds a numpy array per
row and stacks them (docs/benchmarks.md, data path).
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from sparkdl.core.arrow import feature_matrix, index_matrix
from sparkdl.core.columns import FEATURES, LABEL

log = logging.getLogger(__name__)

_END = object()


def _open_dataset_dir(path: str) -> Tuple[Any, str]:
    """The pyarrow filesystem for ``path`` (a local path or a URI) and the path within it."""
    from pyarrow import fs as pafs

    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def _is_hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.split("/"))


@dataclass(frozen=True)
class RowGroup:
    """One row group of one data file."""

    path: str
    index: int
    rows: int


@dataclass(frozen=True)
class RowGroups:
    """A dataset's row groups in plan order, the filesystem that opens them, and each
    file's footer (read once, reused for every row group of the file)."""

    fs: Any
    groups: List[RowGroup]
    footers: Dict[str, Any]

    @classmethod
    def of(cls, path: str) -> "RowGroups":
        import pyarrow.parquet as pq
        from pyarrow import fs as pafs

        fs, root = _open_dataset_dir(path)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"dataset {path} does not exist: prepare it first (sparkdl prepare)")
        if info.type == pafs.FileType.File:
            files = [root]
        else:
            base = root.rstrip("/") + "/"
            found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
            files = sorted(f.path for f in found
                           if f.type == pafs.FileType.File and not _is_hidden(f.path[len(base):]))
        if not files:
            raise FileNotFoundError(f"dataset {path} holds no data files (only names starting with '_' or '.')")
        footers: Dict[str, Any] = {}
        groups = []
        for file in files:
            with fs.open_input_file(file) as f:
                try:
                    meta = pq.ParquetFile(f).metadata
                except Exception as e:  # pyarrow's ArrowInvalid: not Parquet, truncated, ...
                    raise ValueError(f"{file} in dataset {path} is not a readable Parquet file ({e}); "
                                     "remove it or prepare the dataset again") from e
            footers[file] = meta
            groups.extend(RowGroup(file, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups))
        return cls(fs, groups, footers)

    def shard(self, rank: int, size: int) -> List[RowGroup]:
        """Rank ``rank``'s row groups: ``i % size == rank``."""
        return self.groups[rank::size]


def shard_rows(path: str, size: int) -> List[int]:
    """Rows in each of ``size`` shards of the dataset at ``path``."""
    groups = RowGroups.of(path)
    return [sum(g.rows for g in groups.shard(rank, size)) for rank in range(size)]


@dataclass(frozen=True)
class ShardPlan:
    """How one epoch is cut for every rank."""

    rows_per_shard: List[int]
    batch_size: int
    steps: int

    @classmethod
    def for_dataset(cls, path: str, size: int, batch_size: int, multiple_of: int = 1) -> "ShardPlan":
        rows = shard_rows(path, size)
        steps = (min(rows) // batch_size) // multiple_of * multiple_of
        if steps == 0:
            raise ValueError(f"the smallest of {size} shards of {path} has {min(rows)} rows (shards: {rows}), "
                             f"fewer than one step of batch_size={batch_size} x {multiple_of}: lower "
                             "train.batch_size or train.ranks, or materialize more row groups")
        return cls(rows, batch_size, steps)


def label_array(col) -> np.ndarray:
    """Class indices as int64; a regression label (a floating-point column) as float32."""
    import pyarrow as pa

    dtype = np.float32 if pa.types.is_floating(col.type) else np.int64
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)


def _pyarrow_chunks(groups: RowGroups, mine: List[RowGroup], features: str, label: str,
                    indices: Optional[str] = None, inputs: bool = True,
                    labels: bool = True) -> Iterator[Tuple[np.ndarray, ...]]:
    """(features, labels) per row group, or (features, indices, labels) with an index column.
    What ``inputs``/``labels`` leave unread comes as a placeholder of as many rows (features
    and indices zero columns wide, labels zeros), so the rows and their order are the same."""
    import pyarrow.parquet as pq

    columns = ([features] + ([indices] if indices else []) if inputs else []) + ([label] if labels else [])
    for g in mine:
        rows = groups.footers[g.path].row_group(g.index).num_rows
        table = None
        if columns:
            with groups.fs.open_input_file(g.path) as f:
                table = pq.ParquetFile(f, metadata=groups.footers[g.path]).read_row_group(g.index, columns=columns)
        where = f"{g.path} (row group {g.index})"
        x = feature_matrix(table.column(features), features, where) if inputs else np.zeros((rows, 0), np.float32)
        y = label_array(table.column(label)) if labels else np.zeros(rows, np.int64)
        if indices:
            i = index_matrix(table.column(indices), indices, where) if inputs else np.zeros((rows, 0), np.int64)
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


class ShardReader:
    """One rank's view of a dataset: exactly ``plan.steps`` shuffled training batches per
    epoch, and every validation row once."""

    def __init__(self, path: str, rank: int, size: int, plan: ShardPlan, shuffle_buffer: int, seed: int,
                 prefetch: int, features: str = FEATURES, label: str = LABEL,
                 to_tensors: Optional[Callable] = None,
                 transform: Optional[Callable[[np.ndarray, np.random.Generator], np.ndarray]] = None,
                 indices: Optional[str] = None, inputs: bool = True, labels: bool = True):
        self.path, self.rank, self.size, self.plan = path, rank, size, plan
        self.shuffle_buffer, self.seed, self.prefetch = shuffle_buffer, seed, prefetch
        self.features, self.label = features, label
        #: An integer array column (embedding indices): batches are then (features, indices, labels).
        self.indices = indices
        self.to_tensors = to_tensors or (lambda *arrays: arrays)
        #: Applied to each training batch's features in the prefetch thread (augmentation),
        #: with a generator seeded by (seed, epoch, rank).
        self.transform = transform if inputs else None
        #: Whether this rank reads the rows' inputs and their labels (a pipeline's first stage
        #: needs only the inputs, its last only the labels); see :func:`_pyarrow_chunks`.
        self.inputs, self.labels = inputs, labels
        self._groups: Optional[RowGroups] = None

    def _chunks(self, rng: Optional[np.random.Generator]) -> Iterator:
        """This rank's row groups as (features, [indices,] labels) chunks; ``rng`` set: in a shuffled order."""
        if self._groups is None:
            self._groups = RowGroups.of(self.path)
        mine = self._groups.shard(self.rank, self.size)
        if rng is not None:
            mine = [mine[i] for i in rng.permutation(len(mine))]
        return _pyarrow_chunks(self._groups, mine, self.features, self.label, self.indices, self.inputs, self.labels)

    def epoch(self, epoch: int) -> Iterator:
        """Training batches for ``epoch``: the order depends only on (seed, epoch, rank)."""
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        chunks = self._chunks(rng if self.shuffle_buffer > 0 else None)
        batches = shuffled_batches(chunks, self.plan.batch_size, self.shuffle_buffer, rng)
        source = (b for b, _ in zip(batches, range(self.plan.steps)))
        if self.transform is not None:
            aug_rng = np.random.default_rng([self.seed, epoch, self.rank, 1])
            source = ((self.transform(b[0], aug_rng),) + tuple(b[1:]) for b in source)
        if self.prefetch > 0:
            pf = Prefetcher(source, self.prefetch)
            try:
                for arrays in pf:
                    yield self.to_tensors(*arrays)
            finally:
                pf.close()
        else:
            for arrays in source:
                yield self.to_tensors(*arrays)

    def all_rows(self, batch_size: int) -> Iterator:
        """Every row of this rank's shard, unshuffled (for validation)."""
        for arrays in shuffled_batches(self._chunks(None), batch_size, 0, np.random.default_rng(0)):
            yield self.to_tensors(*arrays)
