"""Image path: synthetic 3 x 32 x 32 PNG files in label folders, (1) decoded and
materialized by Spark (binaryFile + Pillow on the executors) against one Python process
decoding the same files with Pillow, and (2) images/s into the training loop from the
materialized uint8 dataset (sparkdl's reader, shuffled, one rank of two) against a bare
pyarrow → numpy → torch loop over the same Parquet files; (3) each rank's peak resident
memory training one epoch on 224 x 224 x 3 images with the default loader settings."""
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


def _config(folder: str, shape=SHAPE):
    from sparkdl.core.config.loading import parse_config

    c, h, w = shape
    return parse_config({
        "name": "images", "data": {"format": "images", "train": folder,
                                   "image": {"mode": "RGB", "height": h, "width": w}},
        "schema": {"columns": [{"name": "path", "type": "string"}, {"name": "label", "type": "string"}],
                   "label": "label", "classes": [str(k) for k in range(10)], "keys": ["path"]},
        "materialize": {"max_ranks": 2, "row_groups_per_rank": 4},
        "model": {"kind": "cnn", "image_shape": list(shape)}})


def bench_image_path(spark, images: int, batch: int = 256) -> Dict[str, Any]:
    import pyarrow.parquet as pq
    import torch
    from PIL import Image

    from sparkdl.core.arrow import feature_matrix
    from sparkdl.core.parquet_index import DatasetIndex
    from sparkdl.preparation.synthetic import write_image_folder
    from sparkdl.training.rank.reader import ShardReader
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
        index = manifest.index_of("train") or DatasetIndex.from_footers(manifest.paths["train"])
        to_tensors = lambda x, y: (torch.from_numpy(x), torch.from_numpy(y))  # noqa: E731
        want = ShardReader(index, 0, 2, batch).deal(1).rows_per_rank[0]

        def bare() -> int:
            n = 0  # as many rows as rank 0 reads, uint8 pixels as the reader gives them
            for i in range(len(index.files)):
                t = pq.read_table(index.path(i), columns=["features", "label"])
                x = feature_matrix(t.column("features"), "features", index.path(i), raw_pixels=True)
                y = t.column("label").to_numpy()
                for j in range(0, len(y) - batch + 1, batch):
                    n += len(torch.from_numpy(y[j:j + batch]))
                    torch.from_numpy(x[j:j + batch])
                    if n >= want:
                        return n
            return n

        def reader() -> int:
            r = ShardReader(index, 0, 2, batch, shuffle_buffer=10_000, prefetch=4, to_tensors=to_tensors)
            return sum(len(y) for _, y in r.epoch(1))

        base, ours = timed(bare, repeat=3), timed(reader, repeat=3)
    return {"decode_one_process": decode, "prepare_spark": spark_rate,
            "ratio_prepare": ratio(spark_rate["rows_per_sec"], decode["rows_per_sec"]),
            "bare_pyarrow": base, "sparkdl_reader": ours, "ratio_reader": ratio(ours["rows_per_sec"],
                                                                             base["rows_per_sec"]),
            "settings": {"images": images, "shape": list(SHAPE), "batch": batch, "shuffle_buffer": 10_000,
                         "png_bytes": png_bytes}}


def bench_image_memory(spark, images: int, shape=(3, 224, 224)) -> Dict[str, Any]:
    """Peak resident memory (``VmHWM``) of each rank's Python worker over one epoch of a small
    CNN on ``images`` generated images of ``shape``, default loader settings (a shuffle
    buffer of 10,000 rows, bounded in bytes by ``train.loader.shuffle_buffer_bytes``)."""
    import json

    from sparkdl.preparation.synthetic import write_image_folder
    from sparkdl.training.rank.probe import RankProbe
    from sparkdl.workflow import prepare, train

    with tempfile.TemporaryDirectory(prefix="sparkdl-image-rss-") as tmp:
        folder = write_image_folder(str(Path(tmp) / "images"), images, shape=shape)
        cfg = _config(folder, shape).with_values({"model.hidden": [8, 16, 32], "train.epochs": 1, "train.ranks": 2,
                                                  "train.batch_size": 32, "train.tensorboard": False})
        lake = str(Path(tmp) / "lake")
        manifest = prepare(cfg, lake, spark)
        probes = Path(tmp) / "probes"
        t0 = time.perf_counter()
        m = train(cfg, lake, spark=spark, manifest=manifest, callbacks=[RankProbe(str(probes))]).metrics
        ranks = [json.loads(p.read_text()) for p in sorted(probes.glob("rank-*.json"))]
    return {"images": images, "shape": list(shape), "train_rows": manifest.splits["train"],
            "row_groups": manifest.row_groups["train"], "seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_mib_per_rank": [r["peak_rss_mib"] for r in ranks],
            "samples_per_sec": round(m.history[-1]["samples_per_sec"], 1)}
