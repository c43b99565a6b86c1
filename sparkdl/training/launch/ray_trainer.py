"""Ranks started by Ray Train (``train.launch.launcher: ray``): a
``ray.train.torch.TorchTrainer`` whose workers, one a rank, run sparkdl's rank loop.

Ray places the workers (CPUs, a GPU each where Ray sees GPUs) and restarts nothing
(``max_failures=0``: the run's own retries resume from its checkpoints). Each worker then
joins the others as under every launcher: the process group TorchTrainer made is left at
once, and sparkdl's own rendezvous (Horovod, or torch.distributed through its guarded
store) joins the ranks, so the loop, checkpoints and events are those of a barrier stage.

The driver joins the Ray cluster that ``RAY_ADDRESS`` names, or starts a local one on
loopback for the run and stops it after. Ray Data users read the same dataset with
:func:`sparkdl.training.ray_datasets.ray_datasets`.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, Optional

from sparkdl.training.launch.process_rank import LauncherRank, run_launched_rank
from sparkdl.training.launch.processes import LauncherRunner

log = logging.getLogger(__name__)


def ray_rank(config: Dict[str, Any]) -> None:
    """TorchTrainer's ``train_loop_per_worker``: this worker as a sparkdl rank."""
    import ray.train
    import torch.distributed as dist

    if dist.is_initialized():  # TorchTrainer's group: sparkdl joins the ranks itself, as under every launcher
        dist.destroy_process_group()
    context = ray.train.get_context()
    me = LauncherRank(context.get_world_rank(), context.get_world_size(), context.get_local_rank())
    run_launched_rank("ray", Path(config["work"]), me)


class RayRunner(LauncherRunner):
    """Runs the ranks as one Ray Train job and waits for it."""

    def __init__(self, ranks: int, work: Path, payload: bytes, env: Optional[Dict[str, str]] = None):
        super().__init__("ray", ranks, work, payload, 0, env)
        self._started_ray = False

    def run(self) -> None:
        import ray

        try:
            import torch
            from ray.train import FailureConfig, RunConfig, ScalingConfig
            from ray.train.torch import TorchConfig, TorchTrainer

            if not ray.is_initialized():
                self._start_ray(ray)
            trainer = TorchTrainer(
                ray_rank, train_loop_config={"work": str(self.work)},
                torch_config=TorchConfig(backend="gloo"),  # left at once (ray_rank): the cheapest to make
                scaling_config=ScalingConfig(num_workers=self.ranks, use_gpu=torch.cuda.is_available()),
                run_config=RunConfig(name="sparkdl", storage_path=str(self.work / "ray"),
                                     failure_config=FailureConfig(max_failures=0)))
            result = trainer.fit()
            if result.error is not None:
                self.error = result.error
        except BaseException as e:  # reported by the watcher
            self.error = e
            self._tail.extend(str(e).splitlines()[-20:])
        finally:
            if self._started_ray:
                ray.shutdown()

    def _start_ray(self, ray) -> None:
        runtime_env = {"env_vars": self.env} if self.env else None
        address = os.environ.get("RAY_ADDRESS")
        if address:
            log.info("joining the Ray cluster at %s", address)
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        else:  # a cluster of this run's own, on loopback
            cores = len(os.sched_getaffinity(0))
            ray.init(num_cpus=max(cores, self.ranks), _node_ip_address="127.0.0.1", include_dashboard=False,
                     runtime_env=runtime_env, log_to_driver=False)
        self._started_ray = True

    def cancel(self) -> None:
        """Stop the ranks: the Ray cluster this run started goes, and with it its workers."""
        import ray

        if self._started_ray and ray.is_initialized():
            ray.shutdown()
