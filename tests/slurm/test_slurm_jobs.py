"""``sparkdl slurm submit`` on a real Slurm cluster: the Adult job, on the dataset the
session's ``prepare`` made, trains as a batch job whose 2 ranks ``srun`` starts. Requeued
mid-run (as a node failure or preemption requeues a job), the job runs its driver again,
which resumes the run from its latest checkpoint; the run is committed as a Spark launch
commits it, with MLflow, and ``sparkdl score``'s job scores it."""
import glob
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from sparkdl.serving.score import score

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "conf" / "adult.yaml"


def _sparkdl(env, *args, timeout=600):
    done = subprocess.run([sys.executable, "-m", "sparkdl.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"sparkdl {args[0]} exited {done.returncode}:\n{done.stderr[-4000:]}"
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def test_a_requeued_job_resumes_from_its_checkpoint_and_commits_a_run_that_scores(slurm, spark_cluster, adult_config,
                                                                                   adult_lake, tmp_path):
    env = {**slurm.env, "PYSPARK_PYTHON": sys.executable}
    env.pop("SPARK_HOME", None)
    lake = tmp_path / "lake"  # a lake of its own, holding the prepared dataset
    shutil.copytree(adult_lake[0] / "datasets", lake / "datasets")
    submitted = _sparkdl(env, "slurm", "submit", str(CONFIG), "--lake", str(lake), "--set", "train.epochs=4",
                         "--set", "train.ranks=2", "--set", "progress.lines_every_s=1")
    job_id, output = submitted["slurm_job_id"], Path(submitted["output"])
    assert Path(submitted["script"]).parent == lake / "slurm"

    checkpoint = str(lake / "runs" / ".staging-*" / "checkpoints" / "epoch-0002.pt")
    deadline = time.monotonic() + 600
    while not glob.glob(checkpoint):
        state = slurm.job(job_id)["JobState"]
        assert state in ("PENDING", "RUNNING"), f"job {job_id} {state}:\n{output.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no checkpoint of epoch 2 within 600 s:\n{output.read_text()[-3000:]}"
        time.sleep(0.2)
    slurm.client("scontrol", "requeue", job_id)  # Slurm kills the driver and its ranks, and queues the job again
    slurm.wait_for(job_id, ("PENDING",), 60, output)
    slurm.client("scontrol", "update", f"jobid={job_id}", "StartTime=now")  # a requeued job waits a while first
    job = slurm.wait_for(job_id, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 600, output)
    log = output.read_text()
    assert job["JobState"] == "COMPLETED" and job["Restarts"] == "1", log[-4000:]
    assert "requeued 0 times" in log and "requeued 1 times" in log  # one output file across both

    run_id = dict(line.split("=", 1) for line in log.splitlines() if line.startswith("run_id="))["run_id"]
    run = lake / "runs" / run_id
    metrics = json.loads((run / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4]  # none lost, none repeated
    assert metrics["attempts"][0]["resumed_from_epoch"] >= 2 and metrics["train"]["ranks"] == 2
    assert "launched 2 horovod ranks with srun" in log
    assert json.loads((run / "mlflow.json").read_text())["run_id"]
    assert "starting Spark" not in log  # the model's preprocessing for MLflow came as numbers from prepare

    score(spark_cluster, run, adult_config.data.test, str(tmp_path / "preds"))
    preds = pq.read_table(tmp_path / "preds", columns=["class", "prediction"]).to_pandas()
    assert len(preds) == 16281
    assert (preds["class"].str.rstrip(".") == preds["prediction"]).mean() >= 0.85  # test accuracy
