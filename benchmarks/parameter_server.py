"""A parameter server against ring allreduce, the comparison the field started from
(part of ``--only communication``, as root): the same gradient exchanged by n worker
hosts through a server host (each worker sends its gradient to the server, the server
averages it, steps the parameters and sends them back to every worker) and by the
workers' own ring allreduce, every host's link shaped to the same rate.

The server's link carries n gradients in and then n models out per step (2n gradients'
time at the link's rate), a worker's one of each; the ring sends 2·(n−1)/n of a
gradient from each worker, so no link carries more as n grows. Run inside each host: ``python -m benchmarks.parameter_server MODE RANK
WORLD ADDR PORT ENTRIES STEPS OUT`` (torch.distributed over Gloo, rank 0 the server).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

log = logging.getLogger(__name__)

RATE_BIT_S = 100e6
ENTRIES = 1_000_000  # 4 MB of fp32 gradient per worker and step
RUN_TIMEOUT_S = 600


def exchange(mode: str, rank: int, world: int, addr: str, port: int, entries: int, steps: int, out: str) -> None:
    """One process of the exchange; the median step time goes to ``out`` (rank 1)."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://{addr}:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=RUN_TIMEOUT_S))
    workers = dist.new_group(list(range(1, world)))
    params = torch.zeros(entries)
    grad = torch.full((entries,), float(rank))
    times: List[float] = []
    for _ in range(steps + 1):  # the first step is a warm-up
        dist.barrier()
        t0 = time.perf_counter()
        if mode == "ring":
            if rank > 0:
                dist.all_reduce(grad, group=workers)
        elif rank == 0:  # the server: every worker's gradient in, a step, the model out to each
            grads = [torch.empty(entries) for _ in range(1, world)]
            for w in [dist.irecv(g, src=i) for i, g in enumerate(grads, start=1)]:
                w.wait()
            params -= 0.01 * torch.stack(grads).mean(0)
            for w in [dist.isend(params, dst=i) for i in range(1, world)]:
                w.wait()
        else:  # point to point, as a server is: Gloo's gather and broadcast relay through the workers
            dist.send(grad, dst=0)
            dist.recv(params, src=0)
        dist.barrier()
        times.append(time.perf_counter() - t0)
    if rank == 1:
        Path(out).write_text(json.dumps({"step_s": statistics.median(times[1:])}))
    dist.destroy_process_group()


def bench_parameter_server(quick: bool) -> List[Dict[str, Any]]:
    """Step time and bytes per host and step, server against ring, at 2 and 3 workers."""
    import tempfile

    from tests.hosts.testbed import Testbed

    steps = 3 if quick else 8
    rows = []
    for n in (2, 3):
        for mode in ("parameter server", "ring allreduce"):
            with tempfile.TemporaryDirectory(prefix="sparkdl-bench-ps-") as tmp, Testbed() as bed:
                hosts = [bed.host("server")] + [bed.host(f"worker{i}") for i in range(1, n + 1)]
                for h in hosts:
                    h.shape(RATE_BIT_S)
                port = _free_port()
                out = Path(tmp) / "result.json"
                before = [h.bytes_sent() for h in hosts]
                procs = [h.popen([sys.executable, "-m", "benchmarks.parameter_server",
                                  "ring" if mode.startswith("ring") else "ps", str(rank), str(n + 1), hosts[0].ip,
                                  str(port), str(ENTRIES), str(steps), str(out)],
                                 log_path=Path(tmp) / f"rank{rank}.log", cwd=str(Path(__file__).parent.parent),
                                 env={**os.environ, "GLOO_SOCKET_IFNAME": h.interface()})
                         for rank, h in enumerate(hosts)]
                for rank, p in enumerate(procs):
                    if p.wait(timeout=RUN_TIMEOUT_S) != 0:
                        raise RuntimeError(f"{mode} rank {rank} failed:\n{(Path(tmp) / f'rank{rank}.log').read_text()}")
                sent = [(h.bytes_sent() - b) / (steps + 1) for h, b in zip(hosts, before)]
                step_s = json.loads(out.read_text())["step_s"]
            gradient = 4 * ENTRIES
            rows.append({"workers": n, "exchange": mode, "link": "100 Mbit/s", "step_s": round(step_s, 3),
                         "server_mb_per_step": round(sent[0] / 1e6, 2) if mode.startswith("parameter") else None,
                         "worker_mb_per_step": round(max(sent[1:]) / 1e6, 2), "gradient_mb": gradient / 1e6,
                         "arithmetic_s": round(8 * gradient * (2 * n if mode.startswith("parameter")
                                                               else 2 * (n - 1) / n) / RATE_BIT_S, 3)})
            log.info("parameter server: %s", rows[-1])
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    mode, rank, world, addr, port, entries, steps, out = sys.argv[1:9]
    exchange(mode, int(rank), int(world), addr, int(port), int(entries), int(steps), out)
