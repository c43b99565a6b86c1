"""Gradient exchange, outside Spark: what a training step costs when 2 processes on this
machine average gradients, against the same step in 2 independent processes.

Same MLP and optimizer as the Adult job (104 → 256 → 128 → 2, fused Adam), in-memory
tensors, one thread per process:
- ``independent``: no exchange (the limit);
- ``horovod``: Horovod's ``DistributedOptimizer`` over Gloo (sparkdl's ``horovod`` backend);
- ``ddp``: ``DistributedDataParallel`` over Gloo (sparkdl's ``torch`` backend);
- ``gloo``: one ``torch.distributed`` Gloo allreduce of a flat gradient buffer per step;
- ``latency``: Gloo's allreduce alone, by message size.

Each worker runs as ``python -m benchmarks.exchange <mode> <batch> <steps>`` under
``horovodrun`` or ``torch.distributed.run`` and prints one JSON line from rank 0.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from benchmarks.measure import REPO, ratio

SIZES = (1, 1_000, 60_000, 600_000)
_TAG = "EXCHANGE "


def _step_loop(mode: str, batch: int, steps: int) -> Dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from sparkdl.core.config.loading import load_config
    from sparkdl.core.models import build_model, model_spec
    from sparkdl.training.rank.optimizers import base_optimizer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    # The Adult job's network at Adult's materialized width (104 features, 2 classes).
    model = build_model(model_spec(load_config(REPO / "conf" / "adult.yaml").model, 104, 2))
    params = list(model.parameters())
    rank, exchange = 0, None
    if mode == "horovod":
        import horovod.torch as hvd

        hvd.init()
        rank = hvd.rank()
        opt = hvd.DistributedOptimizer(base_optimizer("adam", params, 1e-3, 0.0),
                                       named_parameters=model.named_parameters(), op=hvd.Average)
    elif mode == "ddp":
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        dist.init_process_group("gloo")
        rank = dist.get_rank()
        model = DistributedDataParallel(model, gradient_as_bucket_view=True)
    elif mode == "gloo":
        import torch.distributed as dist

        dist.init_process_group("gloo")
        rank = dist.get_rank()

        def exchange():
            flat = torch.cat([p.grad.reshape(-1) for p in params])
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
            torch.nn.utils.vector_to_parameters(flat, [p.grad for p in params])
    if mode != "horovod":
        opt = base_optimizer("adam", params, 1e-3, 0.0)
    x, y = torch.randn(steps * batch, 104), torch.randint(0, 2, (steps * batch,))
    best = float("inf")
    for _ in range(3):  # the first pass warms up; the best of the rest is reported
        t0 = time.perf_counter()
        for i in range(steps):
            opt.zero_grad()
            F.cross_entropy(model(x[i * batch:(i + 1) * batch]), y[i * batch:(i + 1) * batch]).backward()
            if exchange:
                exchange()
            opt.step()
        best = min(best, time.perf_counter() - t0)
    return {"rank": rank, "ms_per_step": round(best / steps * 1e3, 3),
            "samples_per_sec_per_rank": round(steps * batch / best, 1),
            "gradient_floats": sum(p.numel() for p in params)}


def _latency() -> Dict[str, Any]:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    out: Dict[str, Any] = {"rank": dist.get_rank()}
    for n in SIZES:
        t = torch.randn(n)
        for _ in range(20):
            dist.all_reduce(t)
        t0 = time.perf_counter()
        for _ in range(200):
            dist.all_reduce(t)
        out[str(n)] = round((time.perf_counter() - t0) / 200 * 1e3, 3)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank0(cmd: List[str], what: str, timeout: int = 300, procs: int = 1) -> Dict[str, Any]:
    """Run ``procs`` copies of ``cmd`` and return rank 0's JSON line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    running = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(procs)]
    outputs = []
    for p in running:
        try:
            outputs.append(p.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for q in running:
                q.kill()
            raise RuntimeError(f"exchange bench: {what} did not finish within {timeout} s") from None
        if p.returncode:
            raise RuntimeError(f"exchange bench: {what} exited {p.returncode}:\n{outputs[-1][-2000:]}")
    for line in "".join(outputs).splitlines():
        if _TAG in line:
            res, _ = json.JSONDecoder().raw_decode(line.split(_TAG, 1)[1])
            if res.get("rank") == 0:
                return res
    raise RuntimeError(f"exchange bench: {what} printed no result:\n{''.join(outputs)[-2000:]}")


def bench_exchange(batch: int = 128, steps: int = 300) -> Dict[str, Any]:
    me = [sys.executable, "-m", "benchmarks.exchange"]
    args = [str(batch), str(steps)]
    horovodrun = str(Path(sys.executable).with_name("horovodrun"))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port"]
    independent = _rank0(me + ["independent"] + args, "2 independent processes", procs=2)
    horovod = _rank0([horovodrun, "-np", "2", "--gloo", "-H", "localhost:2"] + me + ["horovod"] + args,
                     "horovodrun -np 2 --gloo")
    gloo = _rank0(torchrun + [str(_free_port()), "-m", "benchmarks.exchange", "gloo"] + args,
                  "torch.distributed.run (Gloo)")
    ddp = _rank0(torchrun + [str(_free_port()), "-m", "benchmarks.exchange", "ddp"] + args,
                 "torch.distributed.run (DDP, Gloo)")
    latency = _rank0(torchrun + [str(_free_port()), "-m", "benchmarks.exchange", "latency"],
                     "torch.distributed.run (Gloo latency)")
    latency.pop("rank")
    for r in (independent, horovod, gloo, ddp):
        r.pop("rank")
    return {"independent": independent, "horovod": horovod, "ddp": ddp, "gloo_flat": gloo,
            "gloo_allreduce_ms": latency,
            "ratio_ddp": ratio(ddp["samples_per_sec_per_rank"], independent["samples_per_sec_per_rank"]),
            "ratio_horovod": ratio(horovod["samples_per_sec_per_rank"], independent["samples_per_sec_per_rank"]),
            "ratio_gloo_flat": ratio(gloo["samples_per_sec_per_rank"], independent["samples_per_sec_per_rank"]),
            "settings": {"batch_per_rank": batch, "steps": steps, "processes": 2, "threads_per_process": 1}}


if __name__ == "__main__":
    mode = sys.argv[1]
    result = _latency() if mode == "latency" else _step_loop(mode, int(sys.argv[2]), int(sys.argv[3]))
    if result["rank"] == 0:  # one line: the ranks share the launcher's stdout
        print(_TAG + json.dumps(result), flush=True)
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    # torch 2.13's Gloo/DDP threads can still abort a normal interpreter exit ('terminate called
    # without an active exception', about 1 run in 15 under load) after the result is printed.
    sys.stdout.flush()
    os._exit(0)
