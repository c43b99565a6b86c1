"""The distributed optimizer a rank steps: the configured optimizer under Horovod's
``DistributedOptimizer``, and, when the network has sparse embedding tables, ``SparseAdam``
for those tables under a second one.

Why two: a large table's dense gradient costs the whole table every step, in the
allreduce and again in Adam, which rewrites every row. Measured on 2 Horovod ranks over
Gloo with 26 lookups per row into one table of 1 M x 16, batch 1024 per rank
(``python -m benchmarks --only embedding_grads``): dense 227 ms per step, sparse 36 ms
(6.3x). Sparse gradients go through Horovod's sparse allreduce (an allgather of the
touched rows), and ``SparseAdam`` (lazy Adam) updates only those rows. Below about
100 k rows the dense path is the cheaper one (65 k rows: dense 27 ms, sparse 34 ms).
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List


def base_optimizer(name: str, params, lr: float, weight_decay: float):
    """The configured torch optimizer over ``params``."""
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def sparse_parameters(model) -> set:
    """ids of the trainable weights of ``nn.Embedding(sparse=True)`` modules."""
    from torch import nn

    return {id(p) for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse
            for p in m.parameters() if p.requires_grad}


class OptimizerGroup:
    """Several distributed optimizers stepped as one: what the loop, the schedule, the
    checkpoints and the gradient scaler see (``param_groups`` are the members' own dicts,
    so setting a group's rate reaches the member)."""

    def __init__(self, members: List[Any]):
        self.members = members

    @property
    def param_groups(self) -> List[Dict[str, Any]]:
        return [g for m in self.members for g in m.param_groups]

    def step(self, closure=None):
        for m in self.members:
            m.step()

    def zero_grad(self):
        for m in self.members:
            m.zero_grad()

    def synchronize(self):
        for m in self.members:
            m.synchronize()

    @contextlib.contextmanager
    def skip_synchronize(self):
        with contextlib.ExitStack() as stack:
            for m in self.members:
                stack.enter_context(m.skip_synchronize())
            yield

    def state_dict(self) -> Dict[str, Any]:
        return {"members": [m.state_dict() for m in self.members]}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for m, s in zip(self.members, state["members"], strict=True):
            m.load_state_dict(s)


def distributed_optimizer(model, name: str, lr: float, weight_decay: float, compression: str,
                          backward_passes_per_step: int):
    """Horovod's ``DistributedOptimizer`` over the model's trainable parameters (averaged,
    ``compression`` ``none`` or ``fp16``), or an :class:`OptimizerGroup` of two when some
    embedding tables are sparse. Each wrapper is its own optimizer instance (its own
    state): it is what steps, so it is what checkpoints save and resume restores."""
    import horovod.torch as hvd
    import torch

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    sparse_ids = sparse_parameters(model)
    dense = [(n, p) for n, p in named if id(p) not in sparse_ids]
    sparse = [(n, p) for n, p in named if id(p) in sparse_ids]
    wrap = dict(compression=hvd.Compression.fp16 if compression == "fp16" else hvd.Compression.none,
                backward_passes_per_step=backward_passes_per_step, op=hvd.Average)
    members = []
    if dense or not sparse:
        members.append(hvd.DistributedOptimizer(base_optimizer(name, [p for _, p in dense], lr, weight_decay),
                                                named_parameters=dense, **wrap))
    if sparse:
        members.append(hvd.DistributedOptimizer(torch.optim.SparseAdam([p for _, p in sparse], lr=lr),
                                                named_parameters=sparse, **wrap))
    return members[0] if len(members) == 1 else OptimizerGroup(members)


def broadcast_state(opt, root_rank: int = 0) -> None:
    """Every member's optimizer state from ``root_rank``."""
    import horovod.torch as hvd

    for m in getattr(opt, "members", [opt]):
        hvd.broadcast_optimizer_state(m, root_rank=root_rank)
