"""The two ways ranks exchange gradients: Horovod's ring-allreduce and torch.distributed
(DDP, or FSDP's sharded parameters). Both run in the same barrier stage behind one
interface, :class:`~sparkdl.training.backends.base.Backend`; :func:`backend_named` picks one."""
from __future__ import annotations

from sparkdl.training.backends.base import Backend

__all__ = ["BACKENDS", "Backend", "backend_named"]


BACKENDS = ("horovod", "torch")


def backend_named(name: str, strategy: str = "ddp") -> Backend:
    """A fresh backend object for ``train.backend`` (and ``train.strategy``)."""
    if name == "horovod":
        from sparkdl.training.backends.horovod import HorovodBackend  # imports Horovod: only where it is used

        return HorovodBackend()
    if name == "torch":
        from sparkdl.training.backends.torchdist import TorchBackend

        return TorchBackend(strategy)
    raise ValueError(f"train.backend {name!r}: use one of {BACKENDS}")
