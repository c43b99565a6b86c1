"""A rank started by a launcher other than Spark: ``torchrun``, OpenMPI's ``mpirun`` or
Slurm's ``srun`` runs ``sparkdl-rank LAUNCHER WORK`` (or ``python -m
sparkdl.training.launch.process_rank LAUNCHER WORK``) once per rank.

The driver left what every rank runs in ``WORK/launch.pkl`` (the rank function and its
:class:`~sparkdl.training.launch.task.LaunchSettings`); the rank takes its number, the
world's size and its local rank from the launcher's environment, finds the other ranks'
hosts through the driver's event channel, and from there runs exactly as a Spark
barrier task does (:func:`~sparkdl.training.launch.task.run_rank`). Its result goes to
``WORK/result-<rank>.pkl``, written whole or not at all.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional

from sparkdl.core.errors import LaunchError
from sparkdl.training.launch.events import EventClient
from sparkdl.training.launch.exchange import DriverExchange, Exchange
from sparkdl.training.launch.plan import RankSlot, route_address
from sparkdl.training.launch.task import LaunchSettings, Placement, run_rank

#: What the driver leaves in the work directory.
PAYLOAD = "launch.pkl"
#: Each launcher's variables for (rank, world size, local rank), and for the count of
#: times it restarted the ranks under the same driver, if it does (a requeued Slurm job
#: starts its driver again, which counts its own attempts).
LAUNCHER_ENV: Dict[str, tuple] = {
    "torchrun": ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RESTART_COUNT"),
    "mpirun": ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", None),
    "srun": ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", None),
}


@dataclass(frozen=True)
class LauncherRank:
    """This process's place as its launcher gave it."""

    rank: int
    size: int
    local_rank: int
    #: Times the launcher has restarted the ranks so far (torchrun).
    restarts: int = 0


def launcher_rank(launcher: str, environ: Mapping[str, str]) -> LauncherRank:
    """This rank's place from ``launcher``'s environment; an error naming what is missing."""
    if launcher not in LAUNCHER_ENV:
        raise LaunchError(f"sparkdl-rank: unknown launcher {launcher!r}: use one of {sorted(LAUNCHER_ENV)}")
    rank, size, local, restarts = LAUNCHER_ENV[launcher]
    missing = [name for name in (rank, size, local) if name not in environ]
    if missing:
        raise LaunchError(f"sparkdl-rank {launcher}: {', '.join(missing)} not set; this process was not started by "
                          f"{launcher} (sparkdl train --launcher {launcher} starts it)")
    return LauncherRank(int(environ[rank]), int(environ[size]), int(environ[local]),
                        int(environ.get(restarts, 0) or 0) if restarts else 0)


class ProcessPlacement(Placement):
    """A rank its launcher started: its hosts gathered through the driver's event channel."""

    def __init__(self, launcher: str, settings: LaunchSettings, me: LauncherRank, timeout_s: float):
        self.partition, self.size, self.local_rank = me.rank, me.size, me.local_rank
        self.mpi = launcher == "mpirun"
        self.attempt = settings.attempt + me.restarts
        self.address = settings.event_address
        self.timeout_s = timeout_s

    @property
    def _prefix(self) -> str:
        return f"attempt-{self.attempt}/"

    def addresses(self, events: EventClient) -> List[str]:
        host, port = self.address.rsplit(":", 1)
        events.put(f"{self._prefix}host.{self.partition}", route_address(host, int(port)))
        return [events.get_value(f"{self._prefix}host.{r}", self.timeout_s) for r in range(self.size)]

    def exchange(self, events: EventClient, slot: RankSlot) -> Exchange:
        return DriverExchange(events, slot.rank, slot.size, prefix=self._prefix)

    def cpus(self, slot: RankSlot) -> int:
        """The cores the launcher bound this rank to, or else an equal share of the machine's."""
        mine = len(os.sched_getaffinity(0))
        return mine if mine < (os.cpu_count() or mine) else max(1, mine // slot.local_size)

    def resources(self) -> Dict[str, List[str]]:
        """This rank's GPU: its local rank among the machine's, or its own where the
        launcher shows each rank only its own (Slurm's ``--gpus-per-task``)."""
        import torch

        return {"gpu": [str(self.local_rank % torch.cuda.device_count())]} if torch.cuda.is_available() else {}


def result_path(work: Path, rank: int) -> Path:
    return work / f"result-{rank}.pkl"


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: sparkdl-rank LAUNCHER WORK (started by sparkdl train --launcher ...)", file=sys.stderr)
        return 2
    launcher, work = args[0], Path(args[1])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank %(process)d %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    run_launched_rank(launcher, work, launcher_rank(launcher, os.environ))
    return 0


def run_launched_rank(launcher: str, work: Path, me: LauncherRank) -> None:
    """Run the rank ``launcher`` placed at ``me`` on what the driver left in ``work``, and
    leave its result there."""
    import cloudpickle

    fn, settings = cloudpickle.loads((work / PAYLOAD).read_bytes())
    placement = ProcessPlacement(launcher, settings, me, settings.launch.rendezvous_timeout_s)
    rank, result = run_rank(fn, settings, placement)
    out = result_path(work, rank)
    partial = out.with_name(out.name + f".{os.getpid()}.partial")
    partial.write_bytes(cloudpickle.dumps(result))
    os.replace(partial, out)


if __name__ == "__main__":
    sys.exit(main())
