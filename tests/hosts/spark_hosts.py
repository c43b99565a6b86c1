"""Spark's own processes on testbed hosts: a standalone master, workers, a Spark Connect
server (pyspark's ``sbin/spark-daemon.sh`` and ``sbin/start-connect-server.sh``), and
jobs submitted from a driver host with ``spark-submit`` or run as ``sparkdl`` clients.

Every daemon binds and advertises its own host's name and address (``SPARK_LOCAL_IP``,
``SPARK_LOCAL_HOSTNAME``); logs and pid files go under the test's work directory.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from tests.hosts.testbed import Host, Testbed

REPO = Path(__file__).resolve().parents[2]
#: The spark-submit scripts of this tier.
SCRIPTS = Path(__file__).resolve().parent / "scripts"
MASTER_PORT = 7077
MASTER_UI_PORT = 8080
CONNECT_PORT = 15002


def spark_home() -> str:
    import pyspark

    return os.path.dirname(pyspark.__file__)


def parse_outputs(stdout: str) -> Dict[str, str]:
    """The ``key=value`` lines a sparkdl command prints."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line and " " not in line.split("=")[0])


def succeeded(out: subprocess.CompletedProcess, what: str) -> dict:
    """The ``key=value`` lines of a command that must have succeeded (``_log``: its output)."""
    assert out.returncode == 0, f"{what} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return {**parse_outputs(out.stdout), "_log": out.stdout + out.stderr}


class SparkHosts:
    """A standalone Spark cluster spread over the hosts of ``bed``."""

    def __init__(self, bed: Testbed, work: Path):
        self.bed = bed
        self.work = work
        self.master: Optional[Host] = None

    def env(self, host: Host, **extra: str) -> dict:
        """Spark's environment on ``host``: its own name and address, this venv's Python."""
        home = self.work / host.name
        for sub in ("logs", "pids", "work"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYSPARK_GATEWAY_PORT", "SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_IP")}
        env.update(SPARK_HOME=spark_home(), PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                   SPARK_LOCAL_IP=host.ip, SPARK_LOCAL_HOSTNAME=host.name, SPARK_IDENT_STRING=host.name,
                   SPARK_LOG_DIR=str(home / "logs"), SPARK_PID_DIR=str(home / "pids"),
                   SPARK_WORKER_DIR=str(home / "work"), PYTHONPATH=str(REPO), **extra)
        return env

    @property
    def master_url(self) -> str:
        return f"spark://{self.master.name}:{MASTER_PORT}"

    def _daemon(self, host: Host, cls: str, *args: str) -> None:
        out = host.run([os.path.join(spark_home(), "sbin", "spark-daemon.sh"), "start", cls, "1", *args],
                       timeout=60, env=self.env(host))
        if out.returncode != 0:
            raise RuntimeError(f"{cls} did not start on {host.name}: {out.stdout[-2000:]}{out.stderr[-2000:]}")

    def start_master(self, host: Host) -> str:
        self.master = host
        self._daemon(host, "org.apache.spark.deploy.master.Master", "--host", host.name, "--port", str(MASTER_PORT),
                     "--webui-port", str(MASTER_UI_PORT))
        return self.master_url

    def start_worker(self, host: Host, cores: int = 1, memory: str = "2g") -> None:
        self._daemon(host, "org.apache.spark.deploy.worker.Worker", "--host", host.name, "--cores", str(cores),
                     "--memory", memory, "--webui-port", "8081", self.master_url)

    def master_state(self) -> dict:
        """The master's JSON status, read from the master host (the test process has no
        address on the bridges)."""
        script = (f"import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
                  f"'http://{self.master.ip}:{MASTER_UI_PORT}/json/', timeout=3).read().decode())")
        out = self.master.run([sys.executable, "-c", script], timeout=20)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def alive_workers(self) -> List[str]:
        return sorted(w["host"] for w in self.master_state().get("workers", []) if w.get("state") == "ALIVE")

    def wait_for_workers(self, hosts: List[str], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if set(hosts) <= set(self.alive_workers()):
                return
            time.sleep(1)
        raise TimeoutError(f"workers {hosts} did not register with the master within {timeout_s:.0f}s "
                           f"(alive: {self.alive_workers()}); logs in {self.work}")

    def start_connect(self, host: Host, conf: Dict[str, str]) -> str:
        """A Spark Connect server on ``host`` (listening on all of its addresses), a driver
        of this cluster; returns the address a client on ``host``'s other networks uses."""
        settings = {"spark.connect.grpc.binding.address": "0.0.0.0",
                    "spark.connect.grpc.binding.port": str(CONNECT_PORT), "spark.driver.host": host.name,
                    "spark.ui.enabled": "false", **conf}
        out = host.run([os.path.join(spark_home(), "sbin", "start-connect-server.sh"), "--master", self.master_url,
                        *[a for k, v in settings.items() for a in ("--conf", f"{k}={v}")]],
                       timeout=120, env=self.env(host))
        if out.returncode != 0:
            raise RuntimeError(f"the Connect server did not start on {host.name}: {out.stdout[-2000:]}")
        return f"{host.name}:{CONNECT_PORT}"

    def _submit_command(self, host: Host, script: str, args, conf: Optional[Dict[str, str]]) -> List[str]:
        settings = {"spark.executor.memory": "1g", "spark.executor.cores": "1", "spark.driver.host": host.name,
                    "spark.driver.bindAddress": host.ip, "spark.pyspark.python": sys.executable,
                    "spark.ui.enabled": "false", **(conf or {})}
        path = REPO / "jobs" / script if "/" not in script else Path(script)
        return [os.path.join(spark_home(), "bin", "spark-submit"), "--master", self.master_url,
                *[a for k, v in settings.items() for a in ("--conf", f"{k}={v}")], str(path), *args]

    def stop_connect(self, host: Host) -> None:
        """Stop the Connect server on ``host`` (it holds every worker's cores while it lives)."""
        host.run([os.path.join(spark_home(), "sbin", "stop-connect-server.sh")], timeout=120, env=self.env(host))

    def submit(self, host: Host, script: str, *args: str, conf: Optional[Dict[str, str]] = None,
               timeout: float = 900) -> subprocess.CompletedProcess:
        """``spark-submit`` of ``script`` (a name in ``jobs/``, or a path) from ``host``
        (the driver host), to completion."""
        return host.run(self._submit_command(host, script, args, conf), timeout=timeout, env=self.env(host),
                        cwd=str(REPO))

    def submit_background(self, host: Host, script: str, *args: str, log_path: Path,
                          conf: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        """As :meth:`submit`, running on while the test acts; its output goes to ``log_path``."""
        return host.popen(self._submit_command(host, script, args, conf), env=self.env(host), log_path=log_path,
                          cwd=str(REPO))

    def sparkdl(self, host: Host, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """The ``sparkdl`` command on ``host`` (a Connect client passes ``--remote``)."""
        return host.run([sys.executable, "-m", "sparkdl.cli", *args], timeout=timeout, env=self.env(host),
                        cwd=str(REPO))
