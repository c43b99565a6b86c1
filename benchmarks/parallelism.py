"""Models split across ranks (``python -m benchmarks --only parallelism``): samples/s,
memory per rank and each rank's time outside its layers for data parallelism (DDP), FSDP, pipeline
parallelism (GPipe, 1F1B, interleaved, by micro-batches) and tensor parallelism, at 2 and
4 ranks on one host and on two worker hosts over unshaped and 1 Gbit/s links (as root;
the multi-host harness of ``benchmarks/hosts.py``); then a deep MLP under an executor
Python memory limit (``spark.executor.pyspark.memory``) that DDP cannot fit and FSDP and
the pipeline can.

Memory per rank is measured on the rank: the bytes of the parameters, gradients and
optimizer state it holds (a DTensor's local part) at the end of training, and the
worker's peak resident memory (``VmHWM``); :class:`~sparkdl.training.rank.probe.RankProbe`
also times the share of each step spent outside the rank's layers (the optimizer, the
loss, the exchanges, and waiting, the pipeline's bubble among it). The bubble a schedule promises is
(p − 1) / (m + p − 1) for p stages and m micro-batches, (p − 1) / (v·m + p − 1) with v
chunks per rank (interleaved); it is in the table beside the measurement.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from benchmarks.measure import REPO, ratio, steady_rate
from sparkdl.training.rank.probe import RankProbe

log = logging.getLogger(__name__)

BATCH = 128
#: The model that fits: an MLP of eight 512-wide layers on Adult's features (about 1.9 M parameters).
FITS = [512] * 8
#: The one that does not fit under the benchmark's limit: sixteen 2048-wide layers (about
#: 67 M parameters: with its gradients and Adam's two moments about 1 GiB a rank under
#: DDP), trained one epoch on 4,000 synthetic rows.
DEEP = [2048] * 16
DEEP_ROWS = 4000
#: The links of the hosts table: veth as it is, and shaped (``tc tbf``, both directions).
HOST_LINKS: List[Tuple[str, Optional[float]]] = [("unshaped", None), ("1 Gbit/s", 1e9)]


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
               peak_virtual_mib_per_rank=[r["peak_virtual_mib"] for r in ranks],
               outside_layers_share_per_rank=[r["outside_layers_share"] for r in ranks],
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
    hosts = across_hosts(quick)
    with tempfile.TemporaryDirectory(prefix="sparkdl-bench-par-") as lake:
        rows = strategies_table(lake, quick)
        limit = under_a_memory_limit(lake)
    return {"rows": rows, "hosts": hosts, "limit": limit, "batch_per_rank": BATCH, "fits_hidden": FITS}


def across_hosts(quick: bool) -> List[Dict[str, Any]]:
    """The strategies (4 micro-batches) on two worker hosts, one rank a host at 2 ranks and
    two at 4, over each of :data:`HOST_LINKS`: samples/s, the bytes each host sent per
    step, and test accuracy, against DDP on the same link."""
    from benchmarks.hosts import as_overrides, run_on_hosts

    rows: List[Dict[str, Any]] = []
    for ranks in (2, 4):
        common = {"train.ranks": ranks, "train.epochs": 2 if quick else 3, "train.batch_size": BATCH,
                  "model.hidden": FITS, "tracking.mlflow": "off"}
        plan = [{"strategy": name, "link": link, "rate_bit_s": rate, "config": str(REPO / "conf" / "adult.yaml"),
                 "sets": as_overrides({**common, **sets})}
                for link, rate in HOST_LINKS for name, sets in strategies(ranks, quick=True)]
        for result in run_on_hosts(plan, cores=ranks // 2):
            sent = [r["bytes_sent"] / max(1, r["steps"]) for r in result["net"]]
            rows.append({"strategy": result["strategy"], "ranks": ranks, "link": result["link"],
                         "samples_per_sec": round(float(result["train"]["samples_per_sec"]), 1),
                         "host_bytes_per_step": round(sum(sent) / len(sent)),
                         "held_out_accuracy": result["held_out"].get("accuracy")})
            log.info("parallelism on hosts: %s", rows[-1])
    for row in rows:
        base = next(r for r in rows if (r["ranks"], r["link"], r["strategy"]) == (row["ranks"], row["link"], "DDP"))
        row["samples_per_sec_vs_ddp"] = ratio(row["samples_per_sec"], base["samples_per_sec"])
        row["bytes_vs_ddp"] = ratio(row["host_bytes_per_step"], base["host_bytes_per_step"])
    return rows


def strategies_table(lake: str, quick: bool) -> List[Dict[str, Any]]:
    """Every strategy at 2 and 4 ranks on the model that fits, against DDP."""
    from sparkdl.core.config.loading import load_config
    from sparkdl.core.lake import Lake
    from sparkdl.preparation.materialize import Manifest
    from sparkdl.workflow import prepare

    adult = load_config(REPO / "conf" / "adult.yaml")
    rows: List[Dict[str, Any]] = []
    for ranks, master in ((2, "local-cluster[2,1,2048]"), (4, "local-cluster[2,2,3072]")):
        spark = _session(master)
        cfg = adult.with_values({"train.ranks": ranks, "train.epochs": 2 if quick else 3,
                                 "train.batch_size": BATCH, "model.hidden": FITS, "tracking.mlflow": "off"})
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
    return rows


def under_a_memory_limit(lake: str) -> Dict[str, Any]:
    """The deep MLP with DDP, FSDP and a 2-stage pipeline, each with and without
    ``train.launch.release_memory``: first without a limit (each rank's peak address
    space, which the limit bounds), then with ``spark.executor.pyspark.memory`` halfway
    between the split models' peak and DDP's (the lower of its two)."""
    from sparkdl.core.config.loading import load_config
    from sparkdl.core.lake import Lake
    from sparkdl.preparation.materialize import Manifest
    from sparkdl.workflow import prepare

    cfg = load_config(REPO / "conf" / "synthetic.yaml").with_values({
        "data.options.rows": DEEP_ROWS, "train.ranks": 2, "train.epochs": 1, "train.batch_size": BATCH,
        "model.hidden": DEEP, "tracking.mlflow": "off", "train.failure.max_attempts": 1})
    release = {"train.backend": "torch", "train.launch.release_memory": True}
    ways = [("DDP", {"train.backend": "torch"}), ("DDP, release_memory", release),
            ("FSDP", {"train.backend": "torch", "train.strategy": "fsdp"}),
            ("FSDP, release_memory", {**release, "train.strategy": "fsdp"}),
            ("pipeline 1f1b m=4", {"train.backend": "torch", "train.strategy": "pipeline"}),
            ("pipeline 1f1b m=4, release_memory", {**release, "train.strategy": "pipeline"})]
    spark = _session("local-cluster[2,1,4096]")
    prepare(cfg, lake, spark)
    manifest = Manifest.load(Lake(lake).current_dataset(cfg.name))
    unlimited = [_run(spark, cfg, lake, manifest, name, sets) for name, sets in ways]
    spark.stop()
    peaks = {r["strategy"]: max(r.get("peak_virtual_mib_per_rank") or [0]) for r in unlimited}
    split = max(peaks["FSDP, release_memory"], peaks["pipeline 1f1b m=4, release_memory"])
    ddp = min(peaks["DDP"], peaks["DDP, release_memory"])
    limit_mib = (split + ddp) // 2 if ddp > split else None
    limited: List[Dict[str, Any]] = []
    if limit_mib:
        spark = _session("local-cluster[2,1,4096]", {"spark.executor.pyspark.memory": f"{limit_mib}m"})
        limited = [_run(spark, cfg, lake, manifest, name, sets) for name, sets in ways]
        spark.stop()
    return {"pyspark_memory_mib": limit_mib, "unlimited": unlimited, "rows": limited, "hidden": DEEP}
