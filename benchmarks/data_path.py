"""Data path: samples/s the training loop receives from sparkdl's reader (shuffled
float32 batches, one rank of two) against a bare pyarrow → numpy → torch loop over the
same Parquet files with the same batch size; the same reader with Petastorm's own
decoder; and Petastorm's ``BatchedDataLoader`` with its defaults (the loader users of
Petastorm pick) and the same shuffle buffer."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np

from benchmarks.measure import ratio, timed


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

    from sparkdl.train.reader import ShardPlan, ShardReader

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

        def sparkdl_reader(buffer: int, decoder: str = "pyarrow") -> Callable[[], int]:
            def run() -> int:
                reader = ShardReader(str(path), 0, 2, plan, buffer, 0, 4, to_tensors=to_tensors, decoder=decoder)
                return sum(len(y) for _, y in reader.epoch(1))
            return run

        def petastorm_loader() -> int:
            from petastorm import make_batch_reader
            from petastorm.pytorch import BatchedDataLoader

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with make_batch_reader(f"file://{path}", schema_fields=["features", "label"], cur_shard=0,
                                       shard_count=2, num_epochs=1) as reader:
                    loader = BatchedDataLoader(reader, batch_size=batch, shuffling_queue_capacity=100_000)
                    return sum(len(b["label"]) for b in loader)

        base = timed(bare, repeat=3)
        unshuffled = timed(sparkdl_reader(0), repeat=3)
        shuffled = timed(sparkdl_reader(100_000), repeat=3)
        petastorm = timed(sparkdl_reader(100_000, "petastorm"), repeat=3)
        loader = timed(petastorm_loader, repeat=3)
    return {"bare_pyarrow": base, "sparkdl_unshuffled": unshuffled, "sparkdl_shuffled": shuffled,
            "petastorm_decoder_shuffled": petastorm, "petastorm_batched_loader_shuffled": loader,
            "ratio_shuffled": ratio(shuffled["rows_per_sec"], base["rows_per_sec"]),
            "ratio_unshuffled": ratio(unshuffled["rows_per_sec"], base["rows_per_sec"]),
            "ratio_petastorm_decoder": ratio(petastorm["rows_per_sec"], base["rows_per_sec"]),
            "ratio_petastorm_loader": ratio(loader["rows_per_sec"], base["rows_per_sec"]),
            "settings": {"rows": rows, "width": width, "batch": batch, "files": files, "ranks": 2,
                         "rank0_rows": plan.rows_per_shard[0],
                         "shuffle_buffer": 100_000, "prefetch_batches": 4}}
