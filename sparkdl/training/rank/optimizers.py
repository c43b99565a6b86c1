"""The optimizers a rank steps: the configured one, and, when the network has sparse
embedding tables, ``SparseAdam`` for those tables beside it (under Horovod, each under
its own ``DistributedOptimizer``: :mod:`sparkdl.training.backends.horovod`).

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
import logging
from typing import Any, Dict, List

log = logging.getLogger(__name__)


def base_optimizer(name: str, params, lr: float, weight_decay: float):
    """The configured torch optimizer over ``params``, fused (one kernel for every
    parameter: on one CPU thread Adam's step over 60 k parameters takes 0.06 ms instead
    of 0.18, over 4.4 M 2.1 ms instead of 15; ``benchmarks``' backend comparison)."""
    import torch

    params = list(params)
    kinds = {"sgd": (torch.optim.SGD, {"momentum": 0.9}), "adamw": (torch.optim.AdamW, {}),
             "adam": (torch.optim.Adam, {})}
    cls, extra = kinds.get(name, kinds["adam"])
    if len({type(p) for p in params}) > 1:  # tensor parallel: DTensors beside whole tensors, one at a time
        return cls(params, lr=lr, weight_decay=weight_decay, foreach=False, **extra)
    try:
        return cls(params, lr=lr, weight_decay=weight_decay, fused=bool(params), **extra)
    except (RuntimeError, TypeError) as e:  # a device or dtype the fused kernels lack
        log.info("the fused %s is not available here (%s); using the default one", cls.__name__, e)
        return cls(params, lr=lr, weight_decay=weight_decay, **extra)


def sparse_parameters(model) -> set:
    """ids of the trainable weights of ``nn.Embedding(sparse=True)`` and
    ``nn.EmbeddingBag(sparse=True)`` modules (categoricals, bags, sparse vectors)."""
    from torch import nn

    return {id(p) for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and m.sparse
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


def split_sparse(model):
    """The model's trainable (name, parameter) pairs: (dense ones, sparse embedding weights)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    sparse_ids = sparse_parameters(model)
    return [(n, p) for n, p in named if id(p) not in sparse_ids], [(n, p) for n, p in named if id(p) in sparse_ids]


def local_optimizer(model, name: str, lr: float, weight_decay: float, wrap=None):
    """The configured optimizer over the dense parameters, with ``SparseAdam`` over the
    sparse embedding tables beside it (an :class:`OptimizerGroup`) when there are any.
    ``wrap(optimizer, named_parameters)``, when given, wraps each member (Horovod's
    ``DistributedOptimizer``); without it the exchange happens in backward (DDP)."""
    import torch

    dense, sparse = split_sparse(model)
    wrap = wrap or (lambda opt, named: opt)
    members = []
    if dense or not sparse:
        members.append(wrap(base_optimizer(name, [p for _, p in dense], lr, weight_decay), dense))
    if sparse:
        members.append(wrap(torch.optim.SparseAdam([p for _, p in sparse], lr=lr), sparse))
    return members[0] if len(members) == 1 else OptimizerGroup(members)
