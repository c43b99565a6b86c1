"""A scheduled job's driver dies mid-training (SIGKILL to its whole process group: the
driver and the executors it started); running the same command again continues the
run under the same id from its last complete checkpoint, with no epoch lost or repeated."""
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 8


def _command(lake: Path):
    return [sys.executable, "-m", "sparkdl.cli", "run", str(REPO / "conf" / "adult.yaml"), "--lake", str(lake),
            "--set", f"train.epochs={EPOCHS}", "--set", "spark.conf.spark.ui.enabled=false",
            "--set", "tracking.mlflow=off", "--no-baseline"]  # neither is what this test is about


def _env():
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    env.pop("SPARK_HOME", None)
    return env


def test_rerunning_after_the_driver_died_resumes_the_same_run(tmp_path):
    lake = tmp_path / "lake"
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(_command(lake), env=_env(), stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    pattern = str(lake / "runs" / ".staging-*" / "checkpoints" / "epoch-0002.pt")
    deadline = time.monotonic() + 600
    while not glob.glob(pattern):
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint of epoch 2 within 600 s"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and everything it started
    first.wait(30)
    staging = Path(glob.glob(pattern)[0]).parents[1]
    run_id = staging.name[len(".staging-"):]

    listed = subprocess.run([sys.executable, "-m", "sparkdl.cli", "runs", "stale", "--lake", str(lake)],
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert f"{run_id}  abandoned " in listed.stdout and "resumable" in listed.stdout  # its driver died

    second = subprocess.run(_command(lake), env=_env(), capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-4000:]
    printed = dict(line.split("=", 1) for line in second.stdout.splitlines() if "=" in line)
    assert printed["run_id"] == run_id  # the same run, not a new one
    metrics = json.loads((lake / "runs" / run_id / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == list(range(1, EPOCHS + 1))  # none lost, none repeated
    assert metrics["attempts"][0]["resumed_from_epoch"] >= 2
    assert "ingest" not in metrics["stages"]  # it trained on its own dataset instead of preparing anew
    assert metrics["held_out"]["accuracy"] >= 0.84
    assert not staging.exists() and not (lake / "runs" / run_id / "resume.json").exists()
    left = subprocess.run([sys.executable, "-m", "sparkdl.cli", "runs", "stale", "--lake", str(lake)],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert "no unfinished runs" in left.stdout
