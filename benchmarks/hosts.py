"""Bandwidth as a parameter: the training workloads on two worker hosts (network
namespaces on this machine, ``tests/hosts/testbed.py``) with their links unshaped and
shaped to 10 Gbit/s, 1 Gbit/s and 100 Mbit/s (``tc tbf``, both directions), for each
backend.

For each run: training samples/s, the step's split from the rank loop's own timers
(waiting for data; forward and backward, where DDP and Horovod already exchange bucket
by bucket; the optimizer step with what is left of the exchange), and the bytes each rank's
host sent per step, from its interface counters, against ring allreduce's arithmetic:
2·(n−1)/n of the fp32 gradient per rank per step. Needs root.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from benchmarks.measure import ratio

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
RATES: List[Tuple[str, Optional[float]]] = [("unshaped", None), ("10 Gbit/s", 10e9), ("1 Gbit/s", 1e9),
                                            ("100 Mbit/s", 100e6)]
BACKENDS = ("horovod", "torch")
#: Per-rank batch: few enough steps that the wide MLP crosses a 100 Mbit/s link in minutes.
BATCH = 512
RUN_TIMEOUT_S = 3600


def workloads(quick: bool) -> List[Tuple[str, str, List[str]]]:
    """(name, config file, overrides) of the training benchmark's three workloads."""
    epochs = 1 if quick else 2
    common = [f"train.batch_size={BATCH}", f"train.epochs={epochs}", "train.ranks=2",
              "train.early_stopping.metric=val_loss"]
    adult, mnist = str(REPO / "conf" / "adult.yaml"), str(REPO / "conf" / "mnist.yaml")
    return [("adult MLP", adult, common), ("wide MLP", adult, [*common, "model.hidden=[2048, 2048]"]),
            ("MNIST CNN", mnist, common)]


def bench_hosts(quick: bool) -> Dict[str, Any]:
    """The bandwidth table (see the module docstring)."""
    plan = [{"workload": name, "backend": backend, "link": link, "rate_bit_s": rate, "config": config, "sets": sets}
            for name, config, sets in workloads(quick) for link, rate in RATES for backend in BACKENDS]
    results = run_on_hosts(plan)
    return {"runs": [_row(r) for r in results], "batch_per_rank": BATCH,
            "note": "two worker hosts of one executor and one core each; bytes are what each rank's host sent "
                    "within its training steps (its interface counters), divided by its steps"}


def as_overrides(values: Dict[str, Any]) -> List[str]:
    """Overrides as ``key=value`` arguments (values in YAML flow style), as a plan's ``sets``."""
    import yaml

    return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in values.items()]


def run_on_hosts(plan: List[Dict[str, Any]], cores: int = 1) -> List[Dict[str, Any]]:
    """Every entry of ``plan`` (``config``, ``sets``, ``rate_bit_s`` and labels) trained by
    one application on a driver host, a master and two worker hosts (one executor of
    ``cores`` task slots each) whose links are shaped to the entry's rate before its run;
    each entry's result as ``hosts_job.py`` records it (labels, metrics, history, bytes
    each rank sent, parameters)."""
    from tests.hosts.spark_hosts import SparkHosts
    from tests.hosts.testbed import Testbed

    with tempfile.TemporaryDirectory(prefix="sparkdl-bench-hosts-") as tmp, Testbed() as bed:
        work = Path(tmp)
        shared = work / "shared"
        shared.mkdir()
        (work / "plan.json").write_text(json.dumps(plan))
        hosts = {name: bed.host(name) for name in ("driver", "master", "worker1", "worker2")}
        spark = SparkHosts(bed, work)
        spark.start_master(hosts["master"])
        for name in ("worker1", "worker2"):
            spark.start_worker(hosts[name], cores=cores, memory="3g")
        spark.wait_for_workers(["worker1", "worker2"])
        log_path = work / "driver.log"
        job = spark.submit_background(hosts["driver"], str(REPO / "benchmarks" / "hosts_job.py"),
                                      str(work / "plan.json"), str(shared), str(work / "lake"), log_path=log_path,
                                      conf={"spark.executor.memory": "2g", "spark.executor.cores": str(cores)})
        workers = [hosts["worker1"], hosts["worker2"]]
        deadline = time.monotonic() + RUN_TIMEOUT_S * len(plan)
        done = 0
        while job.poll() is None and time.monotonic() < deadline:
            request = shared / f"shape-{done}.json"
            if request.exists():
                rate = json.loads(request.read_text())["rate_bit_s"]
                for w in workers:
                    w.unshape() if rate is None else w.shape(rate)
                log.info("run %d/%d: %s", done + 1, len(plan),
                         ", ".join(str(v) for k, v in plan[done].items() if k not in ("config", "sets", "rate_bit_s")))
                (shared / f"shaped-{done}").touch()
                done += 1
            time.sleep(0.2)
        if job.poll() is None:
            job.kill()
            raise TimeoutError(f"the hosts benchmark did not finish in time; log: {log_path}")
        if job.returncode != 0:
            raise RuntimeError(f"the hosts benchmark's job failed:\n{log_path.read_text()[-4000:]}")
        return json.loads((shared / "results.json").read_text())


def _row(result: Dict[str, Any]) -> Dict[str, Any]:
    """One run's line of the table, from what the job recorded for it."""
    n = int(result["train"]["ranks"])
    params = result.get("parameters") or 0
    ring = 2 * (n - 1) / n * params * 4
    history = result["history"]
    steps = sum(int(h.get("steps", 0)) for h in history) or 1
    split = {k: round(1000 * sum(float(h.get(k, 0.0)) for h in history) / steps, 2)
             for k in ("data_s", "compute_s", "step_s")}
    sent = [r["bytes_sent"] / max(1, r["steps"]) for r in result["net"]]
    per_step = sum(sent) / len(sent)
    return {"workload": result["workload"], "backend": result["backend"], "link": result["link"],
            "parameters": params, "samples_per_sec": round(float(result["train"]["samples_per_sec"]), 1),
            "ms_per_step": {"data": split["data_s"], "compute": split["compute_s"], "step": split["step_s"]},
            "bytes_per_step": round(per_step), "ring_bytes_per_step": round(ring),
            "bytes_vs_ring": ratio(per_step, ring) if ring else None}
