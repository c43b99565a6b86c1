"""Driver side of a launch by a launcher other than Spark (``train.launch.launcher``): the
launcher's command, run as a child process in its own session, in the place of the
barrier stage. It starts ``sparkdl-rank`` once per rank
(:mod:`sparkdl.training.launch.process_rank`); the ranks report to this driver's event
server exactly as barrier tasks do, and leave their results in the work directory.

- ``torchrun``: ``torchrun --standalone --nproc-per-node N`` on this machine; with
  ``train.launch.launcher_restarts`` its agent restarts every rank when one fails, and
  the restarted ranks resume from the run's latest checkpoint.
- ``mpirun``: OpenMPI's ``mpirun --np N`` on this machine; a rank that exits failing
  makes it stop the others, and the run's retries (``train.failure``) resume.
- ``srun``: Slurm's ``srun --ntasks N`` in this Slurm job's allocation (or a new one); a
  rank that exits failing makes it kill the others, and the run's retries resume. A
  requeued batch job runs its driver again, which resumes the run
  (:mod:`sparkdl.training.launch.slurm`).
- ``ray``: a Ray Train job (:mod:`sparkdl.training.launch.ray_trainer`).
"""
from __future__ import annotations

import collections
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from sparkdl.core.errors import FailureKind, LaunchError, TrainingError
from sparkdl.training.launch.process_rank import PAYLOAD, result_path

log = logging.getLogger(__name__)

#: Lines of the launcher's output kept for the error when it fails.
OUTPUT_TAIL_LINES = 40
#: How long a cancelled launcher has to stop its ranks before its process group is killed.
TERMINATE_GRACE_S = 10.0


def default_ranks(launcher: str) -> int:
    """Ranks a launcher starts when ``train.ranks`` is unset: in a Slurm job, its tasks;
    otherwise one a GPU of this machine, or one a core."""
    import torch

    if launcher == "srun" and os.environ.get("SLURM_NTASKS"):
        return int(os.environ["SLURM_NTASKS"])
    return torch.cuda.device_count() if torch.cuda.is_available() else len(os.sched_getaffinity(0))


def event_addresses(launcher: str, event_host: Optional[str]) -> Tuple[str, str]:
    """(address the driver's event server listens on, address ranks reach it at).

    ``train.launch.event_host`` when set; loopback when the ranks are on this machine;
    for ``srun`` in a job of several nodes (or outside any job), this node's name: in a
    batch job the driver runs on the job's first node; for ``ray`` joining the cluster
    ``RAY_ADDRESS`` names, this machine's name."""
    if event_host:
        return "0.0.0.0", event_host
    if launcher == "srun" and not _on_a_one_node_job():
        return "0.0.0.0", os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    if launcher == "ray" and os.environ.get("RAY_ADDRESS"):  # a Ray cluster's workers may be on other machines
        return "0.0.0.0", socket.gethostname()
    return "127.0.0.1", "127.0.0.1"


def _on_a_one_node_job() -> bool:
    """Whether this process runs on the only node of its Slurm job."""
    return bool(os.environ.get("SLURMD_NODENAME")) and os.environ.get("SLURM_JOB_NUM_NODES") == "1"


#: How to get each launcher where it is missing.
INSTALL = {"torchrun": "it comes with torch: reinstall torch in this environment",
           "mpirun": "install OpenMPI (Debian: apt-get install openmpi-bin libopenmpi-dev)",
           "ray": "install Ray Train: pip install 'sparkdl-torch[ray]'",
           "srun": "run in a Slurm job (sbatch, salloc, or sparkdl slurm submit) on a machine with Slurm's client "
                   "(Debian: apt-get install slurm-client)"}


def check_launcher(launcher: str) -> None:
    """A LaunchError naming the setting when ``launcher`` cannot run here, before any work."""
    import importlib.util
    import shutil

    modules = {"torchrun": "torch.distributed.run", "ray": "ray"}
    found = (importlib.util.find_spec(modules[launcher]) is not None if launcher in modules
             else shutil.which(launcher) is not None)
    if not found:
        raise LaunchError(f"train.launch.launcher is {launcher}, but {launcher} is not available here: "
                          f"{INSTALL[launcher]}, or use train.launch.launcher: spark")


def launch_command(launcher: str, ranks: int, work: Path, restarts: int = 0) -> List[str]:
    """The command that starts ``ranks`` ranks of ``sparkdl-rank`` under ``launcher``."""
    rank = ["-m", "sparkdl.training.launch.process_rank", launcher, str(work)]
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                f"--nproc-per-node={ranks}", f"--max-restarts={restarts}", *rank]
    if launcher == "mpirun":
        # OpenMPI's own traffic (its daemons' out-of-band channel, the ranks' MPI messages under
        # Horovod's MPI controller) stays on loopback: the ranks are on this machine
        as_root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
        return ["mpirun", "--np", str(ranks), "--oversubscribe", "--bind-to", "none", *as_root,
                "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo",
                sys.executable, *rank]
    if launcher == "srun":
        # one failing task ends the step (the others are killed): the run's retry resumes
        return ["srun", f"--ntasks={ranks}", "--kill-on-bad-exit=1", sys.executable, *rank]
    raise ValueError(f"train.launch.launcher: no command for {launcher!r}")


def _terminated_with_parent() -> None:
    """In the launcher's process, before it runs: SIGTERM when this driver (the thread that
    started it) dies, so that a killed driver leaves no ranks training (Linux's
    ``PR_SET_PDEATHSIG``); the launcher stops its ranks on SIGTERM."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


class LauncherRunner(threading.Thread):
    """A launcher running the ranks, in the place of the barrier stage: it leaves what every
    rank runs in ``work``, and after it the ranks' results."""

    def __init__(self, launcher: str, ranks: int, work: Path, payload: bytes, restarts: int = 0,
                 env: Optional[Dict[str, str]] = None):
        super().__init__(name=f"sparkdl-{launcher}", daemon=True)
        self.launcher, self.ranks, self.work, self.restarts = launcher, ranks, work, restarts
        work.mkdir(parents=True, exist_ok=True)
        (work / PAYLOAD).write_bytes(payload)
        self.env = dict(env or {})
        self.error: Optional[BaseException] = None
        self._tail: collections.deque = collections.deque(maxlen=OUTPUT_TAIL_LINES)

    def failure(self) -> TrainingError:
        """The error when no rank reported one: the launcher's exit and its last lines."""
        return TrainingError(None, f"{self.error} (its last lines follow)", "\n".join(self._tail),
                             FailureKind.INFRASTRUCTURE)

    def cancel(self) -> None:
        """Stop the ranks, asked first, then forced."""
        raise NotImplementedError

    def results(self) -> List[Any]:
        import cloudpickle

        return [cloudpickle.loads(result_path(self.work, r).read_bytes()) for r in range(self.ranks)]


class ProcessRunner(LauncherRunner):
    """Runs a launcher's command and waits for it; the ranks' results once it exits 0."""

    def __init__(self, launcher: str, ranks: int, work: Path, payload: bytes, restarts: int = 0,
                 env: Optional[Dict[str, str]] = None):
        super().__init__(launcher, ranks, work, payload, restarts, env)
        self.command = launch_command(launcher, ranks, work, restarts)
        self._process: Optional[subprocess.Popen] = None

    def run(self) -> None:
        try:
            self._process = subprocess.Popen(self.command, env={**os.environ, **self.env}, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                             preexec_fn=_terminated_with_parent)
            for line in self._process.stdout:
                self._tail.append(line.rstrip())
                log.debug("%s: %s", self.launcher, line.rstrip())
            code = self._process.wait()
            if code != 0:
                self.error = RuntimeError(f"{self.launcher} exited with code {code}")
        except BaseException as e:  # reported by the watcher
            self.error = e

    def cancel(self) -> None:
        """Stop the launcher and every rank it started (its whole process group): asked
        first, killed after :data:`TERMINATE_GRACE_S`."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
