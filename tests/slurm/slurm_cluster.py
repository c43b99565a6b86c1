"""A real one-node Slurm cluster for the tests: ``munged``, ``slurmctld`` and ``slurmd``
from the distribution's packages, with their configuration, keys, sockets, state and logs
in a directory of the test's own, on ports of their own on loopback. Started by the tier's
fixture and stopped after, whatever happens; clients reach it through ``SLURM_CONF``."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

from tests.e2e.spark_processes import free_port

#: The daemons and clients the tier needs, and the packages that have them (Debian).
PROGRAMS = {"munged": "munge", "slurmctld": "slurmctld", "slurmd": "slurmd", "sbatch": "slurm-client",
            "scontrol": "slurm-client", "srun": "slurm-client"}
#: How long the daemons may take to answer, and a job to finish.
START_TIMEOUT_S = 60.0


class SlurmUnavailable(RuntimeError):
    """Slurm cannot run here: what is missing and how to get it."""


def check_installed() -> None:
    missing = sorted({pkg for prog, pkg in PROGRAMS.items()
                      if shutil.which(prog) is None and not Path("/usr/sbin", prog).exists()})
    if missing:
        raise SlurmUnavailable(f"Slurm is not installed ({' '.join(missing)}): make setup installs it as root "
                               f"(SPARKDL_LAUNCHERS=auto), or apt-get install {' '.join(missing)}")
    if os.geteuid() != 0:
        raise SlurmUnavailable("the Slurm tier runs slurmd, which starts jobs as their users: run it as root")


def _daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    """One node, this machine, named as slurmd knows it; two CPUs' worth of tasks."""

    def __init__(self, root: Path, cpus: int = 2):
        self.root, self.cpus = root, cpus
        self.node = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.munge_socket = root / "munge" / "munge.socket"
        self.env: Dict[str, str] = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._pids: List[Path] = []

    def __enter__(self) -> "SlurmCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "munge").chmod(0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        pid = self.root / "munge" / "munged.pid"
        self._run([_daemon("munged"), "--force", f"--key-file={key}", f"--socket={self.munge_socket}",
                   f"--pid-file={pid}", f"--log-file={self.root / 'log' / 'munged.log'}",
                   f"--seed-file={self.root / 'munge' / 'seed'}"])
        self._pids.append(pid)
        self.conf.write_text(self._config())
        self._run([_daemon("slurmctld"), "-f", str(self.conf), "-i"])  # -i: no state from an earlier cluster
        self._pids.append(self.root / "slurmctld.pid")
        self._run([_daemon("slurmd"), "-f", str(self.conf)])
        self._pids.append(self.root / "slurmd.pid")
        self._wait_idle()

    def _config(self) -> str:
        r = self.root
        return "\n".join([
            "ClusterName=sparkdltests",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={r / 'state'}", f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'slurmctld.pid'}", f"SlurmdPidFile={r / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            # no cgroups, no accounting daemon: processes tracked by their parents, tasks unbound
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=none",
            "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/builtin", "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
            "JobRequeue=1", "ReturnToService=2", "KillWait=5",
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
            f"PartitionName=tests Nodes={self.node} Default=YES MaxTime=INFINITE State=UP",
            ""])

    def _run(self, command: List[str]) -> None:
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=START_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} exited {done.returncode}: {done.stderr.strip()}\n{self.logs()}")

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            state = self.client("sinfo", "-h", "-n", self.node, "-o", "%T", check=False).strip()
            if state == "idle":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {self.node} not idle within {START_TIMEOUT_S:.0f} s (sinfo: {state!r})\n"
                                   f"{self.logs()}")
            time.sleep(0.5)

    def client(self, *args: str, check: bool = True, timeout: float = 60.0) -> str:
        done = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def job(self, job_id: str) -> Dict[str, str]:
        """``scontrol show job``'s fields, e.g. ``JobState`` and ``Restarts``."""
        text = self.client("scontrol", "show", "job", "-o", job_id)
        return dict(field.split("=", 1) for field in text.split() if "=" in field)

    def wait_for(self, job_id: str, states, timeout_s: float, log: Optional[Path] = None) -> Dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if job["JobState"] in states:
                return job
            if time.monotonic() > deadline:
                tail = log.read_text()[-3000:] if log and log.exists() else ""
                raise AssertionError(f"job {job_id} is {job['JobState']} ({job.get('Reason')}), not one of {states}, "
                                     f"after {timeout_s:.0f} s\n{tail}")
            time.sleep(0.5)

    def logs(self) -> str:
        out = []
        for log in sorted((self.root / "log").glob("*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel every job, then stop the daemons (slurmd first); the directory stays for the logs."""
        if self.conf.exists():
            self.client("scancel", "--full", "--user=root", check=False)
        for pid_file in reversed(self._pids):
            try:
                pid = int(pid_file.read_text())
                os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                continue
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        self._pids.clear()
