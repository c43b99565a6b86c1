"""End to end on Adult: `sparkdl run` split per stage, then `sparkdl score` on the test
file; training and scoring each as a ratio against one plain PyTorch process."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from benchmarks.baselines import load_split, plain_torch_scoring, plain_torch_training
from benchmarks.measure import REPO, ratio, steady_rate, timed
from benchmarks.timeline import step_breakdown


def _vs_plain_torch(result, train_path: str, batch_size: int) -> Dict[str, Any]:
    """A finished run's steady samples/s against plain torch at the same global batch and cores."""
    from sparkdl.core.rundir import SPEC

    ranks = result.metrics.train["ranks"]
    spec = json.loads((result.run_dir.model / SPEC).read_text())
    plain = plain_torch_training(*load_split(train_path), spec, batch_size * ranks, epochs=6, threads=ranks)
    history = result.metrics.history
    rate = steady_rate([h["samples_per_sec"] for h in history])
    return {"batch_per_rank": batch_size, "global_batch": batch_size * ranks, "ranks": ranks,
            "sparkdl_samples_per_sec": round(rate, 1), "plain_torch_samples_per_sec": round(plain, 1),
            "ratio": ratio(rate, plain), "plain_torch_threads": ranks,
            "step_ms": round(float(np.median([h["seconds"] / h["steps"] for h in history])) * 1e3, 3)}


def training_at_batch(spark, cfg, lake: str, manifest, batch_size: int, epochs: int) -> Dict[str, Any]:
    """Train at ``batch_size`` per rank with Horovod's timeline on; compare with plain torch and
    split the step into compute and gradient communication."""
    from sparkdl.workflow import train

    timeline = Path(lake) / f"horovod-timeline-{batch_size}.json"
    cfg = cfg.with_values({"train.batch_size": batch_size, "train.epochs": epochs,
                           "train.launch.env": {**cfg.train.launch.env, "HOROVOD_TIMELINE": str(timeline)}})
    result = train(cfg, lake, spark=spark, manifest=manifest)
    row = _vs_plain_torch(result, manifest.paths["train"], batch_size)
    row["horovod_timeline"] = step_breakdown(timeline)
    return row


def bench_end_to_end(spark, lake: str, epochs: int) -> Dict[str, Any]:
    from sparkdl.core.config.loading import load_config
    from sparkdl.core.models import load_model
    from sparkdl.preparation.materialize import Manifest
    from sparkdl.serving.score import score
    from sparkdl.training.rank.callbacks import StartupTimer
    from sparkdl.workflow import run_job

    cfg = load_config(REPO / "conf" / "adult.yaml", [f"train.epochs={epochs}"])
    t0 = time.perf_counter()
    result = run_job(cfg, lake, spark=spark, callbacks=[StartupTimer()])
    wall = time.perf_counter() - t0
    m = result.metrics
    manifest = Manifest.load(result.run_dir.manifest)

    test_file = str(REPO / "sparkdl" / "datasets" / "adult" / "adult.test.csv.gz")
    score_stages: Dict[str, float] = {}

    def run_score() -> int:
        report = score(spark, result.path, test_file, os.path.join(lake, "bench-scored"))
        score_stages.update(report.stages)
        return report.scored

    scored = timed(run_score)
    model, _ = load_model(result.run_dir.model)
    tx, _ = load_split(manifest.paths["test"])
    local = timed(lambda: plain_torch_scoring(model, tx, threads=2), repeat=3)

    # The gradient allreduce is a fixed cost per step: a larger batch per rank amortizes it.
    training = [training_at_batch(spark, cfg, lake, manifest, b, epochs=max(epochs, 4))
                for b in (cfg.train.batch_size, 1024)]
    return {"wall_seconds": round(wall, 2), "stages": dict(m.stages, score=scored["seconds"]),
            "time_to_first_step_s": m.train["time_to_first_step_s"], "startup": m.train.get("startup"),
            "test": m.held_out, "baseline": m.baseline, "training": training,
            "scoring": {"sparkdl_score": scored, "in_memory_one_process": local, "stages": score_stages,
                        "ratio": ratio(scored["rows_per_sec"], local["rows_per_sec"]),
                        "note": "sparkdl score reads and parses the CSV, runs the feature pipeline and the "
                                "model in Spark, and writes Parquet; the baseline only runs the model"}}
