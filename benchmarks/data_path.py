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


def write_parquet(path: Path, rows: int, width: int, files: int, seed: int = 0) -> None:
    """``files`` Parquet files of float32 ``features`` arrays and int ``label``s, as materialize writes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    per = rows // files
    for i in range(files):
        x = rng.standard_normal((per, width), dtype=np.float32)
        feats = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), width).cast(pa.list_(pa.float32()))
        pq.write_table(pa.table({"features": feats, "label": pa.array(rng.integers(0, 2, per), pa.int32())}),
                       path / f"part-{i:03d}.parquet")


def bench_data_path(rows: int, width: int = 104, batch: int = 512, files: int = 16) -> Dict[str, Any]:
    import pyarrow.parquet as pq
    import torch

    from sparkdl.training.rank.reader import ShardPlan, ShardReader

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data"
        write_parquet(path, rows, width, files)
        shard = sorted(path.glob("*.parquet"))[0::2]

        def bare() -> int:
            # Zero-copy Arrow buffers are read-only; the bare loop takes them as they are, so
            # torch's one-time "not writable" warning is expected here.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            n = 0
            for f in shard:
                t = pq.read_table(f, columns=["features", "label"])
                x = t.column("features").combine_chunks().flatten().to_numpy().reshape(-1, width)
                y = t.column("label").to_numpy()
                for i in range(0, len(y) - batch + 1, batch):
                    n += len(torch.from_numpy(y[i:i + batch]))
                    torch.from_numpy(x[i:i + batch])
            return n

        plan = ShardPlan.for_dataset(str(path), 2, batch)
        to_tensors = lambda x, y: (torch.from_numpy(x), torch.from_numpy(y))  # noqa: E731

        def sparkdl_reader(buffer: int) -> Callable[[], int]:
            def run() -> int:
                reader = ShardReader(str(path), 0, 2, plan, buffer, 0, 4, to_tensors=to_tensors)
                return sum(len(y) for _, y in reader.epoch(1))
            return run

        base = timed(bare, repeat=3)
        unshuffled = timed(sparkdl_reader(0), repeat=3)
        shuffled = timed(sparkdl_reader(100_000), repeat=3)
        petastorm = petastorm_reader(path)
    extra = {} if petastorm is None else {
        "petastorm_reader_unshuffled": petastorm,
        "ratio_petastorm_reader": ratio(petastorm["rows_per_sec"], base["rows_per_sec"])}
    return {"bare_pyarrow": base, "sparkdl_unshuffled": unshuffled, "sparkdl_shuffled": shuffled, **extra,
            "ratio_shuffled": ratio(shuffled["rows_per_sec"], base["rows_per_sec"]),
            "ratio_unshuffled": ratio(unshuffled["rows_per_sec"], base["rows_per_sec"]),
            "settings": {"rows": rows, "width": width, "batch": batch, "files": files, "ranks": 2,
                         "rank0_rows": plan.rows_per_shard[0],
                         "shuffle_buffer": 100_000, "prefetch_batches": 4}}
