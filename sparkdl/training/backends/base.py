"""What the launch and the training loop need from a distributed backend.

The launch calls ``start`` (rendezvous and process-group setup, every wait bounded) and
``stop``; the loop calls ``prepare`` (the model it trains and the optimizer that steps
it), ``accumulating``/``step`` (the exchange), the broadcasts and sums (resume and
metrics), and ``full_state`` (a whole state dict, also for sharded models).
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ContextManager, Dict, FrozenSet, List, Optional, Tuple

from sparkdl.core.config import TrainConfig
from sparkdl.training.launch.plan import RankSlot


@dataclass(frozen=True)
class Peers:
    """Where this rank is and how to reach the others, from the launch's host plan."""

    rank: int
    size: int
    local_rank: int
    chief_ip: str
    #: The network interface of this rank's address, or None when it cannot be told.
    iface: Optional[str]
    #: Environment to set before joining (``train.launch.env``).
    env: Dict[str, str]
    #: The plan as ``host:slots,...``, and every rank's address.
    hosts: str
    rank_ips: FrozenSet[str]
    #: This task's place in the plan (host, local and cross ranks).
    slot: RankSlot
    #: Started by ``mpirun``: MPI already joins the ranks (Horovod's MPI controller can use it).
    mpi: bool = False


def layout(rank: int, size: int, group: int) -> Tuple[int, int, int]:
    """(replica, replicas, position within the replica) of ``rank`` when ranks split a
    model in groups of ``group``: a model's ranks are consecutive."""
    return rank // group, size // group, rank % group


def optimizer_step(opt, scaler) -> None:
    """Step ``opt``, through the gradient scaler when there is one (fp16 on GPU)."""
    if scaler:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()


class Backend(ABC):
    """One distributed backend (Horovod, torch.distributed) for one rank."""

    name: str = ""
    #: Whether each rank holds only a shard of the parameters (its forward is a collective).
    sharded: bool = False
    #: The rank whose steps compute the loss, which reports the run's step progress.
    reporting_rank: int = 0
    #: Whether this rank reads the rows' (inputs, labels): a model's every rank needs both
    #: unless ranks split it into stages.
    reads: Tuple[bool, bool] = (True, True)
    #: How the ranks were joined, when there is more to say than the backend's name (shown
    #: in rank 0's first line: Horovod's MPI controller).
    note: str = ""
    #: Local SGD's averager (:mod:`sparkdl.training.backends.local_sgd`) when the job asks for it.
    _local_sgd: Any = None

    @abstractmethod
    def start(self, peers: Peers, exchange, rendezvous_timeout_s: float, collective_timeout_s: float,
              device: str) -> None:
        """Join the other ranks; the rank-0 task hosts the rendezvous and shares its port
        through ``exchange`` (:class:`~sparkdl.training.launch.exchange.Exchange`)."""

    @abstractmethod
    def stop(self, ok: bool) -> None:
        """Leave the group (``ok``: after every rank finished, so nobody is left waiting)."""

    @abstractmethod
    def world(self) -> Tuple[int, int]:
        """(rank, size) as the backend sees them, checked against the plan."""

    def data_parallel(self) -> Tuple[int, int]:
        """(this rank's replica, replicas): which shard of the data it reads, of how many.
        Every rank is a replica of its own unless ranks split one model between them."""
        return self.world()

    def forward_backward(self, model, inputs, y, objective, passes: int, scaler, amp_dtype) -> Tuple[Any, int]:
        """One forward and backward pass over a batch, its loss divided by the ``passes``
        accumulated per step and scaled by the scaler if any: (the batch's mean loss,
        detached, and its rows) on a rank that computes the loss, else (None, 0)."""
        import torch

        if amp_dtype is None:
            out = model(*inputs)
        else:
            with torch.autocast(inputs[0].device.type, dtype=amp_dtype):
                out = model(*inputs)
        loss = objective(out.float(), y)
        scaled = loss / passes if passes > 1 else loss
        (scaler.scale(scaled) if scaler else scaled).backward()
        return loss.detach(), len(y)

    def forward(self, model, inputs) -> Any:
        """The network's outputs for a batch (no gradients), or None on a rank that
        computes no outputs (a pipeline's earlier stages)."""
        return model(*inputs)

    def part(self, net) -> Tuple[int, Optional[Dict[str, Any]]]:
        """(which part of the model this rank holds, its state) where ranks split the model:
        the ranks holding the same part must end with the same state. (0, None): every
        replica holds the whole model, compared through :meth:`full_state`."""
        return 0, None

    def checkpoint_shard(self, net, opt) -> Optional[Tuple[int, Dict[str, Any]]]:
        """(shard index, state) this rank writes beside the epoch's checkpoint, or None.
        Backends whose model is split keep each part's state in a shard of its own."""
        return None

    def shard_count(self) -> int:
        """Shards each checkpoint has (0: rank 0's file holds the whole state)."""
        return 0

    def shard_index(self) -> Optional[int]:
        """The shard this rank resumes from (None: rank 0's file)."""
        return None

    def load_shard(self, net, opt, state: Dict[str, Any]) -> None:
        """This rank's shard of a checkpoint into its model and optimizer."""
        raise NotImplementedError(f"{self.name} writes no checkpoint shards")

    def gpu_collectives(self) -> bool:
        """Whether this backend can exchange CUDA tensors (NCCL)."""
        return False

    @abstractmethod
    def prepare(self, net, t: TrainConfig, lr: float, device) -> Tuple[Any, Any]:
        """(the module the loop calls, the optimizer the loop steps) for ``net``."""

    def accumulating(self, model) -> ContextManager:
        """Context for a backward pass that only accumulates (not the last of
        ``backward_passes_per_step``)."""
        return contextlib.nullcontext()

    def backward(self, model, boundary: bool) -> ContextManager:
        """Context for one backward pass; ``boundary``: the last before a step."""
        return contextlib.nullcontext() if boundary else self.accumulating(model)

    def settle(self, model, inputs) -> None:
        """Called with each epoch's first batch, before its forward pass: a resumed rank
        whose exchange keeps state per gradient bucket settles its buckets here."""

    def end_epoch(self, net) -> None:
        """After an epoch's last step, before validation: every rank holds the same
        model afterwards (local SGD averages here)."""
        if self._local_sgd is not None:
            self._local_sgd.average_now(net)

    @abstractmethod
    def step(self, opt, scaler) -> None:
        """Exchange (when not already done in backward) and step, through the scaler if any."""

    @abstractmethod
    def broadcast_parameters(self, net) -> None:
        """Rank 0's parameters and buffers to every rank."""

    @abstractmethod
    def broadcast_optimizer(self, opt) -> None:
        """Rank 0's optimizer state to every rank."""

    @abstractmethod
    def broadcast_object(self, obj: Any, name: str) -> Any:
        """Rank 0's picklable ``obj`` on every rank."""

    @abstractmethod
    def allreduce_sum(self, values, name: str):
        """The float64 vector ``values`` summed over every rank (numpy)."""

    @abstractmethod
    def gather_object(self, obj: Any, name: str) -> Optional[List[Any]]:
        """Every rank's picklable ``obj`` in rank order, on rank 0 (None on the others)."""

    def rank_state(self, opt) -> Dict[str, Any]:
        """This rank's own state beyond rank 0's model and optimizer (the exchange's error
        feedback and step counts, local SGD's optimizer state): every checkpoint keeps
        every rank's."""
        if self._local_sgd is None:
            return {}
        return {"local_sgd": self._local_sgd.state_dict(), "optimizer": opt.state_dict()}

    def load_rank_state(self, opt, state: Dict[str, Any]) -> None:
        """This rank's part of a checkpoint, after :meth:`load_state`."""
        if "local_sgd" in state and self._local_sgd is not None:
            self._local_sgd.load_state_dict(state["local_sgd"])
            opt.load_state_dict(state["optimizer"])

    def full_state(self, net) -> Dict[str, Any]:
        """The whole model's state dict (every rank calls it: sharded models gather)."""
        return net.state_dict()

    def optimizer_state(self, net, opt) -> Dict[str, Any]:
        """The optimizer's state as a checkpoint keeps it (every rank calls it)."""
        return opt.state_dict()

    def load_state(self, net, opt, model_state: Optional[Dict[str, Any]],
                   optimizer_state: Optional[Dict[str, Any]]) -> None:
        """Rank 0's checkpoint (None on the others) into every rank's model and optimizer."""
        if model_state is not None:
            net.load_state_dict(model_state)
            opt.load_state_dict(optimizer_state)
        self.broadcast_parameters(net)
        self.broadcast_optimizer(opt)
