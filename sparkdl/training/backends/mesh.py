"""Ranks laid out as a 2-D mesh: data-parallel replicas along one axis, the ranks that
split one model between them (pipeline stages, tensor-parallel shards) along the other.

Rank ``r`` is replica ``r // group`` at position ``r % group``
(:func:`~sparkdl.training.backends.base.layout`): a model's ranks are consecutive, so
with the launch's host-major rank order they share a host where they can, and only the
replicas' gradient averages cross hosts (Megatron's placement).
Gradients are averaged across the replicas of each position in one allreduce of a
flattened buffer per step, and a fresh run starts every replica from replica 0's weights.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from sparkdl.training.backends.base import layout
from sparkdl.training.backends.torchdist import TorchBackend, local_part


class MeshBackend(TorchBackend):
    """torch.distributed with a (replica, position) mesh; subclasses split the model."""

    _axes = ("replica", "position")

    def __init__(self, strategy: str):
        super().__init__(strategy)
        self._mesh = None
        self._group = 1

    def build_mesh(self, device, group: int):
        """The mesh over every rank (a collective: every rank calls it at the same point)."""
        from torch.distributed.device_mesh import init_device_mesh

        size = dist.get_world_size()
        self._group = group
        self._mesh = init_device_mesh(device.type, (size // group, group), mesh_dim_names=self._axes)
        return self._mesh

    @property
    def replica_group(self):
        return self._mesh["replica"].get_group()

    @property
    def position_group(self):
        return self._mesh["position"].get_group()

    def data_parallel(self) -> Tuple[int, int]:
        replica, replicas, _ = layout(dist.get_rank(), dist.get_world_size(), self._group)
        return replica, replicas

    def position(self) -> int:
        return layout(dist.get_rank(), dist.get_world_size(), self._group)[2]

    def part(self, net) -> Tuple[int, Optional[Dict[str, Any]]]:
        return self.position(), {k: local_part(v) for k, v in net.state_dict().items()}

    def average_gradients(self, params: List[Any]) -> None:
        """Each gradient averaged across this position's replicas (nothing with one replica)."""
        replicas = dist.get_world_size() // self._group
        grads = [local_part(p.grad) for p in params if p.grad is not None]
        if replicas == 1 or not grads:
            return
        flat = torch._utils._flatten_dense_tensors(grads)
        dist.all_reduce(flat, group=self.replica_group)
        flat /= replicas
        for g, averaged in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
            g.copy_(averaged)

    def broadcast_parameters(self, net) -> None:
        """Replica 0's weights to every replica of the same position."""
        if dist.get_world_size() // self._group == 1:
            return
        source = dist.get_global_rank(self.replica_group, 0)
        for tensor in net.state_dict().values():
            dist.broadcast(local_part(tensor).data, src=source, group=self.replica_group)

    def broadcast_optimizer(self, opt) -> None:
        """Nothing: a fresh optimizer has no state, and a resumed one loads its own."""

    def step(self, opt, scaler) -> None:
        self.average_gradients([p for group in opt.param_groups for p in group["params"]])
        super().step(opt, scaler)
