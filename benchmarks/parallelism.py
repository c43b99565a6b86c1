"""Models split across ranks (``python -m benchmarks --only parallelism``): samples/s,
memory per rank and each rank's idle share for data parallelism (DDP), FSDP, pipeline
parallelism (GPipe, 1F1B, interleaved, by micro-batches) and tensor parallelism, at 2 and
4 ranks on one host; then a deep MLP under an executor Python memory limit
(``spark.executor.pyspark.memory``) that DDP cannot fit and FSDP and the pipeline can.

Memory per rank is measured on the rank: the bytes of the parameters, gradients and
optimizer state it holds (a DTensor's local part) at the end of training, and the
worker's peak resident memory (``VmHWM``). A rank's idle share is the part of its steps
not spent in its layers' forward and backward (timed by module hooks): the pipeline's
bubble, plus waiting for its exchanges. The bubble a schedule promises is
(p − 1) / (m + p − 1) for p stages and m micro-batches, (p − 1) / (v·m + p − 1) with v
chunks per rank (interleaved); it is in the table beside the measurement.
"""
from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from benchmarks.measure import REPO, ratio, steady_rate
from sparkdl.training.rank.callbacks import Callback, LoopState

log = logging.getLogger(__name__)

BATCH = 128
#: The model that fits: an MLP of eight 512-wide layers on Adult's features (about 1.9 M parameters).
FITS = [512] * 8
#: The one that does not, under LIMIT_MIB: sixteen 2048-wide layers (about 67 M parameters:
#: with its gradients and Adam's two moments about 1 GiB a rank under DDP), trained one
#: epoch on 4,000 synthetic rows.
DEEP = [2048] * 16
LIMIT_MIB = 2300
DEEP_ROWS = 4000


def strategies(ranks: int, quick: bool) -> List[Tuple[str, Dict[str, Any]]]:
    """(name, overrides) of each way to train, at ``ranks`` ranks."""
    torch_ = {"train.backend": "torch"}
    out = [("DDP", {**torch_, "train.strategy": "ddp"}), ("FSDP", {**torch_, "train.strategy": "fsdp"})]
    micro = (4,) if quick else (2, 4, 8)
    for schedule in ("gpipe", "1f1b", "interleaved"):
        for m in micro:
            if schedule == "interleaved" and m % 2:
                continue
            out.append((f"pipeline {schedule} m={m}", {**torch_, "train.strategy": "pipeline",
                                                        "train.pipeline": {"stages": 2, "schedule": schedule,
                                                                           "micro_batches": m}}))
    out.append(("tensor", {**torch_, "train.strategy": "tensor", "train.tensor": {"size": 2}}))
    return out


class RankProbe(Callback):
    """Each rank's memory and idle share, written to ``<directory>/rank-<r>.json``."""

    def __init__(self, directory: str):
        self.directory = directory

    def on_train_start(self, state: LoopState) -> None:
        self._busy = 0.0
        self._steps = 0.0
        self._handles = []
        self._starts: Dict[int, float] = {}
        for layer in _leaves(state.model):
            key = id(layer)
            self._handles += [
                layer.register_forward_pre_hook(lambda m, a, k=key: self._start(k)),
                layer.register_forward_hook(lambda m, a, o, k=key: self._stop(k)),
                layer.register_full_backward_pre_hook(lambda m, g, k=key: self._start(-k)),
                layer.register_full_backward_hook(lambda m, gi, go, k=key: self._stop(-k)),
            ]

    def _start(self, key: int) -> None:
        self._starts[key] = time.perf_counter()

    def _stop(self, key: int) -> None:
        began = self._starts.pop(key, None)
        if began is not None:
            self._busy += time.perf_counter() - began

    def on_step_start(self, state: LoopState) -> None:
        if state.step == 0:
            self._busy = 0.0
            self._steps = 0.0
        self._step_began = time.perf_counter()

    def on_step_end(self, state: LoopState) -> None:
        self._steps += time.perf_counter() - self._step_began

    def on_train_end(self, state: LoopState) -> None:
        for h in self._handles:
            h.remove()
        out = {"rank": state.rank, "state_bytes": _state_bytes(state.model, state.optimizer),
               "peak_rss_mib": _status("VmHWM"), "idle_share": round(1 - self._busy / max(self._steps, 1e-9), 3)}
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        (Path(self.directory) / f"rank-{state.rank}.json").write_text(json.dumps(out))


def _leaves(net) -> List[Any]:
    """The modules with parameters of their own (each layer once)."""
    return [m for m in net.modules() if any(True for _ in m.parameters(recurse=False))]


def _local(t):
    return t.to_local() if hasattr(t, "to_local") else t


def _state_bytes(net, opt) -> int:
    """Bytes of the parameters, gradients and optimizer state this rank holds."""
    import torch

    total = 0
    for p in net.parameters():
        total += _local(p).numel() * p.element_size()
        if p.grad is not None:
            total += _local(p.grad).numel() * p.grad.element_size()
    for entry in opt.state.values():
        total += sum(_local(v).numel() * v.element_size() for v in entry.values() if torch.is_tensor(v))
    return total


def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1)) // 1024


def _run(spark, cfg, lake: str, manifest, name: str, sets: Dict[str, Any]) -> Dict[str, Any]:
    from sparkdl.workflow import train

    probes = tempfile.mkdtemp(prefix="sparkdl-bench-ranks-")
    row: Dict[str, Any] = {"strategy": name, "ranks": cfg.train.ranks}
    t0 = time.perf_counter()
    try:
        m = train(cfg.with_values(sets), lake, spark=spark, manifest=manifest, callbacks=[RankProbe(probes)]).metrics
    except Exception as e:  # a strategy that cannot fit or cannot run here is a row that says why
        row.update(error=str(e).splitlines()[0][:400], wall_s=round(time.perf_counter() - t0, 1))
        log.info("parallelism: %s", row)
        return row
    ranks = [json.loads(p.read_text()) for p in sorted(Path(probes).glob("rank-*.json"))]
    row.update(samples_per_sec=round(steady_rate([h["samples_per_sec"] for h in m.history]), 1),
               accuracy=m.validation.get("accuracy"),
               state_mib_per_rank=[round(r["state_bytes"] / 2 ** 20, 1) for r in ranks],
               peak_rss_mib_per_rank=[r["peak_rss_mib"] for r in ranks],
               idle_share_per_rank=[r["idle_share"] for r in ranks],
               wall_s=round(time.perf_counter() - t0, 1))
    p = sets.get("train.pipeline")
    if p:
        stages, v = p["stages"], 2 if p["schedule"] == "interleaved" else 1
        row["bubble"] = round((stages - 1) / (v * p["micro_batches"] + stages - 1), 3)
    log.info("parallelism: %s", row)
    return row


def _session(master: str, conf: Optional[Dict[str, str]] = None):
    from sparkdl.core.config import SparkConfig
    from sparkdl.core.session import get_spark

    return get_spark(SparkConfig(master=master, app_name="sparkdl-bench-parallelism",
                                 conf={"spark.ui.enabled": "false", **(conf or {})}))


def bench_parallelism(quick: bool) -> Dict[str, Any]:
    import cloudpickle

    import benchmarks.parallelism as me
    from sparkdl.core.config.loading import load_config
    from sparkdl.core.lake import Lake
    from sparkdl.preparation.materialize import Manifest
    from sparkdl.workflow import prepare

    cloudpickle.register_pickle_by_value(me)  # the probe runs on the executors
    adult = load_config(REPO / "conf" / "adult.yaml")
    epochs = 2 if quick else 3
    rows: List[Dict[str, Any]] = []
    limit: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sparkdl-bench-par-") as lake:
        for ranks, master in ((2, "local-cluster[2,1,2048]"), (4, "local-cluster[2,2,3072]")):
            spark = _session(master)
            cfg = adult.with_values({"train.ranks": ranks, "train.epochs": epochs, "train.batch_size": BATCH,
                                     "model.hidden": FITS, "tracking.mlflow": "off"})
            if not Lake(lake).has_dataset(cfg.name):
                prepare(cfg, lake, spark)
            manifest = Manifest.load(Lake(lake).current_dataset(cfg.name))
            for name, sets in strategies(ranks, quick):
                rows.append(_run(spark, cfg, lake, manifest, name, sets))
            spark.stop()
        for row in rows:  # each against DDP at the same ranks
            base = next(r for r in rows if r["ranks"] == row["ranks"] and r["strategy"] == "DDP")
            if "samples_per_sec" in row and "samples_per_sec" in base:
                row["samples_per_sec_vs_ddp"] = ratio(row["samples_per_sec"], base["samples_per_sec"])
                row["state_vs_ddp"] = ratio(max(row["state_mib_per_rank"]), max(base["state_mib_per_rank"]))

        spark = _session("local-cluster[2,1,3072]", {"spark.executor.pyspark.memory": f"{LIMIT_MIB}m"})
        cfg = load_config(REPO / "conf" / "synthetic.yaml").with_values({
            "data.options.rows": DEEP_ROWS, "train.ranks": 2, "train.epochs": 1, "train.batch_size": BATCH,
            "model.hidden": DEEP, "tracking.mlflow": "off", "train.failure.max_attempts": 1})
        prepare(cfg, lake, spark)
        manifest = Manifest.load(Lake(lake).current_dataset(cfg.name))
        for name, sets in [("DDP", {"train.backend": "torch"}),
                           ("FSDP", {"train.backend": "torch", "train.strategy": "fsdp"}),
                           ("pipeline 1f1b m=4", {"train.backend": "torch", "train.strategy": "pipeline"})]:
            limit.append(_run(spark, cfg, lake, manifest, name, sets))
        spark.stop()
    return {"rows": rows, "limit": {"pyspark_memory_mib": LIMIT_MIB, "hidden": DEEP, "rows": limit},
            "batch_per_rank": BATCH, "fits_hidden": FITS}
