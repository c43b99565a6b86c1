"""Image path: synthetic 3 x 32 x 32 PNG files in label folders, (1) decoded and
materialized by Spark (binaryFile + Pillow on the executors) against one Python process
decoding the same files with Pillow, and (2) images/s into the training loop from the
materialized uint8 dataset (sparkdl's reader, shuffled, one rank of two) against a bare
pyarrow → numpy → torch loop over the same Parquet files."""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from benchmarks.measure import ratio, timed

log = logging.getLogger(__name__)
SHAPE = (3, 32, 32)


def _config(folder: str):
    from sparkdl.core.config.loading import parse_config

    c, h, w = SHAPE
    return parse_config({
        "name": "images", "data": {"format": "images", "train": folder,
                                   "image": {"mode": "RGB", "height": h, "width": w}},
        "schema": {"columns": [{"name": "path", "type": "string"}, {"name": "label", "type": "string"}],
                   "label": "label", "classes": [str(k) for k in range(10)], "keys": ["path"]},
        "materialize": {"max_ranks": 2, "row_groups_per_rank": 4},
        "model": {"kind": "cnn", "image_shape": list(SHAPE)}})


def bench_image_path(spark, images: int, batch: int = 256) -> Dict[str, Any]:
    import pyarrow.parquet as pq
    import torch
    from PIL import Image

    from sparkdl.core.arrow import feature_matrix
    from sparkdl.preparation.synthetic import write_image_folder
    from sparkdl.training.rank.reader import ShardPlan, ShardReader
    from sparkdl.workflow import prepare

    with tempfile.TemporaryDirectory(prefix="sparkdl-images-") as tmp:
        folder = write_image_folder(str(Path(tmp) / "images"), images, shape=SHAPE)
        files = sorted(Path(folder).rglob("*.png"))
        png_bytes = int(sum(f.stat().st_size for f in files) / len(files))

        def one_process() -> int:
            for f in files:
                with Image.open(f) as img:
                    img.load()
                    np.asarray(img.convert("RGB")).transpose(2, 0, 1).tobytes()
            return len(files)

        decode = timed(one_process)
        t0 = time.perf_counter()
        manifest = prepare(_config(folder), str(Path(tmp) / "lake"), spark)
        seconds = time.perf_counter() - t0
        spark_rate = {"seconds": round(seconds, 2), "rows": manifest.rows["input"],
                      "rows_per_sec": round(manifest.rows["input"] / seconds, 1)}
        path = manifest.paths["train"]
        shard = sorted(Path(path).glob("*.parquet"))[0::2]

        def bare() -> int:
            n = 0
            for f in shard:
                t = pq.read_table(f, columns=["features", "label"])
                x = feature_matrix(t.column("features"), "features", str(f))
                y = t.column("label").to_numpy()
                for i in range(0, len(y) - batch + 1, batch):
                    n += len(torch.from_numpy(y[i:i + batch]))
                    torch.from_numpy(x[i:i + batch])
            return n

        plan = ShardPlan.for_dataset(path, 2, batch)
        to_tensors = lambda x, y: (torch.from_numpy(x), torch.from_numpy(y))  # noqa: E731

        def reader() -> int:
            r = ShardReader(path, 0, 2, plan, 10_000, 0, 4, to_tensors=to_tensors)
            return sum(len(y) for _, y in r.epoch(1))

        base, ours = timed(bare, repeat=3), timed(reader, repeat=3)
    return {"decode_one_process": decode, "prepare_spark": spark_rate,
            "ratio_prepare": ratio(spark_rate["rows_per_sec"], decode["rows_per_sec"]),
            "bare_pyarrow": base, "sparkdl_reader": ours, "ratio_reader": ratio(ours["rows_per_sec"],
                                                                             base["rows_per_sec"]),
            "settings": {"images": images, "shape": list(SHAPE), "batch": batch, "shuffle_buffer": 10_000,
                         "png_bytes": png_bytes}}
