"""Spark's Python worker daemons, read from /proc: the ETL's stages fork their workers from
one daemon per executor that imported nothing heavy, and the training and scoring stages
from one that preloaded torch and Horovod.

The session's warm-up job must fork from the ETL's daemon, so an executor the session
started with holds one plain daemon. Executors started later to replace a killed one
(the recovery tests kill one) ran no warm-up and are left out of that count."""
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from sparkdl.core.config.loading import load_config
from sparkdl.core.session import expected_executors
from sparkdl.core.worker_daemon import PRELOAD_ENV
from sparkdl.workflow import prepare

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Daemon:
    pid: int
    executor: int
    preload: Optional[str]
    has_torch: bool
    executor_id: str = ""
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
            found = re.search(r"executorId=(\w+)", env.get("SPARK_LOG_URL_STDERR", ""))
            out.append(Daemon(pid, parent, env.get(PRELOAD_ENV), torch, found.group(1) if found else "", env))
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
    first = {str(i) for i in range(expected_executors(spark_cluster.sparkContext.master))}
    warmed = [d for d in plain if d.executor_id in first]
    assert warmed, plain
    assert len({d.executor for d in warmed}) == len(warmed), (warmed, _differences(warmed))  # no warm-up daemon


def _differences(daemons: List[Daemon]) -> Dict[str, List[Optional[str]]]:
    """The environment variables that set the daemons apart (what made Spark start each)."""
    keys = set().union(*(d.env for d in daemons))
    return {k: [d.env.get(k) for d in daemons] for k in sorted(keys) if len({d.env.get(k) for d in daemons}) > 1}
