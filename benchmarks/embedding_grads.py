"""Embedding gradients across ranks, outside Spark: how a step with a large embedding
table costs under each way of exchanging its gradient, on 2 Horovod ranks over Gloo.

The network is the click-log shape's: 26 categorical lookups per row into one table
of ``rows`` x 16 (Zipf-distributed indices, as real ids are), concatenated into the
MLP (416 -> 256 -> 128 -> 2), batch 1024 per rank:
- ``dense``: ``nn.Embedding(sparse=False)`` + Adam; Horovod allreduces the whole table's
  gradient every step and Adam rewrites every row;
- ``sparse``: ``nn.Embedding(sparse=True)``; Horovod allgathers only the rows the batch
  touched (its sparse allreduce) and ``SparseAdam`` updates only those rows; the MLP stays
  dense with Adam;
- ``hashed``: the dense path over a table hashed down to ``hashed_rows``.
Each mode also runs as 2 independent processes (no exchange) to separate the exchange's
cost from the optimizer's.

Workers run as ``python -m benchmarks.embedding_grads <mode> <exchange> <rows> <steps>``
and print one JSON line from rank 0.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Dict

from benchmarks.exchange import _rank0
from benchmarks.measure import ratio

_TAG = "EXCHANGE "  # the tag benchmarks.exchange._rank0 looks for
LOOKUPS, DIM, BATCH = 26, 16, 1024


def _step_loop(mode: str, exchange: str, rows: int, steps: int) -> Dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    table = nn.Embedding(rows, DIM, sparse=(mode == "sparse"))
    mlp = nn.Sequential(nn.Linear(LOOKUPS * DIM, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 2))
    groups = [(mlp.named_parameters(prefix="mlp"), torch.optim.Adam(mlp.parameters(), lr=1e-3))]
    table_opt = (torch.optim.SparseAdam if mode == "sparse" else torch.optim.Adam)(table.parameters(), lr=1e-3)
    groups.append((table.named_parameters(prefix="table"), table_opt))
    rank = 0
    if exchange == "horovod":
        import horovod.torch as hvd

        hvd.init()
        rank = hvd.rank()
        groups = [(None, hvd.DistributedOptimizer(opt, named_parameters=list(named), op=hvd.Average))
                  for named, opt in groups]
    opts = [opt for _, opt in groups]
    gen = torch.Generator().manual_seed(rank)
    # Zipf(1)-like ids: floor((rows + 1) ** u) - 1, u uniform
    idx = ((rows + 1) ** torch.rand(steps * BATCH, LOOKUPS, generator=gen)).floor().long().sub(1).clamp(0, rows - 1)
    y = torch.randint(0, 2, (steps * BATCH,), generator=gen)
    best = float("inf")
    for _ in range(2):  # the first pass warms up
        t0 = time.perf_counter()
        for i in range(steps):
            sl = slice(i * BATCH, (i + 1) * BATCH)
            for opt in opts:
                opt.zero_grad()
            F.cross_entropy(mlp(table(idx[sl]).flatten(1)), y[sl]).backward()
            for opt in opts:
                opt.step()
        best = min(best, time.perf_counter() - t0)
    return {"rank": rank, "ms_per_step": round(best / steps * 1e3, 2),
            "samples_per_sec_per_rank": round(steps * BATCH / best, 1), "table_rows": rows,
            "touched_rows_per_step": int(idx[:BATCH].unique().numel())}


def bench_embedding_grads(rows: int = 1_000_000, hashed_rows: int = 65_536, steps: int = 30) -> Dict[str, Any]:
    me = [sys.executable, "-m", "benchmarks.embedding_grads"]
    horovodrun = [str(Path(sys.executable).with_name("horovodrun")), "-np", "2", "--gloo", "-H", "localhost:2"]
    out: Dict[str, Any] = {}
    for mode, n in (("dense", rows), ("sparse", rows), ("hashed", hashed_rows)):
        args = ["sparse" if mode == "sparse" else "dense"]
        alone = _rank0(me + args + ["independent", str(n), str(steps)], f"{mode}, independent", procs=2)
        ring = _rank0(horovodrun + me + args + ["horovod", str(n), str(steps)], f"{mode}, horovod")
        for r in (alone, ring):
            r.pop("rank")
        out[mode] = {"independent": alone, "horovod": ring,
                     "ratio_exchange": ratio(ring["samples_per_sec_per_rank"], alone["samples_per_sec_per_rank"])}
    out["ratio_sparse_vs_dense"] = ratio(out["sparse"]["horovod"]["samples_per_sec_per_rank"],
                                         out["dense"]["horovod"]["samples_per_sec_per_rank"])
    out["ratio_sparse_vs_hashed"] = ratio(out["sparse"]["horovod"]["samples_per_sec_per_rank"],
                                          out["hashed"]["horovod"]["samples_per_sec_per_rank"])
    out["settings"] = {"rows": rows, "hashed_rows": hashed_rows, "dim": DIM, "lookups_per_row": LOOKUPS,
                       "batch_per_rank": BATCH, "steps": steps, "processes": 2, "threads_per_process": 1}
    return out


if __name__ == "__main__":
    result = _step_loop(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    if result["rank"] == 0:
        print(_TAG + json.dumps(result), flush=True)
