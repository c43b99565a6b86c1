"""sparkdl benchmarks: each stage against a baseline measured in the same run, as ratios.

    python -m benchmarks [--quick] [--out bench-results]

Writes ``<out>/bench-<time>.json`` and ``.md``. Thresholds live in the report, not in tests.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("benchmarks")


def _timed(fn: Callable[[], int], repeat: int = 1) -> Dict[str, float]:
    """Best-of-``repeat`` wall time of ``fn`` (which returns rows processed) and rows/s."""
    best = None
    rows = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = fn()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return {"seconds": round(best, 4), "rows": rows, "rows_per_sec": round(rows / best, 1)}


def _write_parquet(path: Path, rows: int, width: int, files: int, seed: int = 0) -> None:
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


def bench_data_path(rows: int, width: int = 104, batch: int = 512) -> Dict[str, Any]:
    """Samples/s the loop receives from sparkdl's reader vs a bare pyarrow → numpy → torch loop (rank 0 of 2)."""
    import pyarrow.parquet as pq
    import torch

    from sparkdl.train.reader import ShardPlan, ShardReader

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data"
        _write_parquet(path, rows, width, files=16)
        shard = sorted(path.glob("*.parquet"))[0::2]

        def bare() -> int:
            n = 0
            for f in shard:
                t = pq.read_table(f, columns=["features", "label"])
                x = t.column("features").combine_chunks().flatten().to_numpy().reshape(-1, width)
                y = t.column("label").to_numpy()
                for i in range(0, len(y) - batch + 1, batch):
                    tensors = torch.from_numpy(x[i:i + batch]), torch.from_numpy(y[i:i + batch])
                    n += len(tensors[1])
            return n

        plan = ShardPlan.for_dataset(str(path), 2, batch)
        to_t = lambda x, y: (torch.from_numpy(x), torch.from_numpy(y))  # noqa: E731

        def sparkdl_reader(buffer: int) -> Callable[[], int]:
            def run() -> int:
                reader = ShardReader(str(path), 0, 2, plan, buffer, 0, 4, to_tensors=to_t)
                return sum(len(y) for _, y in reader.epoch(1))
            return run

        base = _timed(bare, repeat=3)
        no_shuffle = _timed(sparkdl_reader(0), repeat=3)
        shuffled = _timed(sparkdl_reader(100_000), repeat=3)
    return {"bare_pyarrow": base, "sparkdl_no_shuffle": no_shuffle, "sparkdl_shuffle_100k": shuffled,
            "ratio_shuffled_vs_bare": round(shuffled["rows_per_sec"] / base["rows_per_sec"], 3),
            "ratio_unshuffled_vs_bare": round(no_shuffle["rows_per_sec"] / base["rows_per_sec"], 3),
            "settings": {"rows": rows, "width": width, "batch": batch, "files": 16, "ranks": 2}}


def _load_split(path: str):
    import pyarrow.parquet as pq
    import torch

    t = pq.read_table(path)
    width = len(t.column("features")[0])
    x = t.column("features").combine_chunks().flatten().to_numpy().reshape(-1, width).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(t.column("label").to_numpy().astype(np.int64))


def plain_torch_samples_per_sec(x, y, spec: Dict[str, Any], batch: int, epochs: int, threads: int) -> float:
    """One plain PyTorch process, in-memory tensors: the limit for the same model and batch."""
    import torch
    import torch.nn.functional as F

    from sparkdl.models import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(spec)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rates = []
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        t0 = time.perf_counter()
        n = 0
        for i in range(0, len(y) - batch + 1, batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += batch
        rates.append(n / (time.perf_counter() - t0))
    return max(rates[1:] or rates)


def bench_end_to_end(spark, lake: str, epochs: int) -> Dict[str, Any]:
    """`sparkdl run` on Adult: wall time per stage, test accuracy, training vs plain torch, scoring."""
    import torch

    from sparkdl.config import load_config
    from sparkdl.inference import score
    from sparkdl.models import load_model
    from sparkdl.workflow import run_job

    cfg = load_config(REPO / "conf" / "adult.yaml", [f"train.epochs={epochs}"])
    t0 = time.perf_counter()
    result = run_job(cfg, lake, spark=spark)
    wall = time.perf_counter() - t0
    m = result.metrics
    manifest_paths = json.loads((result.path / "manifest.json").read_text())["paths"]
    steady = [h["samples_per_sec"] for h in m["history"][1:]] or [m["history"][0]["samples_per_sec"]]
    x, y = _load_split(manifest_paths["train"])
    spec = json.loads((result.path / "model" / "spec.json").read_text())
    global_batch = cfg.train.batch_size * m["train"]["ranks"]
    plain = plain_torch_samples_per_sec(x, y, spec, global_batch, epochs=3, threads=m["train"]["ranks"])
    training = {"sparkdl_2_ranks_samples_per_sec": round(float(np.median(steady)), 1),
                "plain_torch_samples_per_sec": round(plain, 1),
                "ratio": round(float(np.median(steady)) / plain, 3),
                "settings": {"global_batch": global_batch, "model": spec, "plain_torch_threads": m["train"]["ranks"]}}

    test_file = str(REPO / "sparkdl" / "data" / "adult" / "adult.test.csv.gz")
    out = os.path.join(lake, "bench-scored")
    scored = _timed(lambda: score(spark, result.path, test_file, out).scored)
    model, _ = load_model(result.path / "model")
    tx, _ = _load_split(manifest_paths["test"])
    torch.set_num_threads(2)

    def in_memory() -> int:
        with torch.inference_mode():
            for i in range(0, len(tx), 8192):
                torch.softmax(model(tx[i:i + 8192]), 1)
        return len(tx)

    local = _timed(in_memory, repeat=3)
    scoring = {"sparkdl_score": scored, "in_memory_one_process": local,
               "ratio": round(scored["rows_per_sec"] / local["rows_per_sec"], 4),
               "note": "sparkdl_score includes reading and parsing the CSV, the feature pipeline and writing Parquet"}
    return {"wall_seconds": round(wall, 2), "stages": m["stages"], "test": m["test"],
            "baseline": m.get("baseline"), "training": training, "scoring": scoring}


def machine() -> Dict[str, Any]:
    import pyarrow
    import pyspark
    import torch

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return {"cores": os.cpu_count(), "memory_gib": round(mem, 1), "python": platform.python_version(),
            "torch": torch.__version__, "pyspark": pyspark.__version__, "pyarrow": pyarrow.__version__,
            "platform": platform.platform()}


def to_markdown(res: Dict[str, Any]) -> str:
    d, e = res["data_path"], res.get("end_to_end", {})
    lines = [f"# sparkdl benchmarks ({res['mode']}, {res['time']})", "",
             f"machine: {res['machine']}", "", "| what | sparkdl | baseline | ratio |", "| --- | --- | --- | --- |",
             f"| data path, shuffled (rows/s, rank 0 of 2) | {d['sparkdl_shuffle_100k']['rows_per_sec']:,.0f} | "
             f"{d['bare_pyarrow']['rows_per_sec']:,.0f} (bare pyarrow) | {d['ratio_shuffled_vs_bare']} |",
             f"| data path, unshuffled | {d['sparkdl_no_shuffle']['rows_per_sec']:,.0f} | "
             f"{d['bare_pyarrow']['rows_per_sec']:,.0f} | {d['ratio_unshuffled_vs_bare']} |"]
    if e:
        t, s = e["training"], e["scoring"]
        lines += [f"| training, 2 ranks (samples/s) | {t['sparkdl_2_ranks_samples_per_sec']:,.0f} | "
                  f"{t['plain_torch_samples_per_sec']:,.0f} (plain torch, same cores) | {t['ratio']} |",
                  f"| scoring (rows/s) | {s['sparkdl_score']['rows_per_sec']:,.0f} | "
                  f"{s['in_memory_one_process']['rows_per_sec']:,.0f} (in memory) | {s['ratio']} |", "",
                  f"End to end on Adult: {e['wall_seconds']} s; stages: {e['stages']}",
                  f"Test accuracy {e['test']['accuracy']:.4f}; logistic regression "
                  f"{(e.get('baseline') or {}).get('logistic_regression', {}).get('accuracy', float('nan')):.4f}"]
    return "\n".join(lines) + "\n"


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes on 2 cores")
    parser.add_argument("--out", default=str(REPO / "bench-results"))
    parser.add_argument("--skip-spark", action="store_true", help="only the benchmarks that need no Spark")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    res: Dict[str, Any] = {"mode": "quick" if args.quick else "full",
                           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine()}
    log.info("data path ...")
    res["data_path"] = bench_data_path(200_000 if args.quick else 1_000_000)
    if not args.skip_spark:
        from sparkdl.config import SparkConfig
        from sparkdl.session import get_spark

        spark = get_spark(SparkConfig(conf={"spark.ui.enabled": "false"}))
        with tempfile.TemporaryDirectory() as lake:
            log.info("end to end on Adult ...")
            res["end_to_end"] = bench_end_to_end(spark, lake, epochs=3 if args.quick else 10)
        spark.stop()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2, default=str))
    md = to_markdown(res)
    stem.with_suffix(".md").write_text(md)
    print(md)
    print(f"written: {stem}.json, {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
