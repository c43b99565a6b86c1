"""spark-submit script of the ``hosts`` benchmark, run on its driver host: every
(workload, backend, bandwidth) of a plan in one application, each training run on the
workload's prepared dataset, with the links shaped between runs by the orchestrator.

Shaping is done outside the hosts: before each run this script writes
``<shared>/shape-<i>.json`` and waits for ``<shared>/shaped-<i>``. Each rank writes
the bytes its host sent within its training steps and its step count to
``<shared>/net-<i>-<rank>.json`` (its interface counters, read inside its host).

    spark-submit hosts_job.py PLAN.json SHARED LAKE   → <shared>/results.json
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sparkdl.training.rank.callbacks import Callback

SHAPE_WAIT_S = 120


def _sent_bytes() -> int:
    """Bytes this host sent on its non-loopback interfaces (its own network namespace)."""
    import psutil

    return sum(c.bytes_sent for name, c in psutil.net_io_counters(pernic=True).items() if name != "lo")


@dataclass(frozen=True)
class InterfaceBytes(Callback):
    """Bytes this rank's host sent within its training steps (from each step's start to its
    end: forward, backward, the exchange and the optimizer step; not validation or the
    epochs' ends), and the steps taken."""

    shared: str
    run: int

    def on_train_start(self, state) -> None:
        state.extras["_net"] = {"at": 0, "sent": 0, "steps": 0}

    def on_step_start(self, state) -> None:
        state.extras["_net"]["at"] = _sent_bytes()

    def on_step_end(self, state) -> None:
        net = state.extras["_net"]
        net["sent"] += _sent_bytes() - net["at"]
        net["steps"] += 1

    def on_train_end(self, state) -> None:
        net = state.extras.pop("_net")
        out = Path(self.shared) / f"net-{self.run}-{state.rank}.json"
        out.write_text(json.dumps({"bytes_sent": net["sent"], "steps": net["steps"]}))


def _await_shaping(shared: Path, i: int, rate) -> None:
    (shared / f"shape-{i}.json").write_text(json.dumps({"rate_bit_s": rate}))
    deadline = time.monotonic() + SHAPE_WAIT_S
    while not (shared / f"shaped-{i}").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the links were not shaped for run {i} within {SHAPE_WAIT_S}s")
        time.sleep(0.1)


def main(plan_path: str, shared: str, lake: str) -> None:
    from sparkdl.core.config.loading import load_config
    from sparkdl.core.lake import Lake
    from sparkdl.core.models import build_model, model_spec
    from sparkdl.core.session import get_spark
    from sparkdl.core.stopwatch import StageClock
    from sparkdl.preparation.materialize import Manifest
    from sparkdl.workflow import HeldOutEvaluation, prepare, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    plan = json.loads(Path(plan_path).read_text())
    shared_dir = Path(shared)
    results = []
    spark = None
    for i, entry in enumerate(plan):
        cfg = load_config(entry["config"], entry["sets"])
        spark = spark or get_spark(cfg.spark)
        if not Lake(lake).has_dataset(cfg.name):
            prepare(cfg, lake, spark)
        manifest = Manifest.load(Lake(lake).current_dataset(cfg.name))
        _await_shaping(shared_dir, i, entry["rate_bit_s"])
        test = HeldOutEvaluation(spark, manifest, False, StageClock())  # the test split's metrics, as a run's
        result = train(cfg, lake, spark=spark, manifest=manifest, callbacks=[InterfaceBytes(shared, i)],
                       driver_callbacks=[test])
        m = result.metrics
        net = build_model(model_spec(cfg.model, manifest.feature_width, len(manifest.classes)))
        parameters = sum(p.numel() for p in net.parameters() if p.requires_grad)
        ranks = [json.loads((shared_dir / f"net-{i}-{r}.json").read_text()) for r in range(m.train["ranks"])]
        shapes = {name: list(p.shape) for name, p in net.named_parameters() if p.requires_grad}
        results.append({**{k: v for k, v in entry.items() if k not in ("config", "sets")}, "train": m.train,
                        "history": m.history, "net": ranks, "parameters": parameters, "shapes": shapes,
                        "held_out": m.held_out})
        (shared_dir / "results.json").write_text(json.dumps(results, default=str))
    if spark is not None:
        spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
