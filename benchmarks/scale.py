"""Scale: a synthetic job (``conf/synthetic.yaml``, or the click-log shape's
``conf/clicklog.yaml``) at growing row counts, time per stage and peak memory of
the driver and of each executor, so the growth with rows is visible (it should be
linear in time and flat in memory: nothing is collected to the driver, and each rank
holds a row group and a shuffle buffer, not its shard)."""
from __future__ import annotations

import os
import time
from typing import Any, Dict, List

from benchmarks.baselines import load_split, plain_torch_scoring
from benchmarks.measure import REPO, PeakMemory, ratio, timed

ROWS_PER_ROW_GROUP = 65_536


def run_size(spark, lake: str, rows: int, epochs: int, job: str = "synthetic", score: bool = True) -> Dict[str, Any]:
    """``conf/<job>.yaml`` at ``rows`` rows: prepare, train, evaluate; then (``score``)
    scoring raw rows against the model alone."""
    from sparkdl.core.config.loading import load_config
    from sparkdl.workflow import run_job

    cfg = load_config(REPO / "conf" / f"{job}.yaml")
    # Row groups grow with the data so each stays about ROWS_PER_ROW_GROUP rows.
    per_rank = max(4, rows // (cfg.materialize.max_ranks * ROWS_PER_ROW_GROUP))
    cfg = cfg.with_values({"data.options.rows": str(rows), "train.epochs": epochs,
                           "materialize.row_groups_per_rank": per_rank})
    t0 = time.perf_counter()
    with PeakMemory() as memory:
        result = run_job(cfg, os.path.join(lake, f"{job}-{rows}"), spark=spark, baseline=False)
    m = result.metrics
    out = {"job": job, "rows": rows, "epochs": epochs, "row_groups_per_split": cfg.materialize.max_ranks * per_rank,
           "wall_seconds": round(time.perf_counter() - t0, 2), "stages": m.stages,
           "train_samples_per_sec": round(m.train["samples_per_sec"], 1),
           "validation_accuracy": round(m.validation["accuracy"], 4),
           "validation_auc": round(m.validation["auc"], 4),
           "peak_memory_mib": dict(sorted(memory.peaks.items()))}
    if score:
        out["scoring"] = score_vs_in_memory(spark, result, os.path.join(lake, f"{job}-{rows}-input"), rows)
    return out


def score_vs_in_memory(spark, result, input_dir: str, rows: int) -> Dict[str, Any]:
    """`sparkdl score` on ``rows`` raw CSV rows against the model alone on in-memory features."""
    from sparkdl.core.models import load_model
    from sparkdl.preparation.materialize import Manifest
    from sparkdl.preparation.synthetic import synthetic_frame
    from sparkdl.serving.score import score

    synthetic_frame(spark, rows, seed=11).write.mode("overwrite").csv(input_dir)  # no header, like the config
    stages: Dict[str, float] = {}

    def run() -> int:
        report = score(spark, result.path, input_dir, f"{input_dir}-scored", fmt="csv")
        stages.update(report.stages)
        return report.scored

    scored = timed(run)
    model, _ = load_model(result.run_dir.model)
    x, _ = load_split(Manifest.load(result.run_dir.manifest).paths["train"])
    local = timed(lambda: plain_torch_scoring(model, x, threads=2), repeat=3)
    return {"sparkdl_score": scored, "in_memory_one_process": local,
            "ratio": ratio(scored["rows_per_sec"], local["rows_per_sec"]), "stages": stages}


def bench_scale(spark, lake: str, sizes: List[int], epochs: int = 1, job: str = "synthetic",
                score: bool = True) -> Dict[str, Any]:
    runs = [run_size(spark, lake, rows, epochs, job, score) for rows in sizes]
    small, large = runs[0], runs[-1]
    growth = large["rows"] / small["rows"]
    per_stage = {k: round(large["stages"][k] / small["stages"][k], 2)
                 for k in large["stages"] if small["stages"].get(k)}
    memory = {k: round(large["peak_memory_mib"].get(k, 0) / v, 2) for k, v in small["peak_memory_mib"].items() if v}
    return {"runs": runs, "rows_growth": growth, "stage_time_growth": per_stage, "peak_memory_growth": memory,
            "note": "memory is the proportional set size (PSS) of each role's processes: the driver's Python "
                    "and JVM; each executor's JVM with its Python daemon and workers"}
