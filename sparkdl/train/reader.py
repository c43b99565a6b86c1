"""Batches for one rank: a Petastorm reader sharded by rank, a shuffle buffer, and
asynchronous prefetch. The only module that knows about Petastorm, so its version pins
can be lifted later without touching the training loop.

Petastorm gives rank r the row groups whose index i satisfies ``i % size == r``; shards
are therefore uneven in rows. Every rank computes every shard's rows from the Parquet
footers (no collective needed) and all ranks run ``min_rows // batch_size`` steps per
epoch, so no rank waits in an allreduce that another never joins.
"""
from __future__ import annotations

import logging
import queue
import threading
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

log = logging.getLogger(__name__)

# Petastorm 0.13.1 drives pyarrow's legacy dataset API, which warns on every row group.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm(\.|$)")

_END = object()


def _url(path: str) -> str:
    return path if "://" in path else f"file://{path}"


def _make_reader(path: str, fields: List[str], rank: int, size: int, seed: Optional[int], shuffle: bool):
    """Petastorm's synchronous ("dummy") pool: its thread pool (0.13.1) ends some reads
    early and silently drops row groups; asynchrony comes from :class:`Prefetcher`."""
    from petastorm import make_batch_reader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_batch_reader(_url(path), schema_fields=fields, cur_shard=rank, shard_count=size, num_epochs=1,
                                 shuffle_row_groups=shuffle, seed=seed, reader_pool_type="dummy")


def shard_rows(path: str, size: int) -> List[int]:
    """Rows in each of ``size`` Petastorm shards of the dataset at ``path``."""
    import pyarrow.parquet as pq
    from petastorm.etl.dataset_metadata import load_row_groups

    with _make_reader(path, [], 0, 1, None, False) as reader, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pieces = load_row_groups(reader.dataset)
        footers: Dict[str, object] = {}
        rows = [0] * size
        for i, piece in enumerate(pieces):
            if piece.path not in footers:
                footers[piece.path] = pq.ParquetFile(reader.dataset.fs.open(piece.path)).metadata
            meta = footers[piece.path]
            n = meta.row_group(piece.row_group).num_rows if piece.row_group is not None else meta.num_rows
            rows[i % size] += n
    return rows


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


def _chunks(path: str, rank: int, size: int, seed: Optional[int], shuffle: bool,
            features: str, label: str) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    with _make_reader(path, [features, label], rank, size, seed, shuffle) as reader:
        for batch in reader:
            x = getattr(batch, features)
            if x.dtype == object:  # ragged storage: stack once per row group, not per row
                x = np.stack(x)
            yield np.ascontiguousarray(x, dtype=np.float32), np.asarray(getattr(batch, label), dtype=np.int64)


def shuffled_batches(chunks: Iterator[Tuple[np.ndarray, np.ndarray]], batch_size: int, buffer_rows: int,
                     rng: np.random.Generator) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Re-batch row-group chunks into ``batch_size`` batches, shuffling within a buffer of
    at least ``buffer_rows`` rows (vectorised: one permutation per refill, not per row)."""
    xs: List[np.ndarray] = []
    ys: List[np.ndarray] = []
    held = 0

    def drain(keep: int):
        nonlocal xs, ys, held
        x, y = np.concatenate(xs), np.concatenate(ys)
        if buffer_rows:
            order = rng.permutation(len(y))
            x, y = x[order], y[order]
        n_out = (len(y) - keep) // batch_size * batch_size
        for i in range(0, n_out, batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
        xs, ys, held = [x[n_out:]], [y[n_out:]], len(y) - n_out

    for x, y in chunks:
        xs.append(x)
        ys.append(y)
        held += len(y)
        if held >= buffer_rows + batch_size:
            yield from drain(keep=buffer_rows // 2)
    if held:
        yield from drain(keep=0)
        if held:  # the tail, smaller than a batch
            yield xs[0], ys[0]


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
                 prefetch: int, features: str = "features", label: str = "label",
                 to_tensors: Optional[Callable] = None):
        self.path, self.rank, self.size, self.plan = path, rank, size, plan
        self.shuffle_buffer, self.seed, self.prefetch = shuffle_buffer, seed, prefetch
        self.features, self.label = features, label
        self.to_tensors = to_tensors or (lambda x, y: (x, y))

    def epoch(self, epoch: int) -> Iterator:
        """Training batches for ``epoch``: the order depends only on (seed, epoch, rank)."""
        seed = self.seed * 100003 + epoch
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        chunks = _chunks(self.path, self.rank, self.size, seed, self.shuffle_buffer > 0, self.features, self.label)
        batches = shuffled_batches(chunks, self.plan.batch_size, self.shuffle_buffer, rng)
        source = (b for b, _ in zip(batches, range(self.plan.steps)))
        if self.prefetch > 0:
            pf = Prefetcher(source, self.prefetch)
            try:
                for x, y in pf:
                    yield self.to_tensors(x, y)
            finally:
                pf.close()
        else:
            for x, y in source:
                yield self.to_tensors(x, y)

    def all_rows(self, batch_size: int) -> Iterator:
        """Every row of this rank's shard, unshuffled (for validation)."""
        chunks = _chunks(self.path, self.rank, self.size, None, False, self.features, self.label)
        for x, y in shuffled_batches(chunks, batch_size, 0, np.random.default_rng(0)):
            yield self.to_tensors(x, y)
