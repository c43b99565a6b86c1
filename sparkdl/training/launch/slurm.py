"""A sparkdl run as a Slurm batch job: ``sparkdl slurm submit CONFIG --lake DIR`` writes
a batch script into the lake (``<lake>/slurm/``) and hands it to ``sbatch``.

The job asks for ``train.launch.slurm.nodes`` nodes with ``train.ranks / nodes`` tasks
on each (and ``gpus_per_task`` GPUs per task). Its batch step, which Slurm runs on the
job's first node, is the run's driver: ``sparkdl train --launcher srun``, whose ``srun``
starts one rank per task (:mod:`sparkdl.training.launch.processes`) and reaches them from
that first node. The job is requeueable: when Slurm requeues it (a node failed, the job
was preempted, or ``scontrol requeue``), the batch script runs again and the driver
resumes the run from its latest checkpoint (:mod:`sparkdl.training.resume`). Its output
is appended to one file across requeues.
"""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

from sparkdl.core.config import JobConfig
from sparkdl.core.config.checks import check
from sparkdl.core.errors import LaunchError
from sparkdl.core.lake import utc_now

log = logging.getLogger(__name__)

#: How long ``sbatch`` may take to accept a job.
SBATCH_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class BatchJob:
    """A batch script written into the lake and, once submitted, its Slurm job id."""

    script: Path
    #: The job's output file (``%j``: the job id, which Slurm fills in).
    output: str
    job_id: str = ""


def batch_script(cfg: JobConfig, config_path: str, lake: str, overrides: Sequence[str], output: str) -> str:
    """The batch script that trains ``cfg`` (loaded from ``config_path`` with ``overrides``)
    on its prepared dataset in ``lake``; a ConfigError naming the key when the ranks
    cannot be laid out on the nodes."""
    slurm, ranks = cfg.train.launch.slurm, cfg.train.ranks
    check(bool(ranks), "train.ranks", "is needed for a Slurm job: the ranks across all its nodes "
                                      "(e.g. --set train.ranks=8)")
    check(ranks % slurm.nodes == 0, "train.launch.slurm.nodes",
          f"{slurm.nodes} nodes cannot hold train.ranks={ranks} ranks evenly: make the ranks a multiple of the nodes")
    options = [f"--job-name=sparkdl-{cfg.name}", f"--nodes={slurm.nodes}", f"--ntasks-per-node={ranks // slurm.nodes}"]
    if slurm.gpus_per_task:
        options.append(f"--gpus-per-task={slurm.gpus_per_task}")
    if slurm.partition:
        options.append(f"--partition={slurm.partition}")
    if slurm.time_limit:
        options.append(f"--time={slurm.time_limit}")
    options += [*slurm.sbatch, "--requeue", "--open-mode=append", f"--output={output}"]
    settings = ["train.launch.launcher=srun", *overrides]
    command = [sys.executable, "-m", "sparkdl.cli", "train", str(Path(config_path).resolve()),
               "--lake", str(Path(lake).resolve())]
    for setting in settings:
        command += ["--set", setting]
    return "\n".join([
        "#!/bin/bash",
        f"# sparkdl run of {cfg.name}, written by `sparkdl slurm submit` at {utc_now()}.",
        "# Run again (requeued or resubmitted), it resumes the run from its latest checkpoint.",
        *(f"#SBATCH {shlex.quote(o)}" for o in options),
        "set -euo pipefail",
        'echo "sparkdl: Slurm job ${SLURM_JOB_ID} on ${SLURM_JOB_NODELIST}, requeued ${SLURM_RESTART_COUNT:-0} '
        'times, driver on $(hostname)"',
        "exec " + shlex.join(command),
        "",
    ])


def write_batch_job(cfg: JobConfig, config_path: str, lake: str, overrides: Sequence[str]) -> BatchJob:
    """Write the run's batch script into ``<lake>/slurm/``, whole or not at all."""
    folder = Path(lake).resolve() / "slurm"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = utc_now().replace(":", "").replace("-", "")
    script = folder / f"{cfg.name}-{stamp}.sbatch"
    output = str(folder / f"{cfg.name}-%j.out")
    partial = script.with_name(script.name + ".partial")
    partial.write_text(batch_script(cfg, config_path, lake, overrides, output))
    partial.chmod(0o755)
    os.replace(partial, script)
    return BatchJob(script, output)


def submit(job: BatchJob, sbatch: str = "sbatch") -> BatchJob:
    """Hand ``job`` to ``sbatch``; the job with its Slurm id."""
    if shutil.which(sbatch) is None:
        raise LaunchError(f"{sbatch} is not found: submit from a machine with Slurm's client (Debian: apt-get install "
                          f"slurm-client), or run the script yourself later: {job.script}")
    try:
        done = subprocess.run([sbatch, "--parsable", str(job.script)], capture_output=True, text=True,
                              timeout=SBATCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LaunchError(f"sbatch did not answer within {SBATCH_TIMEOUT_S:.0f} s: is slurmctld reachable "
                          f"(scontrol ping)? The script is {job.script}") from None
    if done.returncode != 0:
        raise LaunchError(f"sbatch refused {job.script}: {done.stderr.strip() or done.stdout.strip()}")
    job_id = done.stdout.strip().split(";")[0]  # "id" or "id;cluster"
    log.info("submitted %s as Slurm job %s; its output: %s", job.script, job_id, job.output.replace("%j", job_id))
    return BatchJob(job.script, job.output.replace("%j", job_id), job_id)


def lines(job: BatchJob) -> List[str]:
    """What ``sparkdl slurm submit`` prints."""
    return [*([f"slurm_job_id={job.job_id}"] if job.job_id else []), f"script={job.script}", f"output={job.output}"]
