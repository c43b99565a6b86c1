"""Which device a rank trains on, from the resources Spark assigned to its task."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple


def select_device(resources: Dict[str, List[str]], cuda_available: bool, device_count: int,
                  nccl_built: bool, backend: str = "horovod") -> Tuple[str, Optional[str]]:
    """Return (torch device string, note explaining a fallback or None).

    A task that Spark gave a GPU trains on it when torch can see that GPU and the
    ``backend`` can allreduce CUDA tensors (NCCL); otherwise it trains on the CPU over
    Gloo, and the note says why so the user can fix the cluster or the build.
    """
    gpus = resources.get("gpu") or []
    if not gpus:
        return "cpu", None
    addr = gpus[0]
    if len(gpus) > 1:
        note = f"task was assigned {len(gpus)} GPUs {gpus}; one rank uses one, so GPU {addr} is used"
    else:
        note = None
    if not cuda_available:
        return "cpu", (f"Spark assigned GPU {addr} but torch sees no CUDA device "
                       "(CPU build of torch, or no driver); training on CPU with Gloo")
    if not nccl_built:
        fix = ("Rebuild with SPARKDL_HOROVOD_GPU=nccl ./scripts/setup.sh" if backend == "horovod"
               else "Install a CUDA build of torch")
        return "cpu", f"Spark assigned GPU {addr} but {backend} was built without NCCL; training on CPU. {fix}"
    try:
        index = int(addr)
    except ValueError:
        return "cpu", f"GPU address {addr!r} is not a device index; training on CPU"
    if index >= device_count:
        # Executors often see only their GPUs (CUDA_VISIBLE_DEVICES), renumbered from 0.
        index = 0 if device_count == 1 else index % max(device_count, 1)
    return f"cuda:{index}", note


def task_resources() -> Dict[str, List[str]]:
    """Resources Spark assigned to the running task, as {name: addresses}."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return {}
    return {name: list(info.addresses) for name, info in ctx.resources().items()}
