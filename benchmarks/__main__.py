"""sparkdl benchmarks: each stage against a baseline measured in the same run, as ratios.

    python -m benchmarks [--quick] [--out bench-results] [--only data_path,exchange,end_to_end,...]

Writes ``<out>/bench-<time>.json`` and ``.md``. Thresholds live in the report, not in tests;
``--quick`` (100 k / 1 M rows for scale) is CI's smoke run.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from benchmarks.measure import REPO, machine
from benchmarks.report import pairs, to_markdown

PARTS = ("data_path", "exchange", "embedding_grads", "end_to_end", "distributor", "etl", "scoring", "scale",
         "clicklog", "images")
#: Parts run only when named (``--only hosts``): several hosts in network namespaces, as root;
#: models split across ranks, with clusters of their own.
NAMED_ONLY = ("hosts", "communication", "parallelism")
log = logging.getLogger("benchmarks")


def run(parts: List[str], quick: bool) -> Dict[str, Any]:
    from benchmarks.data_path import bench_data_path, bench_many_files
    from benchmarks.embedding_grads import bench_embedding_grads
    from benchmarks.exchange import bench_exchange

    res: Dict[str, Any] = {"mode": "quick" if quick else "full", "machine": machine(),
                           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": {}}

    def part(name: str, fn):
        if name in parts:
            log.info("== %s", name)
            t0 = time.perf_counter()
            res[name] = fn()
            res["seconds"][name] = round(time.perf_counter() - t0, 1)

    part("data_path", lambda: {
        "sizes": [bench_data_path(n) for n in ([200_000] if quick else [1_000_000, 5_000_000])],
        "many_files": bench_many_files(20_000 if quick else 200_000, 1_000 if quick else 10_000)})
    part("exchange", lambda: bench_exchange(steps=200 if quick else 1000))
    part("embedding_grads", lambda: bench_embedding_grads(steps=10 if quick else 30))
    if "hosts" in parts:
        from benchmarks.hosts import bench_hosts

        part("hosts", lambda: bench_hosts(quick))
    if "communication" in parts:
        from benchmarks.communication import bench_communication
        from benchmarks.parameter_server import bench_parameter_server

        part("communication", lambda: {**bench_communication(quick),
                                       "parameter_server": bench_parameter_server(quick)})
    if "parallelism" in parts:
        from benchmarks.parallelism import bench_parallelism

        part("parallelism", lambda: bench_parallelism(quick))
    if not set(parts) - {"data_path", "exchange", "embedding_grads", *NAMED_ONLY}:
        return res
    from benchmarks.distributor import bench_distributor
    from benchmarks.end_to_end import bench_end_to_end
    from benchmarks.etl import bench_etl
    from benchmarks.image_path import bench_image_memory, bench_image_path
    from benchmarks.scale import bench_scale
    from benchmarks.scoring import bench_scoring
    from sparkdl.core.config import SparkConfig
    from sparkdl.core.config.loading import load_config
    from sparkdl.core.lake import Lake
    from sparkdl.core.session import get_spark
    from sparkdl.preparation.materialize import Manifest

    spark = get_spark(SparkConfig(app_name="sparkdl-benchmarks", conf={"spark.ui.enabled": "false"}))
    res["master"] = spark.sparkContext.master
    try:
        with tempfile.TemporaryDirectory(prefix="sparkdl-bench-") as lake:
            epochs = 3 if quick else 10
            part("end_to_end", lambda: bench_end_to_end(spark, lake, epochs))
            adult = load_config(REPO / "conf" / "adult.yaml")

            def distributor():
                runs = []
                for workload, cfg, batches in training_workloads(adult, quick):
                    if not Lake(lake).has_dataset(cfg.name):
                        from sparkdl.workflow import prepare
                        prepare(cfg, lake, spark)
                    manifest = Manifest.load(Lake(lake).current_dataset(cfg.name))
                    for batch in batches:
                        log.info("-- %s at batch %d per rank", workload, batch)
                        runs.append(bench_distributor(spark, cfg.with_values({"train.batch_size": batch}), lake,
                                                      manifest, epochs=4 if quick else 6, workload=workload))
                        log.info("result: %s", json.dumps(runs[-1]))  # kept in the log if a later one fails
                return {"runs": runs}

            part("distributor", distributor)
            part("etl", lambda: bench_etl(spark, lake, [100_000] if quick else [1_000_000, 10_000_000]))
            part("scoring", lambda: bench_scoring(spark, lake, 200_000 if quick else 1_000_000))
            part("scale", lambda: bench_scale(spark, lake, [100_000, 300_000] if quick else [1_000_000, 10_000_000]))
            part("clicklog", lambda: bench_scale(spark, lake, [100_000, 300_000] if quick else [1_000_000, 10_000_000],
                                                 epochs=1, job="clicklog", score=False))
            part("images", lambda: {**bench_image_path(spark, 4_000 if quick else 50_000),
                                     "memory_224": bench_image_memory(spark, 1_000 if quick else 4_000)})
    finally:
        spark.stop()
    return res


def training_workloads(adult, quick: bool):
    """(name, config, batches per rank) of the backend comparison: the Adult MLP, a wide MLP
    of about 4.4 M parameters on the same rows, and the MNIST CNN (when the images are there)."""
    from sparkdl.core.config.loading import load_config

    if quick:
        return [("adult MLP", adult, (128,))]
    out = [("adult MLP", adult, (128, 1024)),
           ("wide MLP", adult.with_values({"model.hidden": [2048, 2048]}), (128, 1024))]
    mnist = load_config(REPO / "conf" / "mnist.yaml")
    if Path(mnist.data.train).is_dir():
        out.append(("MNIST CNN", mnist, (128, 1024)))
    else:
        log.warning("MNIST CNN left out of the backend comparison: no images at %s", mnist.data.train)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: under 10 minutes on 2 cores")
    parser.add_argument("--out", default=str(REPO / "bench-results"), help="where the JSON and markdown go")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts of {PARTS}, or {NAMED_ONLY} (run only when named)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS) - set(NAMED_ONLY))
    if unknown:
        parser.error(f"unknown part(s) {unknown}: choose from {', '.join(PARTS + NAMED_ONLY)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    t0 = time.perf_counter()
    res = run(parts, args.quick)
    res["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2, default=str))
    md = to_markdown(res) + f"\nBenchmark time per part (s): {pairs(res['seconds'])}.\n"
    stem.with_suffix(".md").write_text(md)
    sys.stdout.write(md)
    log.info("written: %s.json, %s.md", stem, stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
