"""Pipeline parallelism (``train.strategy: pipeline``): consecutive layers on consecutive
ranks, with torch's own schedules (``torch.distributed.pipelining``: GPipe, 1F1B,
interleaved 1F1B).

Every rank of a replica builds the same network from the same seed, keeps the stages its
position holds (:mod:`~sparkdl.training.backends.stages`) and drops the rest, so its
memory holds its stages' parameters, gradients and optimizer state only. Each step cuts
the batch into ``micro_batches``; the first stage reads the features, the last computes
the loss from the labels, and activations and their gradients travel between
neighbouring stages point to point. Replicas average each stage's gradients
(:class:`~sparkdl.training.backends.mesh.MeshBackend`). Validation runs the stages in
turn, point to point, without a schedule (no gradients, any batch size). Each stage's
state is a checkpoint shard of its own; the final model is the stages' state dicts
gathered on rank 0, the whole network under its own names, so scoring cannot tell.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from sparkdl.core.config import TrainConfig
from sparkdl.training.backends.mesh import MeshBackend
from sparkdl.training.backends.stages import keep_only, split_stages

#: Room for a tensor's rank and sizes, sent ahead of an activation between stages.
_HEADER = 8


def _schedule_class(name: str):
    from torch.distributed.pipelining import Schedule1F1B, ScheduleGPipe, ScheduleInterleaved1F1B

    return {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B, "interleaved": ScheduleInterleaved1F1B}[name]


class PipelineBackend(MeshBackend):
    def __init__(self, strategy: str = "pipeline"):
        super().__init__("pipeline")
        self._settings = None
        self._stages: List[Any] = []
        self._modules: Dict[int, Any] = {}
        self._total = 0
        self._schedule = None

    def prepare(self, net, t: TrainConfig, lr: float, device):
        from torch.distributed.pipelining import PipelineStage

        from sparkdl.training.rank.optimizers import local_optimizer

        p = self._settings = t.pipeline_settings
        self.build_mesh(device, p.stages)
        self._total = p.stages * p.chunks
        stages = split_stages(net, self._total)
        mine = [self.position() + k * p.stages for k in range(p.chunks)]
        keep_only(net, stages, mine)
        self._modules = {i: stages[i] for i in mine}
        self._stages = [PipelineStage(stages[i], i, self._total, device, group=self.position_group) for i in mine]
        return net, local_optimizer(net, t.optimizer.name, lr, t.optimizer.weight_decay)

    @property
    def reporting_rank(self) -> int:
        """Replica 0's last stage, which computes the loss (a replica's ranks are consecutive)."""
        return self._settings.stages - 1

    @property
    def reads(self) -> Tuple[bool, bool]:
        """The first stage reads the inputs, the last the labels; a stage between reads neither."""
        return self.first, self.last

    @property
    def first(self) -> bool:
        return 0 in self._modules

    @property
    def last(self) -> bool:
        return self._total - 1 in self._modules

    def forward_backward(self, model, inputs, y, objective, passes: int, scaler, amp_dtype) -> Tuple[Any, int]:
        if self._schedule is None:
            loss = lambda out, target: objective(out.float(), target)  # noqa: E731
            cls = _schedule_class(self._settings.schedule)
            stages = self._stages if self._settings.schedule == "interleaved" else self._stages[0]
            self._schedule = cls(stages, self._settings.micro_batches, loss_fn=loss)
        losses: Optional[List[Any]] = [] if self.last else None
        autocast = (torch.autocast(y.device.type, dtype=amp_dtype) if amp_dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            self._schedule.step(*(inputs if self.first else ()), target=y if self.last else None, losses=losses,
                                return_outputs=False)
        if not self.last:
            return None, 0
        return torch.stack([x.detach() for x in losses]).mean(), len(y)

    def forward(self, model, inputs) -> Any:
        """The stages in turn, point to point: a stage receives its input from the rank
        holding the stage before it and sends its output on."""
        out = None
        for index in sorted(self._modules):
            module = self._modules[index]
            out = module(*inputs) if index == 0 else module(self._receive(index - 1))
            if index < self._total - 1:
                self._send(out, index + 1)
        return out if self.last else None

    def _peer(self, stage: int) -> int:
        return dist.get_global_rank(self.position_group, stage % self._settings.stages)

    def _send(self, tensor, stage: int) -> None:
        tensor = tensor.detach().float().contiguous()
        header = torch.zeros(_HEADER, dtype=torch.int64, device=tensor.device)
        header[0] = tensor.dim()
        header[1:1 + tensor.dim()] = torch.tensor(tensor.shape, dtype=torch.int64)
        dist.send(header, dst=self._peer(stage))
        dist.send(tensor, dst=self._peer(stage))

    def _receive(self, stage: int):
        device = self._device
        header = torch.zeros(_HEADER, dtype=torch.int64, device=device)
        dist.recv(header, src=self._peer(stage))
        shape = header[1:1 + int(header[0])].tolist()
        tensor = torch.empty(shape, dtype=torch.float32, device=device)
        dist.recv(tensor, src=self._peer(stage))
        return tensor

    def checkpoint_shard(self, net, opt) -> Optional[Tuple[int, Dict[str, Any]]]:
        replica, _ = self.data_parallel()
        if replica != 0:  # the replicas hold the same stage
            return None
        p = self._settings
        return self.position(), {"model": net.state_dict(), "optimizer": opt.state_dict(), "stages": p.stages,
                                 "chunks": p.chunks}

    def shard_count(self) -> int:
        return self._settings.stages

    def shard_index(self) -> Optional[int]:
        return self.position()

    def load_shard(self, net, opt, state: Dict[str, Any]) -> None:
        p = self._settings
        if (state["stages"], state["chunks"]) != (p.stages, p.chunks):
            raise ValueError(f"the checkpoint of epoch {state['epoch']} holds a pipeline of {state['stages']} stages "
                             f"x {state['chunks']} chunks, this run has {p.stages} x {p.chunks}: set "
                             "train.pipeline as it was, or start a new run")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])

    def full_state(self, net) -> Dict[str, Any]:
        """The whole network's state on rank 0 (every rank calls it; others get {})."""
        replica, _ = self.data_parallel()
        part = {k: v.detach().cpu() for k, v in net.state_dict().items()} if replica == 0 else {}
        parts = self.gather_object(part, "stages")
        if parts is None:
            return {}
        return {k: v for p in parts for k, v in p.items()}

    def load_state(self, net, opt, model_state, optimizer_state) -> None:
        """A fresh run: replica 0's stages to the other replicas (a resumed one then loads
        its shards)."""
        self.broadcast_parameters(net)
