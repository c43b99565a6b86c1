"""The two ways ranks exchange gradients: Horovod's ring-allreduce and torch.distributed
(DDP, FSDP's sharded parameters, or a model split across ranks: pipeline stages, tensor
parallel layers). All run in the same barrier stage behind one interface,
:class:`~sparkdl.training.backends.base.Backend`; :func:`backend_named` picks one."""
from __future__ import annotations

import importlib

from sparkdl.core.config.backends import RULES
from sparkdl.training.backends.base import Backend

__all__ = ["Backend", "backend_named"]


def backend_named(name: str, strategy: str = "ddp") -> Backend:
    """A fresh backend object for ``train.backend`` (and ``train.strategy``), built from
    the class its rules name (imported here: Horovod only where it is used)."""
    if name not in RULES:
        raise ValueError(f"train.backend {name!r}: use one of {sorted(RULES)}")
    module, cls = RULES[name].implementation_for(strategy).split(":")
    backend = getattr(importlib.import_module(module), cls)
    return backend(strategy)
