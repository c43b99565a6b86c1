"""Tensor parallelism (``train.strategy: tensor``): each hidden layer's weight matrix
split across the ranks of a group, over torch's ``DTensor``
(``torch.distributed.tensor.parallel``).

The MLP's linear layers alternate column-wise and row-wise splits (Megatron's MLP block):
a column-split layer computes a slice of its outputs from the whole input, the row-split
layer after it takes that slice and sums its partial outputs across the group, so one
allreduce per pair of layers is all the group exchanges in forward (one more in
backward). With an odd number of linear layers the output layer stays whole on every
rank. The ranks of a group build the same network from the same seed and draw the same
dropout masks; replicas average gradients
(:class:`~sparkdl.training.backends.mesh.MeshBackend`). Checkpoints and the final model
hold whole tensors, gathered on rank 0 through ``torch.distributed.checkpoint``
(:class:`~sparkdl.training.backends.torchdist.TorchBackend`).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from torch import nn

from sparkdl.core.config import TrainConfig
from sparkdl.training.backends.mesh import MeshBackend


def tensor_plan(net, size: int) -> Dict[str, Any]:
    """``parallelize_module``'s plan for the built-in MLP (alone, or after embedding
    tables): module name → its split."""
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    prefix, body = "", net
    if isinstance(getattr(net, "mlp", None), nn.Sequential):
        prefix, body = "mlp.", net.mlp
    if not isinstance(body, nn.Sequential) or any(isinstance(m, nn.Conv2d) for m in body.modules()):
        raise ValueError("train.strategy: tensor splits the linear layers of the built-in MLP (model.kind: mlp); "
                         "for other networks use train.strategy: pipeline or fsdp")
    linears: List[str] = [name for name, m in body.named_children() if isinstance(m, nn.Linear)]
    paired = linears if len(linears) % 2 == 0 else linears[:-1]
    plan: Dict[str, Any] = {}
    for i, name in enumerate(paired):
        layer = body.get_submodule(name)
        if i % 2 == 0:
            if layer.out_features % size:
                raise ValueError(f"train.tensor.size {size} does not divide the width {layer.out_features} of "
                                 f"layer {prefix}{name}: choose model.hidden widths that it divides")
            plan[prefix + name] = ColwiseParallel()
        else:
            plan[prefix + name] = RowwiseParallel()
    if not plan:
        raise ValueError("train.strategy: tensor needs at least one hidden layer (model.hidden)")
    return plan


class TensorBackend(MeshBackend):
    def __init__(self, strategy: str = "tensor"):
        super().__init__("tensor")

    def prepare(self, net, t: TrainConfig, lr: float, device):
        from torch.distributed.tensor.parallel import parallelize_module

        from sparkdl.training.rank.optimizers import local_optimizer

        mesh = self.build_mesh(device, t.tensor_settings.size)
        parallelize_module(net, mesh["position"], tensor_plan(net, t.tensor_settings.size))
        return net, local_optimizer(net, t.optimizer.name, lr, t.optimizer.weight_decay)

    def load_state(self, net, opt, model_state: Optional[Dict[str, Any]],
                   optimizer_state: Optional[Dict[str, Any]]) -> None:
        """Rank 0's checkpoint through ``torch.distributed.checkpoint`` (as FSDP's), then
        replica 0's weights to every replica (a fresh run's differ)."""
        super().load_state(net, opt, model_state, optimizer_state)
        self.broadcast_parameters(net)
