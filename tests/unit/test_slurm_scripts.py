"""The batch script ``sparkdl slurm submit`` writes: the job's shape from the config, a
requeueable job with one output file across requeues, and a driver that launches its
ranks with srun; the config errors that keep a job from queueing only to fail."""
import shlex
import subprocess
import sys

import pytest

from sparkdl.core.config.loading import load_config
from sparkdl.core.errors import ConfigError, LaunchError
from sparkdl.training.launch.slurm import BatchJob, batch_script, submit, write_batch_job

CONFIG = "conf/adult.yaml"


def _sbatch_options(script: str):
    return [line.split(None, 1)[1] for line in script.splitlines() if line.startswith("#SBATCH ")]


def test_the_job_asks_for_the_configs_nodes_tasks_and_gpus(tmp_path):
    overrides = ["train.ranks=4", "train.launch.slurm.nodes=2", "train.launch.slurm.gpus_per_task=1",
                 "train.launch.slurm.partition=gpu", "train.launch.slurm.time_limit=02:00:00",
                 "train.launch.slurm.sbatch=[--account=ml, --exclusive]"]
    script = batch_script(load_config(CONFIG, overrides), CONFIG, str(tmp_path), overrides, "/out/adult-%j.out")
    assert _sbatch_options(script) == [
        "--job-name=sparkdl-adult", "--nodes=2", "--ntasks-per-node=2", "--gpus-per-task=1", "--partition=gpu",
        "--time=02:00:00", "--account=ml", "--exclusive", "--requeue", "--open-mode=append",
        "--output=/out/adult-%j.out"]
    command = shlex.split(script.splitlines()[-1])
    assert command[0] == "exec" and command[1:5] == [sys.executable, "-m", "sparkdl.cli", "train"]
    sets = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    assert sets == ["train.launch.launcher=srun", *overrides]
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)  # a script bash can run


@pytest.mark.parametrize("overrides, key", [
    (["train.ranks=0"], "train.ranks"),
    (["train.ranks=3", "train.launch.slurm.nodes=2"], "train.launch.slurm.nodes"),
])
def test_ranks_that_cannot_be_laid_out_on_the_nodes_name_the_key(overrides, key, tmp_path):
    with pytest.raises(ConfigError, match=rf"'{key}'"):
        batch_script(load_config(CONFIG, overrides), CONFIG, str(tmp_path), overrides, "o")


def test_the_script_is_written_into_the_lake_and_sbatch_missing_is_named(tmp_path, monkeypatch):
    job = write_batch_job(load_config(CONFIG, ["train.ranks=2"]), CONFIG, str(tmp_path), ["train.ranks=2"])
    assert job.script.parent == tmp_path / "slurm" and job.script.stat().st_mode & 0o100
    assert job.output == str(tmp_path / "slurm" / "adult-%j.out") and not list(tmp_path.glob("slurm/*.partial"))
    with pytest.raises(LaunchError, match=r"no-such-sbatch is not found.*slurm-client.*run the script yourself"):
        submit(BatchJob(job.script, job.output), sbatch="no-such-sbatch")
