"""Horovod's ring-allreduce over Gloo (CPU) or NCCL (GPU), the design's engine.

Under ``mpirun``, with Horovod built with MPI, MPI joins the ranks and Horovod's MPI
controller runs (its CPU collectives over MPI too). Otherwise the rank-0 task runs
Horovod's rendezvous server for this job's ranks only (see
:mod:`sparkdl.training.backends.rendezvous`) and shares its port with the others
(:mod:`sparkdl.training.launch.exchange`); every task exports the HOROVOD_* variables and calls
``hvd.init()``; once every rank reports that it returned, rank 0 closes the rendezvous. Gradients are
averaged by ``DistributedOptimizer`` (see :mod:`sparkdl.training.rank.optimizers` for the sparse
embedding tables' second optimizer).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Tuple

from sparkdl.core.config import TrainConfig
from sparkdl.training.backends.base import Backend, Peers, optimizer_step
from sparkdl.training.launch.plan import RankSlot

log = logging.getLogger(__name__)

RENDEZVOUS_PORT = "rendezvous_port"


def horovod_env(slot: RankSlot) -> Dict[str, str]:
    """The HOROVOD_* variables ``hvd.init()`` reads for a slot of the plan."""
    return {
        "HOROVOD_HOSTNAME": slot.hostname,
        "HOROVOD_RANK": str(slot.rank),
        "HOROVOD_SIZE": str(slot.size),
        "HOROVOD_LOCAL_RANK": str(slot.local_rank),
        "HOROVOD_LOCAL_SIZE": str(slot.local_size),
        "HOROVOD_CROSS_RANK": str(slot.cross_rank),
        "HOROVOD_CROSS_SIZE": str(slot.cross_size),
    }


class HorovodBackend(Backend):
    name = "horovod"

    def __init__(self, strategy: str = "ddp"):  # Horovod replicates the model: its config rules allow ddp only
        self._server = None

    def gpu_collectives(self) -> bool:
        import horovod.torch as hvd

        return bool(hvd.nccl_built())

    def start(self, peers: Peers, exchange, rendezvous_timeout_s: float, collective_timeout_s: float,
              device: str) -> None:
        import horovod.torch as hvd

        if peers.mpi and hvd.mpi_built():  # mpirun started the ranks: MPI joins them, no rendezvous
            os.environ.update({"HOROVOD_CONTROLLER": "mpi", "HOROVOD_CPU_OPERATIONS": "mpi", **peers.env})
            hvd.init()
            self.note = f"Horovod's MPI controller, hvd.mpi_enabled()={hvd.mpi_enabled()}"
            return
        if peers.mpi:
            self.note = ("started by mpirun, but this Horovod was built without MPI, so its Gloo controller joins "
                         "the ranks (make setup builds it with MPI where OpenMPI's mpicxx is installed)")
        port = None
        if peers.rank == 0:
            from sparkdl.training.backends.rendezvous import GuardedRendezvous

            self._server = GuardedRendezvous(peers.chief_ip, peers.rank_ips)
            self._server.init(peers.hosts, peers.size)
            port = self._server.port
        port = int(exchange.from_chief(RENDEZVOUS_PORT, port, rendezvous_timeout_s))
        # Horovod's own defaults for its knobs (cycle time, fusion): other cycle times did not
        # move the in-Spark step beyond its run-to-run spread (docs/benchmarks.md, training speed).
        env = {"HOROVOD_GLOO_RENDEZVOUS_ADDR": peers.chief_ip,
               "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port),
               "HOROVOD_CONTROLLER": "gloo",
               "HOROVOD_CPU_OPERATIONS": "gloo",
               "HOROVOD_GLOO_TIMEOUT_SECONDS": str(int(rendezvous_timeout_s)),
               **horovod_env(peers.slot), **peers.env}
        if peers.iface:
            env["HOROVOD_GLOO_IFACE"] = peers.iface
        os.environ.update(env)
        hvd.init()
        # Gloo needs the rendezvous only while building its contexts: once every rank's
        # hvd.init() returned, rank 0 stops it.
        exchange.all_arrived("initialized", rendezvous_timeout_s)
        if self._server is not None:
            self._server.stop()

    def stop(self, ok: bool) -> None:
        import horovod.torch as hvd

        try:
            hvd.shutdown()
        finally:
            if self._server is not None:
                self._server.stop()

    def world(self) -> Tuple[int, int]:
        import horovod.torch as hvd

        return hvd.rank(), hvd.size()

    def prepare(self, net, t: TrainConfig, lr: float, device):
        if t.local_sgd is None:
            return net, distributed_optimizer(net, t.optimizer.name, lr, t.optimizer.weight_decay,
                                              t.allreduce.compression, t.allreduce.backward_passes_per_step)
        from sparkdl.core.config.backends import RULES
        from sparkdl.training.backends.local_sgd import HorovodAverager
        from sparkdl.training.rank.optimizers import local_optimizer, split_sparse

        RULES["horovod"].check_tables(t, [n for n, _ in split_sparse(net)[1]])  # a custom model's own tables
        self._local_sgd = HorovodAverager(t.local_sgd, net)
        return net, local_optimizer(net, t.optimizer.name, lr, t.optimizer.weight_decay)

    def step(self, opt, scaler) -> None:
        if self._local_sgd is not None:
            return self._local_step(opt, scaler)
        if scaler:
            opt.synchronize()
            with opt.skip_synchronize():
                scaler.step(opt)
            scaler.update()
        else:
            opt.step()

    def _local_step(self, opt, scaler) -> None:
        """Local SGD: gradients averaged only during the warm-up, then the plain step and
        the schedule's parameter average."""
        import horovod.torch as hvd

        if self._local_sgd.syncing_gradients():
            grads = [p.grad for p in self._local_sgd.params if p.grad is not None]
            if grads:
                hvd.grouped_allreduce_(grads, op=hvd.Average, name="local_sgd.warmup")
        optimizer_step(opt, scaler)
        self._local_sgd.after_step()

    def broadcast_parameters(self, net) -> None:
        import horovod.torch as hvd

        hvd.broadcast_parameters(net.state_dict(), root_rank=0)

    def broadcast_optimizer(self, opt) -> None:
        import horovod.torch as hvd

        for m in getattr(opt, "members", [opt]):
            hvd.broadcast_optimizer_state(m, root_rank=0)

    def broadcast_object(self, obj: Any, name: str) -> Any:
        import horovod.torch as hvd

        return hvd.broadcast_object(obj, root_rank=0, name=name)

    def allreduce_sum(self, values, name: str):
        import horovod.torch as hvd
        import numpy as np
        import torch

        tensor = torch.from_numpy(np.asarray(values, dtype=np.float64))
        return hvd.allreduce(tensor, op=hvd.Sum, name=name).numpy()

    def gather_object(self, obj: Any, name: str) -> Optional[List[Any]]:
        import horovod.torch as hvd

        everyone = hvd.allgather_object(obj, name=name)
        return everyone if hvd.rank() == 0 else None


def distributed_optimizer(model, name: str, lr: float, weight_decay: float, compression: str,
                          backward_passes_per_step: int):
    """Horovod's ``DistributedOptimizer`` over the model's trainable parameters (averaged,
    ``compression`` ``none`` or ``fp16``), or an :class:`OptimizerGroup` of two when some
    embedding tables are sparse. Each wrapper is its own optimizer instance (its own
    state): it is what steps, so it is what checkpoints save and resume restores."""
    import horovod.torch as hvd

    from sparkdl.training.rank.optimizers import local_optimizer

    compressor = hvd.Compression.fp16 if compression == "fp16" else hvd.Compression.none
    return local_optimizer(model, name, lr, weight_decay, wrap=lambda opt, named: hvd.DistributedOptimizer(
        opt, named_parameters=named, compression=compressor, backward_passes_per_step=backward_passes_per_step,
        op=hvd.Average))
