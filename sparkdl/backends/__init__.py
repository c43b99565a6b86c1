"""The two ways ranks exchange gradients: Horovod's ring-allreduce and torch.distributed
(DDP, or FSDP's sharded parameters). Both run in the same barrier stage behind one
interface, :class:`~sparkdl.backends.base.Backend`; ``backend_named`` picks one."""
from sparkdl.backends.base import Backend, backend_named

__all__ = ["Backend", "backend_named"]
