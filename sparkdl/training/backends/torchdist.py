"""torch.distributed: ``DistributedDataParallel`` (bucketed allreduce overlapped with
backward), or FSDP (``fully_shard``: parameters, gradients and optimizer state sharded
across ranks, the ZeRO-3 idea, each rank checkpointing its own shards), over Gloo on CPU
and NCCL on GPU. The strategies that split the model itself subclass this one
(:mod:`~sparkdl.training.backends.mesh`).

Rendezvous: the rank-0 task opens a ``TCPStore`` on loopback and a guard on its address
that forwards the job's rank hosts only (:class:`~sparkdl.training.backends.rendezvous.GuardedForwarder`),
and shares the guard's port through the driver's authenticated event channel; the others
wait for it within ``train.launch.rendezvous_timeout_s``, and every collective is bounded
by ``train.launch.progress_timeout_s`` (the process group's timeout).
"""
from __future__ import annotations

import contextlib
import logging
import os
from datetime import timedelta
from typing import Any, Dict, List, Optional, Tuple

from sparkdl.core.config import TrainConfig
from sparkdl.core.config.backends import RULES
from sparkdl.training.backends.base import Backend, Peers, optimizer_step

log = logging.getLogger(__name__)

STORE_PORT = "store_port"
STRATEGIES = ("ddp", "fsdp", "pipeline", "tensor")  # the last two: subclasses (mesh.py)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, strategy: str = "ddp"):
        if strategy not in STRATEGIES:
            raise ValueError(f"train.strategy {strategy!r}: use one of {STRATEGIES}")
        self.strategy = strategy
        self._device = None
        self._store = None
        self._guard = None
        self._compressor = None
        self._settle = False
        self._hosts = ""

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp"

    @property
    def distributed_tensors(self) -> bool:
        """Whether parameters are DTensors (FSDP's shards, tensor-parallel splits), whose
        state is gathered whole and loaded back through ``torch.distributed.checkpoint``."""
        return self.strategy in ("fsdp", "tensor")

    def gpu_collectives(self) -> bool:
        import torch.distributed as dist

        return bool(dist.is_nccl_available())

    def start(self, peers: Peers, exchange, rendezvous_timeout_s: float, collective_timeout_s: float,
              device: str) -> None:
        import torch
        import torch.distributed as dist

        os.environ.update(peers.env)
        self._hosts = peers.hosts
        if peers.iface:  # the NIC that carries this rank's address, as for Horovod
            os.environ.setdefault("GLOO_SOCKET_IFNAME", peers.iface)
        wait = timedelta(seconds=rendezvous_timeout_s)
        if peers.rank == 0:
            from sparkdl.training.backends.rendezvous import GuardedForwarder, loopback_listener

            listener = loopback_listener()
            self._store = dist.TCPStore("127.0.0.1", listener.getsockname()[1], peers.size, is_master=True,
                                        timeout=wait, wait_for_workers=False, master_listen_fd=listener.detach())
            self._guard = GuardedForwarder(peers.chief_ip, peers.rank_ips, self._store.port)
            exchange.from_chief(STORE_PORT, self._guard.port, rendezvous_timeout_s)
        else:
            port = int(exchange.from_chief(STORE_PORT, None, rendezvous_timeout_s))
            self._store = dist.TCPStore(peers.chief_ip, port, peers.size, is_master=False, timeout=wait)
        self._device = torch.device(device)
        cuda = self._device.type == "cuda"
        dist.init_process_group("nccl" if cuda else "gloo", store=self._store, rank=peers.rank,
                                world_size=peers.size, timeout=timedelta(seconds=collective_timeout_s),
                                device_id=self._device if cuda else None)

    def stop(self, ok: bool) -> None:
        import torch.distributed as dist

        try:
            if not dist.is_initialized():
                return
            try:
                if ok:  # a rank leaving while a peer's Gloo threads still talk to it aborts that peer
                    dist.barrier()
            finally:
                dist.destroy_process_group()
                self._store = None
        finally:
            if self._guard is not None:
                self._guard.stop()
                self._guard = None

    def world(self) -> Tuple[int, int]:
        import torch.distributed as dist

        return dist.get_rank(), dist.get_world_size()

    def prepare(self, net, t: TrainConfig, lr: float, device):
        from sparkdl.training.rank.optimizers import base_optimizer, local_optimizer, sparse_parameters, split_sparse

        if self.sharded:
            if sparse_parameters(net):
                raise ValueError("train.strategy: fsdp shards dense parameters only; set "
                                 "train.allreduce.embedding_gradients: dense, or use train.strategy: ddp")
            shard_model(net)
            return net, base_optimizer(t.optimizer.name, [p for p in net.parameters() if p.requires_grad], lr,
                                       t.optimizer.weight_decay)
        RULES["torch"].check_tables(t, [n for n, _ in split_sparse(net)[1]])  # a custom model's own, before DDP
        from torch.nn.parallel import DistributedDataParallel

        from sparkdl.training.backends.compression import compressor

        cuda = device.type == "cuda"
        model = DistributedDataParallel(net, device_ids=[device.index] if cuda else None,
                                        bucket_cap_mb=bucket_cap_mb(net, t, cuda), gradient_as_bucket_view=True)
        self._compressor = compressor(t.allreduce, t.seed)
        if self._compressor is not None:
            self._compressor.register(model)
        if t.local_sgd is not None:
            import torch.distributed as dist

            from sparkdl.training.backends.local_sgd import TorchLocalSgd

            self._local_sgd = TorchLocalSgd(t.local_sgd, net, self._hosts, dist.get_world_size())
        return model, local_optimizer(net, t.optimizer.name, lr, t.optimizer.weight_decay)

    def accumulating(self, model):
        if self.sharded:
            return _no_gradient_sync(model)
        return model.no_sync()

    def backward(self, model, boundary: bool):
        if self._local_sgd is not None and not self._local_sgd.syncing_gradients():
            return model.no_sync()  # a local step: gradients stay on this rank
        return super().backward(model, boundary)

    def settle(self, model, inputs) -> None:
        if self._settle:
            self._settle = False
            self._compressor.settle(model, inputs)

    def step(self, opt, scaler) -> None:
        optimizer_step(opt, scaler)
        if self._local_sgd is not None:
            self._local_sgd.after_step()

    def rank_state(self, opt) -> Dict[str, Any]:
        out = super().rank_state(opt)
        if self._compressor is not None and self._compressor.stateful:
            out["compression"] = self._compressor.state_dict()
        return out

    def load_rank_state(self, opt, state: Dict[str, Any]) -> None:
        super().load_rank_state(opt, state)
        if "compression" in state and self._compressor is not None:
            self._compressor.load_state_dict(state["compression"])
            self._settle = True

    def broadcast_parameters(self, net) -> None:
        import torch.distributed as dist

        for tensor in net.state_dict().values():
            dist.broadcast(tensor.data, src=0)

    def broadcast_optimizer(self, opt) -> None:
        import torch.distributed as dist

        state = self.broadcast_object(opt.state_dict() if dist.get_rank() == 0 else None, "optimizer")
        if dist.get_rank() != 0:
            opt.load_state_dict(state)

    def broadcast_object(self, obj: Any, name: str) -> Any:
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def allreduce_sum(self, values, name: str):
        import numpy as np
        import torch
        import torch.distributed as dist

        tensor = torch.from_numpy(np.asarray(values, dtype=np.float64)).to(self._device)
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def gather_object(self, obj: Any, name: str) -> Optional[List[Any]]:
        import torch.distributed as dist

        out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out

    def checkpoint_shard(self, net, opt) -> Optional[Tuple[int, Dict[str, Any]]]:
        """FSDP: each rank's shard of the parameters and of the optimizer state, as it holds
        them (gathering them whole on rank 0 would need the memory FSDP saves)."""
        if not self.sharded:
            return None
        import torch.distributed as dist

        return dist.get_rank(), {"model": {k: local_part(v).detach() for k, v in net.state_dict().items()},
                                 "optimizer": _map_tensors(opt.state_dict(), local_part),
                                 "world_size": dist.get_world_size()}

    def shard_count(self) -> int:
        if not self.sharded:
            return 0
        import torch.distributed as dist

        return dist.get_world_size()

    def shard_index(self) -> Optional[int]:
        if not self.sharded:
            return None
        import torch.distributed as dist

        return dist.get_rank()

    def load_shard(self, net, opt, state: Dict[str, Any]) -> None:
        import torch
        import torch.distributed as dist

        if state["world_size"] != dist.get_world_size():
            raise ValueError(f"the checkpoint of epoch {state['epoch']} was sharded over {state['world_size']} ranks, "
                             f"this run has {dist.get_world_size()}: set train.ranks as it was, or start a new run")
        with torch.no_grad():
            for name, tensor in net.state_dict().items():
                local_part(tensor).copy_(state["model"][name])
        params = [p for group in opt.param_groups for p in group["params"]]
        saved = state["optimizer"]
        for index, entry in saved["state"].items():
            param = params[int(index)]
            for key, value in entry.items():
                if torch.is_tensor(value) and value.dim() and hasattr(param, "device_mesh"):
                    entry[key] = _like(param, value)
        opt.load_state_dict(saved)

    def full_state(self, net) -> Dict[str, Any]:
        if not self.distributed_tensors:
            return net.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(net, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def optimizer_state(self, net, opt) -> Dict[str, Any]:
        if not self.distributed_tensors:
            return opt.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(net, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_state(self, net, opt, model_state: Optional[Dict[str, Any]],
                   optimizer_state: Optional[Dict[str, Any]]) -> None:
        if not self.distributed_tensors:
            return super().load_state(net, opt, model_state, optimizer_state)
        import torch.distributed as dist
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        # Every rank must take the same path: ask rank 0 whether it has a checkpoint whole
        # (a sharded one, {} here, is loaded shard by shard).
        if not self.broadcast_object(bool(model_state), "has_checkpoint"):
            return
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        set_model_state_dict(net, model_state if dist.get_rank() == 0 else {}, options=options)
        set_optimizer_state_dict(net, opt, optimizer_state if dist.get_rank() == 0 else {}, options=options)


def local_part(tensor):
    """A tensor's part on this rank: a DTensor's local shard, a plain tensor itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _map_tensors(obj, fn):
    """``obj`` (nested dicts and lists) with ``fn`` applied to every tensor in it."""
    import torch

    if torch.is_tensor(obj):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def _like(param, local):
    """``local`` (a shard saved by this rank) as a DTensor placed as ``param`` is."""
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(local.to(local_part(param).device), param.device_mesh, param.placements,
                              run_check=False, shape=param.shape, stride=param.stride())


def bucket_cap_mb(net, t: TrainConfig, cuda: bool) -> float:
    """DDP's bucket size. PowerSGD over Gloo takes one bucket: its hook chains each
    bucket's second allreduce onto the first's completion, and with several buckets in
    flight Gloo's ranks can start those in different orders (a collective mismatch that
    aborts the process)."""
    cap = t.ddp_settings.bucket_cap_mb
    if t.allreduce.compression != "powersgd" or cuda:
        return cap
    model_mb = sum(p.numel() * p.element_size() for p in net.parameters() if p.requires_grad) / 2 ** 20
    if model_mb >= cap:
        log.info("PowerSGD over Gloo: one gradient bucket of %.0f MiB instead of train.ddp.bucket_cap_mb %g",
                 model_mb + 1, cap)
    return max(cap, model_mb + 1)


def shard_model(net) -> None:
    """``fully_shard`` every module that holds parameters of its own, then the whole
    network: each rank keeps 1/size of every parameter, gathered for a layer's forward
    and backward and freed after."""
    from torch.distributed.fsdp import fully_shard

    for module in list(net.modules())[1:]:
        if any(True for _ in module.parameters(recurse=False)):
            fully_shard(module)
    fully_shard(net)


@contextlib.contextmanager
def _no_gradient_sync(model):
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)
