"""Against Spark's own TorchDistributor (DDP over Gloo, one torchrun per barrier task)
and the plain-torch limit: sparkdl on each backend (Horovod, torch.distributed) with the
same model, data, batch, epochs and number of processes; time to first step, training
samples/s and total wall time for each; and sparkdl's torch backend launched by each
launcher (a Spark barrier stage, torchrun, mpirun, Ray Train, and srun inside a Slurm
job: ``train.launch.launcher``).

The TorchDistributor function is what its users write: load the split into memory,
shard it like DistributedSampler, wrap the model in DDP, validate each epoch and let
rank 0 save a checkpoint each epoch and the model at the end, as sparkdl does.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Tuple

import numpy as np

from benchmarks import baselines
from benchmarks.baselines import load_split, plain_torch_training
from benchmarks.measure import ratio, steady_rate

log = logging.getLogger(__name__)


def ddp_train(train_path: str, val_path: str, spec: Dict[str, Any], batch: int, epochs: int, lr: float,
              seed: int, out_dir: str, called_at: float) -> Dict[str, Any]:
    """Runs inside each torchrun process that TorchDistributor starts."""
    import gc

    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from sparkdl.core.models import build_model

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)

    x, y = load_split(train_path)
    vx, vy = load_split(val_path)
    vx, vy = vx[rank::world], vy[rank::world]
    torch.manual_seed(seed)
    model = DDP(build_model(spec))
    opt = torch.optim.Adam(model.parameters(), lr=lr * world)
    steps = len(y) // world // batch
    first_step_at, epochs_out = None, []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed * 1000 + epoch))[rank::world]
        t0 = time.perf_counter()
        for step in range(steps):
            idx = order[step * batch:(step + 1) * batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if first_step_at is None:
                first_step_at = time.time()
        seconds = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            correct = torch.tensor([float((model(vx).argmax(1) == vy).sum()), float(len(vy))])
        dist.all_reduce(correct)
        if rank == 0:
            torch.save({"model": model.module.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch},
                       os.path.join(out_dir, f"checkpoint-{epoch}.pt"))
        epochs_out.append({"samples_per_sec": steps * batch * world / seconds, "seconds": seconds,
                           "val_accuracy": float(correct[0] / correct[1])})
    if rank == 0:
        torch.save(model.module.state_dict(), os.path.join(out_dir, "model.pt"))
    # A rank leaving with DDP's reducer or Gloo's threads alive can abort at exit (SIGABRT, torch 2.13):
    # free the DDP module (it sits in reference cycles) before the group goes.
    del model, opt
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()
    return {"time_to_first_step_s": first_step_at - called_at, "epochs": epochs_out}


#: TorchDistributor has no bound of its own: a torchrun whose peer died waits forever.
TIMEOUT_S = 600


def _bounded(spark, seconds: float, fn):
    """``fn()``, or a RuntimeError after ``seconds`` with Spark's jobs cancelled."""
    import threading

    box: Dict[str, Any] = {}

    def call():
        try:
            box["result"] = fn()
        except BaseException as e:  # re-raised on the caller's thread
            box["error"] = e

    thread = threading.Thread(target=call, name="torch-distributor", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        spark.sparkContext.cancelAllJobs()
        thread.join(60)
        raise RuntimeError(f"TorchDistributor did not finish within {seconds:.0f} s; its jobs were cancelled")
    if "error" in box:
        raise box["error"]
    return box["result"]


def _run_torch_distributor(spark, t, manifest, spec, batch: int, epochs: int, lake: str) -> Tuple[Dict, float]:
    """TorchDistributor's run (bounded, one retry) and its wall seconds."""
    from pyspark.ml.torch.distributor import TorchDistributor

    for attempt in (1, 2):  # its torchrun processes have aborted at exit (Gloo, torch 2.13): one retry
        try:
            with tempfile.TemporaryDirectory(dir=lake) as out_dir:
                called_at = time.time()
                t0 = time.perf_counter()
                td = _bounded(spark, TIMEOUT_S, lambda: TorchDistributor(
                    num_processes=t.ranks, local_mode=False, use_gpu=False).run(
                    ddp_train, manifest.paths["train"], manifest.paths["validation"], spec, batch, epochs,
                    t.optimizer.lr, t.seed, out_dir, called_at))
                return td, time.perf_counter() - t0
        except Exception as e:
            if attempt == 2:
                raise
            log.warning("TorchDistributor attempt 1 failed (%s); retrying once", (str(e) or repr(e))[:300])
    raise AssertionError("unreachable")


def _sparkdl(spark, cfg, lake: str, manifest, backend: str, launcher: str = "spark") -> Dict[str, Any]:
    from sparkdl.workflow import train

    t0 = time.perf_counter()
    result = train(cfg.with_values({"train.backend": backend, "train.launch.launcher": launcher}), lake, spark=spark,
                   manifest=manifest)
    wall = time.perf_counter() - t0
    history = result.metrics.history
    return {"time_to_first_step_s": result.metrics.train["time_to_first_step_s"],
            "samples_per_sec": round(steady_rate([h["samples_per_sec"] for h in history]), 1),
            "wall_seconds": round(wall, 2), "val_accuracy": round(history[-1]["val_accuracy"], 4),
            "step_ms": {k: round(float(np.median([h[k] / h["steps"] for h in history[1:] or history])) * 1e3, 3)
                        for k in ("seconds", "data_s", "compute_s", "step_s")}}


def available_launchers() -> List[str]:
    """The launchers beyond Spark that can run here: torchrun always; mpirun and Ray where
    installed; srun only inside a Slurm job (its ranks are the job's tasks)."""
    found = {"torchrun": True, "mpirun": shutil.which("mpirun") is not None,
             "ray": importlib.util.find_spec("ray") is not None, "srun": bool(os.environ.get("SLURM_JOB_ID"))}
    return [name for name, here in found.items() if here]


def bench_distributor(spark, cfg, lake: str, manifest, epochs: int, workload: str = "adult MLP") -> Dict[str, Any]:
    """sparkdl on each backend, TorchDistributor and one plain torch process (the limit, on
    as many threads as there are ranks) on the same prepared dataset, model and batch."""
    from pyspark import cloudpickle

    from sparkdl.core.models import build_model, model_spec

    cfg = cfg.with_values({"train.epochs": epochs})
    t = cfg.train
    spec = model_spec(cfg.model, manifest.feature_width, len(manifest.classes))
    ours = {b: _sparkdl(spark, cfg, lake, manifest, b) for b in ("horovod", "torch")}
    launchers = {"spark": ours["torch"]} | {name: _sparkdl(spark, cfg, lake, manifest, "torch", launcher=name)
                                            for name in available_launchers()}
    for module in (sys.modules[__name__], baselines):  # torchrun workers cannot import benchmarks
        cloudpickle.register_pickle_by_value(module)
    td, td_wall = _run_torch_distributor(spark, t, manifest, spec, t.batch_size, epochs, lake)
    theirs = {"time_to_first_step_s": round(td["time_to_first_step_s"], 2),
              "samples_per_sec": round(steady_rate([e["samples_per_sec"] for e in td["epochs"]]), 1),
              "wall_seconds": round(td_wall, 2), "val_accuracy": round(td["epochs"][-1]["val_accuracy"], 4)}
    x, y = load_split(manifest.paths["train"])
    plain = plain_torch_training(x, y, spec, t.batch_size * t.ranks, epochs=max(epochs, 3), threads=t.ranks)
    return {
        "settings": {"workload": workload, "ranks": t.ranks, "batch_per_rank": t.batch_size, "epochs": epochs,
                     "parameters": sum(p.numel() for p in build_model(spec).parameters())},
        "sparkdl_horovod": ours["horovod"], "sparkdl_torch": ours["torch"], "torch_distributor": theirs,
        "launchers": launchers,
        "plain_torch_samples_per_sec": round(plain, 1),
        "ratios": {f"{b}_samples_per_sec_vs_td": ratio(ours[b]["samples_per_sec"], theirs["samples_per_sec"])
                   for b in ours}
        | {f"{b}_wall_vs_td": ratio(ours[b]["wall_seconds"], theirs["wall_seconds"]) for b in ours}
        | {f"{b}_first_step_vs_td": ratio(ours[b]["time_to_first_step_s"], theirs["time_to_first_step_s"])
           for b in ours}
        | {f"{b}_vs_plain_torch": ratio(ours[b]["samples_per_sec"], plain) for b in ours},
        "note": "its function reads the whole split into memory on every process (no streaming reader) and "
                "starts a fresh torchrun per task; sparkdl's ranks run in Spark's reused Python workers; plain "
                "torch is one process on in-memory tensors at the same global batch, with a thread per rank",
    }
