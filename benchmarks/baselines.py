"""The limits sparkdl is measured against: one plain PyTorch process on in-memory
tensors, training or scoring the same model on the same rows with the same cores."""
from __future__ import annotations

import time
from typing import Any, Dict, Tuple

import numpy as np

from benchmarks.measure import steady_rate


def load_split(path: str) -> Tuple[Any, Any]:
    """A materialized split as in-memory (features, label) tensors."""
    import pyarrow.parquet as pq
    import torch

    from sparkdl.core.arrow import feature_matrix

    t = pq.read_table(path, columns=["features", "label"])
    x = feature_matrix(t.column("features"), "features", path)  # float32; images as pixels in [0, 1]
    return torch.from_numpy(x), torch.from_numpy(t.column("label").to_numpy().astype(np.int64))


def plain_torch_training(x, y, spec: Dict[str, Any], batch: int, epochs: int, threads: int) -> float:
    """Samples/s of one process training ``spec`` on in-memory tensors: the median epoch after
    the first, the statistic sparkdl's side of the ratio uses (:func:`steady_rate`)."""
    import torch
    import torch.nn.functional as F

    from sparkdl.core.models import build_model
    from sparkdl.training.rank.optimizers import base_optimizer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(spec)
    opt = base_optimizer("adam", model.parameters(), 1e-3, 0.0)  # the one sparkdl's ranks step
    rates = []
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        t0 = time.perf_counter()
        n = 0
        for i in range(0, len(y) - batch + 1, batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += batch
        rates.append(n / (time.perf_counter() - t0))
    return steady_rate(rates)


def plain_torch_scoring(model, x, threads: int, batch: int = 8192) -> int:
    """Class probabilities for every row of ``x`` in one process; returns rows scored."""
    import torch

    torch.set_num_threads(threads)
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            torch.softmax(model(x[i:i + batch]), 1)
    return len(x)
