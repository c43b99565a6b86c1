"""Less communication per step (``python -m benchmarks --only communication``, as root):
every exchange method of the torch backend on the training workloads, on two worker
hosts whose links are unshaped and shaped to 1 Gbit/s and 100 Mbit/s, and on one host
(loopback) against the plain-torch limit.

For each run: training samples/s, the bytes each rank's host sent per step (its
interface counters, within steps) against the method's own arithmetic, and the held-out
accuracy after the same epochs (the test split, as ``sparkdl run`` evaluates it). The arithmetic, per rank and step, for ``n`` ranks and
``P`` fp32 gradient entries (ring allreduce sends 2·(n−1)/n of what it reduces):

- none: 2·(n−1)/n · 4P; fp16 and bf16: half of it;
- PowerSGD rank r: plain allreduce for its first ``start_step`` steps, then per matrix
  of n×m the factors P (n×r) and Q (m×r) allreduced, and the vectors (biases) as they are;
- top-k ratio ρ: plain allreduce for its first ``start_step`` steps, then an all-gather
  of ρP int32 indices and ρP fp32 values: (n−1) · 8ρP;
- local SGD H: the whole model allreduced on one step in H: 2·(n−1)/n · 4P / H.
"""
from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from benchmarks.measure import ratio, steady_rate

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
BATCH = 128
LINKS: List[Tuple[str, Optional[float]]] = [("unshaped", None), ("1 Gbit/s", 1e9), ("100 Mbit/s", 100e6)]
METHODS: List[Tuple[str, Dict[str, Any]]] = [
    ("none", {}),
    ("fp16", {"train.allreduce.compression": "fp16"}),
    ("bf16", {"train.allreduce.compression": "bf16"}),
    ("PowerSGD rank 1", {"train.allreduce.compression": "powersgd", "train.allreduce.powersgd": {"rank": 1}}),
    ("PowerSGD rank 4", {"train.allreduce.compression": "powersgd", "train.allreduce.powersgd": {"rank": 4}}),
    ("top-k 1 %", {"train.allreduce.compression": "topk", "train.allreduce.topk": {"ratio": 0.01}}),
    ("local SGD H=4", {"train.local_sgd": {"period": 4}}),
    ("local SGD H=8", {"train.local_sgd": {"period": 8}}),
    ("local SGD H=16", {"train.local_sgd": {"period": 16}}),
]


def workloads(quick: bool) -> List[Tuple[str, str, Dict[str, Any]]]:
    """(name, config file, overrides) of the three training workloads at batch 128 per rank."""
    common = {"train.batch_size": BATCH, "train.epochs": 1 if quick else 3, "train.ranks": 2,
              "train.backend": "torch"}
    adult, mnist = str(REPO / "conf" / "adult.yaml"), str(REPO / "conf" / "mnist.yaml")
    return [("adult MLP", adult, common), ("wide MLP", adult, {**common, "model.hidden": [2048, 2048]}),
            ("MNIST CNN", mnist, common)]


def bench_communication(quick: bool) -> Dict[str, Any]:
    """The loopback table and the hosts table (see the module docstring)."""
    return {"loopback": loopback(quick), "hosts": across_hosts(quick), "batch_per_rank": BATCH}


def across_hosts(quick: bool) -> List[Dict[str, Any]]:
    from benchmarks.hosts import as_overrides, run_on_hosts

    plan = [{"workload": name, "method": method, "link": link, "rate_bit_s": rate, "config": config,
             "sets": as_overrides({**common, **sets})}
            for name, config, common in workloads(quick) for link, rate in LINKS for method, sets in METHODS]
    rows = [_row(r) for r in run_on_hosts(plan)]
    for row in rows:  # each against uncompressed allreduce of the same workload and link
        base = next(b for b in rows if b["workload"] == row["workload"] and b["link"] == row["link"]
                    and b["method"] == "none")
        row["samples_per_sec_vs_none"] = ratio(row["samples_per_sec"], base["samples_per_sec"])
        row["accuracy_points_vs_none"] = _points(row["held_out_accuracy"], base["held_out_accuracy"])
    return rows


def _points(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else round(100 * (a - b), 2)


def _row(result: Dict[str, Any]) -> Dict[str, Any]:
    n = int(result["train"]["ranks"])
    sent = [r["bytes_sent"] / max(1, r["steps"]) for r in result["net"]]
    steps = max(1, min(r["steps"] for r in result["net"]))
    expected = expected_bytes(result["method"], result["shapes"], n, steps)
    per_step = sum(sent) / len(sent)
    held_out = result["held_out"]
    return {"workload": result["workload"], "method": result["method"], "link": result["link"],
            "parameters": result["parameters"],
            "samples_per_sec": round(float(result["train"]["samples_per_sec"]), 1),
            "bytes_per_step": round(per_step), "arithmetic_bytes_per_step": round(expected),
            "bytes_vs_arithmetic": ratio(per_step, expected),
            "held_out_accuracy": held_out.get("accuracy")}


def expected_bytes(method: str, shapes: Dict[str, List[int]], n: int, steps: int,
                   start_step: int = 10) -> float:
    """What the arithmetic of the module docstring says a rank sends per step, on average
    over ``steps`` steps."""
    ring = 2 * (n - 1) / n * 4  # bytes sent per fp32 entry allreduced
    total = sum(math.prod(s) for s in shapes.values())
    if method == "none":
        return ring * total
    if method in ("fp16", "bf16"):
        return ring * total / 2
    plain = min(start_step, steps)  # PowerSGD's and top-k's first steps allreduce the whole gradient
    if method.startswith("PowerSGD"):
        compressed = ring * powersgd_entries(shapes, int(method.rsplit(" ", 1)[1]))
        return (plain * ring * total + (steps - plain) * compressed) / steps
    if method.startswith("top-k"):
        k = round(float(method.split()[1]) / 100 * total)
        return (plain * ring * total + (steps - plain) * (n - 1) * 8 * k) / steps
    if method.startswith("local SGD"):
        period = int(method.split("=")[1])
        return ring * total * math.ceil(steps / period) / steps
    raise ValueError(f"no arithmetic for {method!r}")


def powersgd_entries(shapes: Dict[str, List[int]], rank: int, min_compression_rate: float = 2) -> int:
    """Entries PowerSGD allreduces per step: vectors and matrices it leaves whole, and for
    the others the two factors (torch's hook: a matrix is compressed when its n·m is at
    least ``min_compression_rate`` times (n + m)·r)."""
    out = 0
    for shape in shapes.values():
        if len(shape) <= 1:
            out += math.prod(shape)
            continue
        rows, cols = shape[0], math.prod(shape[1:])
        r = min(rows, cols, rank)
        factors = (rows + cols) * r
        out += factors if rows * cols >= min_compression_rate * factors else rows * cols
    return out


def loopback(quick: bool) -> List[Dict[str, Any]]:
    """Every method on one host (two executors of ``local-cluster``, loopback) for the Adult
    and wide MLPs, against one plain-torch process on as many threads (the limit)."""
    from benchmarks.baselines import load_split, plain_torch_training
    from sparkdl.core.config.loading import load_config
    from sparkdl.core.lake import Lake
    from sparkdl.core.models import model_spec
    from sparkdl.core.session import get_spark
    from sparkdl.core.stopwatch import StageClock
    from sparkdl.preparation.materialize import Manifest
    from sparkdl.workflow import HeldOutEvaluation, prepare, train

    rows = []
    epochs = 3 if quick else 6
    with tempfile.TemporaryDirectory(prefix="sparkdl-bench-comm-") as lake:
        for name, config, common in workloads(quick)[:2]:
            cfg = load_config(config).with_values({**common, "train.epochs": epochs})
            spark = get_spark(cfg.spark)
            if not Lake(lake).has_dataset(cfg.name):
                prepare(cfg, lake, spark)
            manifest = Manifest.load(Lake(lake).current_dataset(cfg.name))
            x, y = load_split(manifest.paths["train"])
            spec = model_spec(cfg.model, manifest.feature_width, len(manifest.classes))
            plain = plain_torch_training(x, y, spec, BATCH * 2, epochs=max(epochs, 3), threads=2)
            base = None
            for method, sets in METHODS:
                t0 = time.perf_counter()
                test = HeldOutEvaluation(spark, manifest, False, StageClock())
                m = train(cfg.with_values(sets), lake, spark=spark, manifest=manifest, driver_callbacks=[test]).metrics
                rate = steady_rate([h["samples_per_sec"] for h in m.history])
                accuracy = m.held_out.get("accuracy")
                base = base or {"rate": rate, "accuracy": accuracy}
                rows.append({"workload": name, "method": method, "samples_per_sec": round(rate, 1),
                             "vs_plain_torch": ratio(rate, plain), "plain_torch_samples_per_sec": round(plain, 1),
                             "held_out_accuracy": accuracy,
                             "accuracy_points_vs_none": _points(accuracy, base["accuracy"]),
                             "wall_s": round(time.perf_counter() - t0, 1)})
                log.info("loopback: %s", rows[-1])
        spark.stop()  # its executors would sit beside the hosts' runs
    return rows
