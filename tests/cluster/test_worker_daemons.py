"""Spark's Python worker daemons, read from /proc: the ETL's stages fork their workers from
one daemon per executor that imported nothing heavy, and the training and scoring stages
from one that preloaded torch and Horovod.

Spark keeps a daemon per executor and environment. DataFrame jobs (the ETL's, and the
session's warm-up, which must not start a daemon of its own) share one environment, marked
by SPARK_SIMPLIFIED_TRACEBACK, which Spark sets for their workers only; an RDD job (Spark
ML's metadata writer, when the estimator tests save a pipeline) has another, and so a
plain daemon of its own, which the count leaves out."""
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from sparkdl.core.config.loading import load_config
from sparkdl.core.worker_daemon import PRELOAD_ENV
from sparkdl.workflow import prepare

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Daemon:
    pid: int
    executor: int
    preload: Optional[str]
    has_torch: bool
    env: Dict[str, str] = field(default_factory=dict, repr=False)


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def daemons_of(app_id: str) -> List[Daemon]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"sparkdl.core.worker_daemon" not in cmd:
                continue
            parent = _parent(pid)
            if b"sparkdl.core.worker_daemon" in Path(f"/proc/{parent}/cmdline").read_bytes():
                continue  # a worker forked from a daemon
            env = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().decode(
                errors="replace").split("\0") if "=" in item)
            if app_id not in env.get("SPARK_LOG_URL_STDERR", ""):
                continue  # another application's executor
            torch = "libtorch" in Path(f"/proc/{pid}/maps").read_text()
            out.append(Daemon(pid, parent, env.get(PRELOAD_ENV), torch, env))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # gone while read
    return out


def test_etl_daemons_import_no_torch_and_model_daemons_do(spark_cluster, adult_run, tmp_path):
    cfg = load_config(REPO / "conf" / "synthetic.yaml", ["data.options.rows=2000"])
    prepare(cfg, str(tmp_path / "lake"), spark=spark_cluster)  # an ETL stage after a training one
    daemons = daemons_of(spark_cluster.sparkContext.applicationId)
    plain = [d for d in daemons if not d.preload]
    model = [d for d in daemons if d.preload]
    assert plain and model, daemons
    assert not any(d.has_torch for d in plain), plain
    assert all(d.has_torch for d in model), model
    frames = [d for d in plain if d.env.get("SPARK_SIMPLIFIED_TRACEBACK")]
    assert frames, plain
    assert len({d.executor for d in frames}) == len(frames), (frames, _differences(frames))  # no warm-up daemon


def _differences(daemons: List[Daemon]) -> Dict[str, List[Optional[str]]]:
    """The environment variables that set the daemons apart (what made Spark start each)."""
    keys = set().union(*(d.env for d in daemons))
    return {k: [d.env.get(k) for d in daemons] for k in sorted(keys) if len({d.env.get(k) for d in daemons}) > 1}
