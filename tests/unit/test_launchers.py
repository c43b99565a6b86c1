"""Launchers other than Spark: each one's environment read into a rank's place, the
command that starts the ranks, and the settings that only some launchers have."""
import sys

import pytest

from sparkdl.core.config import LaunchConfig
from sparkdl.core.errors import ConfigError, LaunchError
from sparkdl.training.launch.process_rank import LauncherRank, launcher_rank, main
from sparkdl.training.launch.processes import check_launcher, default_ranks, event_addresses, launch_command


@pytest.mark.parametrize("launcher, env, expected", [
    ("torchrun", {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "TORCHELASTIC_RESTART_COUNT": "2"},
     LauncherRank(1, 4, 1, 2)),
    ("mpirun", {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1"},
     LauncherRank(3, 4, 1, 0)),
    # a requeued job's driver counts its own attempts: Slurm's requeue count is not a restart of these ranks
    ("srun", {"SLURM_PROCID": "2", "SLURM_NTASKS": "4", "SLURM_LOCALID": "0", "SLURM_RESTART_COUNT": "1"},
     LauncherRank(2, 4, 0, 0)),
])
def test_each_launchers_environment_gives_the_ranks_place(launcher, env, expected):
    assert launcher_rank(launcher, env) == expected


def test_a_rank_not_started_by_its_launcher_says_what_is_missing():
    with pytest.raises(LaunchError, match=r"sparkdl-rank torchrun: WORLD_SIZE, LOCAL_RANK not set.*--launcher torchrun"):
        launcher_rank("torchrun", {"RANK": "0"})
    with pytest.raises(LaunchError, match=r"unknown launcher 'pbs'"):
        launcher_rank("pbs", {})
    assert main(["torchrun"]) == 2  # usage


def test_torchrun_starts_one_rank_per_process_with_its_restarts(tmp_path):
    cmd = launch_command("torchrun", 3, tmp_path, restarts=2)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert {"--standalone", "--nproc-per-node=3", "--max-restarts=2"} <= set(cmd)
    assert cmd[-4:] == ["-m", "sparkdl.training.launch.process_rank", "torchrun", str(tmp_path)]


def test_mpirun_starts_the_ranks_on_this_machine_with_openmpis_traffic_on_loopback(tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 0)
    cmd = launch_command("mpirun", 2, tmp_path)
    assert cmd[:3] == ["mpirun", "--np", "2"] and "--allow-run-as-root" in cmd  # CI runs as root
    mca = {cmd[i + 1]: cmd[i + 2] for i, arg in enumerate(cmd) if arg == "--mca"}
    assert mca == {"btl": "self,tcp", "btl_tcp_if_include": "lo", "oob_tcp_if_include": "lo"}
    assert cmd[-5:] == [sys.executable, "-m", "sparkdl.training.launch.process_rank", "mpirun", str(tmp_path)]
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert "--allow-run-as-root" not in launch_command("mpirun", 2, tmp_path)


def test_srun_starts_the_jobs_tasks_and_ends_the_step_when_one_fails(tmp_path, monkeypatch):
    cmd = launch_command("srun", 4, tmp_path)
    assert cmd[:3] == ["srun", "--ntasks=4", "--kill-on-bad-exit=1"]
    assert cmd[-5:] == [sys.executable, "-m", "sparkdl.training.launch.process_rank", "srun", str(tmp_path)]
    monkeypatch.setenv("SLURM_NTASKS", "6")
    assert default_ranks("srun") == 6  # in a Slurm job: its tasks


@pytest.mark.parametrize("env, expected", [
    ({}, ("0.0.0.0", "thishost")),  # outside a job, srun's tasks may land on another node
    ({"SLURMD_NODENAME": "node07", "SLURM_JOB_NUM_NODES": "4"}, ("0.0.0.0", "node07")),  # the batch step's node
    ({"SLURMD_NODENAME": "node07", "SLURM_JOB_NUM_NODES": "1"}, ("127.0.0.1", "127.0.0.1")),  # all ranks here
])
def test_srun_ranks_reach_the_driver_on_its_node_unless_they_share_it(env, expected, monkeypatch):
    for name in ("SLURMD_NODENAME", "SLURM_JOB_NUM_NODES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("socket.gethostname", lambda: "thishost")
    assert event_addresses("srun", None) == expected
    assert event_addresses("srun", "10.1.2.3") == ("0.0.0.0", "10.1.2.3")  # train.launch.event_host wins
    assert event_addresses("torchrun", None) == ("127.0.0.1", "127.0.0.1")


def test_ray_ranks_reach_the_driver_on_loopback_unless_they_join_a_ray_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert event_addresses("ray", None) == ("127.0.0.1", "127.0.0.1")  # a local Ray cluster of the run's own
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setattr("socket.gethostname", lambda: "thishost")
    assert event_addresses("ray", None) == ("0.0.0.0", "thishost")


def test_restarts_belong_to_a_launcher_that_restarts():
    assert LaunchConfig(launcher="torchrun", launcher_restarts=1).launcher_restarts == 1
    with pytest.raises(ConfigError, match=r"train.launch.launcher_restarts.*spark launcher has none"):
        LaunchConfig(launcher_restarts=1)
    with pytest.raises(ConfigError, match=r"train.launch.launcher_restarts"):
        LaunchConfig(launcher="torchrun", launcher_restarts=-1)


def test_a_launcher_that_is_not_here_is_named_with_how_to_get_it(monkeypatch):
    check_launcher("torchrun")  # torch is installed, so torchrun is
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(LaunchError, match=r"train.launch.launcher is mpirun, but mpirun is not available here: "
                                          r"install OpenMPI \(Debian: apt-get install openmpi-bin"):
        check_launcher("mpirun")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(LaunchError, match=r"ray is not available here: install Ray Train: pip install "
                                          r"'sparkdl-torch\[ray\]'"):
        check_launcher("ray")


def test_a_launcher_does_not_outlive_its_driver():
    """The launcher gets SIGTERM when the driver that started it dies (and stops its ranks)."""
    import os
    import signal
    import subprocess
    import time

    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys\n"
        "from sparkdl.training.launch.processes import _terminated_with_parent\n"
        "child = subprocess.Popen(['sleep', '60'], preexec_fn=_terminated_with_parent)\n"
        "print(child.pid, flush=True)\n"
        "child.wait()\n")], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child)


def _gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped by its new parent counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
