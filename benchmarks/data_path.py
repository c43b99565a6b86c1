"""Data path: samples/s the training loop receives from sparkdl's reader (shuffled
float32 batches, one rank of two) against a bare pyarrow → numpy → torch loop over the
same Parquet files with the same batch size; and Petastorm 0.13.1's own
``make_batch_reader`` over the same shard, run in the Petastorm compatibility env
(Petastorm cannot be imported beside this Spark; its torch ``BatchedDataLoader`` is
therefore not measured)."""
from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import numpy as np

from benchmarks.measure import REPO, ratio, timed

log = logging.getLogger(__name__)
PETASTORM_PYTHON = REPO / ".venv-petastorm" / "bin" / "python"


def petastorm_reader(path: Path, repeat: int = 3) -> Optional[Dict[str, Any]]:
    """Petastorm's make_batch_reader in its own env; None (with a warning) without that env."""
    if not PETASTORM_PYTHON.exists():
        log.warning("no Petastorm env at %s (make setup creates it): skipping its reader", PETASTORM_PYTHON)
        return None
    proc = subprocess.run([str(PETASTORM_PYTHON), str(REPO / "benchmarks" / "petastorm_reader.py"), str(path),
                           str(repeat)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        log.warning("Petastorm's reader failed: %s", proc.stderr[-2000:])
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_parquet(path: Path, rows: int, width: int, files: int, seed: int = 0,
                  max_rows_per_file: Optional[int] = None) -> None:
    """``files`` partitions of float32 ``features`` arrays and int ``label``s, each written as
    Spark writes a partition under ``maxRecordsPerFile``: files of that many rows, then the
    remainder (``part-N-c000``, ``c001``, ...); one row group per file. Row ``i``'s first
    feature is ``i``, so a reader's rows can be told apart."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    per, first = rows // files, 0
    for i in range(files):
        n = per + (rows % files if i == files - 1 else 0)
        cap = max_rows_per_file or n
        for j, lo in enumerate(range(0, n, cap)):
            m = min(cap, n - lo)
            x = rng.standard_normal((m, width), dtype=np.float32)
            x[:, 0] = np.arange(first, first + m)
            first += m
            feats = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), width).cast(pa.list_(pa.float32()))
            pq.write_table(pa.table({"features": feats, "label": pa.array(rng.integers(0, 2, m), pa.int32())}),
                           path / f"part-{i:05d}-c{j:03d}.parquet", row_group_size=m)


def whole_row_group_coverage(index, world: int, batch: int) -> float:
    """The share of rows an epoch trained on when whole row groups were dealt ``i % world``
    and every rank ran the smallest shard's steps (the plan before row ranges)."""
    groups = index.groups()
    shards = [sum(g.rows for g in groups[r::world]) for r in range(world)]
    return round(world * (min(shards) // batch) * batch / max(index.rows, 1), 4)


def bench_data_path(rows: int, width: int = 104, batch: int = 512, files: int = 16,
                    max_rows_per_file: int = 262_144) -> Dict[str, Any]:
    """Rank 0 of 2 reading an epoch, against a bare loop over the same number of rows, on
    the layout Spark writes for ``rows`` rows in ``files`` partitions; with the epoch's
    coverage now and under whole-row-group dealing."""
    import pyarrow.parquet as pq
    import torch

    from sparkdl.core.parquet_index import DatasetIndex
    from sparkdl.training.rank.reader import ShardReader

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data"
        write_parquet(path, rows, width, files, max_rows_per_file=max_rows_per_file)
        index = DatasetIndex.from_footers(str(path))
        to_tensors = lambda x, y: (torch.from_numpy(x), torch.from_numpy(y))  # noqa: E731
        deal = ShardReader(index, 0, 2, batch).deal(1)
        want = deal.rows_per_rank[0]

        def bare() -> int:
            # Zero-copy Arrow buffers are read-only; the bare loop takes them as they are, so
            # torch's one-time "not writable" warning is expected here.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            n = 0
            for f in sorted(path.glob("*.parquet")):
                t = pq.read_table(f, columns=["features", "label"])
                x = t.column("features").combine_chunks().flatten().to_numpy().reshape(-1, width)
                y = t.column("label").to_numpy()
                for i in range(0, len(y) - batch + 1, batch):
                    n += len(torch.from_numpy(y[i:i + batch]))
                    torch.from_numpy(x[i:i + batch])
                    if n >= want:
                        return n
            return n

        def sparkdl_reader(buffer: int, prefetch: int = 4) -> Callable[[], int]:
            def run() -> int:
                reader = ShardReader(index, 0, 2, batch, shuffle_buffer=buffer, prefetch=prefetch,
                                     to_tensors=to_tensors)
                return sum(len(y) for _, y in reader.epoch(1))
            return run

        base = timed(bare, repeat=3)
        unshuffled = timed(sparkdl_reader(0), repeat=3)
        shuffled = timed(sparkdl_reader(100_000), repeat=3)
        # in the consumer's thread, as the bare loop reads: the reader's own work, without the
        # prefetch thread's hand-offs (which a consumer that computes overlaps, and this one cannot)
        same_thread = timed(sparkdl_reader(100_000, prefetch=0), repeat=3)
        petastorm = petastorm_reader(path)
        petastorm_rows = sum(g.rows for g in index.groups()[0::2])  # its own shard 0 of 2: row groups i % 2
    extra = {} if petastorm is None else {
        "petastorm_reader_unshuffled": petastorm,
        "ratio_petastorm_reader": ratio(petastorm["rows_per_sec"], base["rows_per_sec"])}
    return {"bare_pyarrow": base, "sparkdl_unshuffled": unshuffled, "sparkdl_shuffled": shuffled,
            "sparkdl_shuffled_same_thread": same_thread, **extra,
            "ratio_shuffled": ratio(shuffled["rows_per_sec"], base["rows_per_sec"]),
            "ratio_shuffled_same_thread": ratio(same_thread["rows_per_sec"], base["rows_per_sec"]),
            "ratio_unshuffled": ratio(unshuffled["rows_per_sec"], base["rows_per_sec"]),
            "coverage": round(deal.coverage, 6), "coverage_whole_row_groups": whole_row_group_coverage(index, 2, batch),
            "settings": {"rows": rows, "width": width, "batch": batch, "partitions": files,
                         "files": len(index.files), "max_rows_per_file": max_rows_per_file, "ranks": 2,
                         "rank0_rows": want, "petastorm_shard_rows": petastorm_rows,
                         "shuffle_buffer": 100_000, "prefetch_batches": 4}}


def bench_many_files(rows: int, files: int, width: int = 104, batch: int = 512) -> Dict[str, Any]:
    """Time from a rank's start to its first batch on ``files`` small files and on 16 files
    of the same rows, with the dataset's index given (as the manifest gives it), and the
    files rank 0 opens; beside the time one process takes to read every footer, what every
    rank paid before the index."""
    import time

    from sparkdl.core.parquet_index import DatasetIndex
    from sparkdl.testing.filesystems import counting_filesystem
    from sparkdl.training.rank.reader import ShardReader

    out: Dict[str, Any] = {"rows": rows, "batch": batch, "ranks": 2}
    with tempfile.TemporaryDirectory() as tmp:
        for name, n in (("many", files), ("few", 16)):
            path = Path(tmp) / name
            write_parquet(path, rows, width, n)
            t0 = time.perf_counter()
            index = DatasetIndex.from_footers(str(path))
            footers_s = time.perf_counter() - t0
            fs = counting_filesystem()
            t0 = time.perf_counter()
            reader = ShardReader(index, 0, 2, batch, shuffle_buffer=10_000, prefetch=4, filesystem=fs)
            next(iter(reader.epoch(1)))
            first = time.perf_counter() - t0
            touched = {x.file for x in reader.deal(1).ranges[0]}
            opened = set(fs.handler.opened)
            out[name] = {"files": len(index.files), "first_batch_s": round(first, 4),
                         "every_footer_s": round(footers_s, 4), "files_opened_by_rank0": len(opened),
                         "files_dealt_to_rank0": len(touched),
                         "opened_only_dealt_files": opened <= {index.path(i) for i in touched}}
    return out
