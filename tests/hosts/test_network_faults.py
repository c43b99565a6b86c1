"""Faults across the network, each with a bound and nothing lost: a worker host's link cut
for longer than Spark's executor timeout, a worker host killed with a spare up, and the
driver host cut off from the workers during the rendezvous (the cluster of
``conftest.CLUSTER``).

Spark's timeouts are shortened here, in the test's own Spark settings, so that a lost
executor is noticed in seconds rather than minutes; sparkdl's defaults are unchanged.
"""
import json
import time
from pathlib import Path

import pytest

from tests.hosts.conftest import WORKERS
from tests.hosts.spark_hosts import SCRIPTS, parse_outputs

EXECUTOR_TIMEOUT_S = 8
FAST_LOSS = {"spark.network.timeout": f"{EXECUTOR_TIMEOUT_S}s", "spark.executor.heartbeatInterval": "1s",
             "spark.network.timeoutInterval": "1s"}
EPOCHS = 4


@pytest.fixture
def lake(cluster, runs) -> Path:
    """The lake the job tests prepared (and trained in): these tests train on its dataset."""
    return cluster[2] / "lake"


def _wait_for(path: Path, job, log: Path, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert job.poll() is None, f"the job ended first:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no {path.name} within {timeout_s:.0f}s:\n{log.read_text()[-4000:]}"
        time.sleep(0.2)
    return json.loads(path.read_text())


def _paused_job(spark, hosts, lake, shared: Path, *sets: str):
    log = shared / "driver.log"
    args = [str(SCRIPTS / "train_paused.py"), "conf/adult.yaml", str(lake), str(shared), "1", "3",
            "--set", f"train.epochs={EPOCHS}", *[a for s in sets for a in ("--set", s)]]
    job = spark.submit_background(hosts["driver"], *args, log_path=log, conf=FAST_LOSS)
    return job, log


def _finish(job, log: Path, timeout_s: float) -> dict:
    started = time.monotonic()
    try:
        rc = job.wait(timeout=timeout_s)
    finally:
        if job.poll() is None:
            job.kill()
    text = log.read_text()
    assert rc == 0, f"the job failed ({rc}):\n{text[-5000:]}"
    return {**parse_outputs(text), "_log": text, "_s": time.monotonic() - started}


def test_a_cut_link_longer_than_the_executor_timeout_resumes_from_the_checkpoint(cluster, lake, tmp_path):
    spark, hosts, _ = cluster
    committed = set(lake.glob("runs/*/_COMMITTED"))
    job, log = _paused_job(spark, hosts, lake, tmp_path)
    paused = _wait_for(tmp_path / "paused.json", job, log, 240)
    victim = hosts[paused["host"]]
    victim.cut()
    time.sleep(EXECUTOR_TIMEOUT_S + 5)
    victim.restore()
    (tmp_path / "go").touch()
    out = _finish(job, log, 300)
    attempts = json.loads(out["attempts"])
    assert out["epochs"] == ",".join(str(e) for e in range(1, EPOCHS + 1))  # none lost, none repeated
    assert len(attempts) == 2 and attempts[1]["resumed_from_epoch"] == 2
    assert len(set(lake.glob("runs/*/_COMMITTED")) - committed) == 1  # one run id, committed once


def test_a_killed_worker_host_is_replaced_by_the_spare(cluster, lake, tmp_path):
    spark, hosts, _ = cluster
    spark.start_worker(hosts["spare"])
    spark.wait_for_workers([*WORKERS, "spare"])
    job, log = _paused_job(spark, hosts, lake, tmp_path)
    paused = _wait_for(tmp_path / "paused.json", job, log, 240)
    victim = hosts[paused["host"]]
    victim.kill()
    victim.cut()  # the host is gone, not only its processes
    (tmp_path / "go").touch()
    try:
        out = _finish(job, log, 300)
    finally:  # the host comes back for the tests after this one
        victim.restore()
        spark.start_worker(victim)
        spark.wait_for_workers([*WORKERS, "spare"])
    attempts = json.loads(out["attempts"])
    assert out["epochs"] == ",".join(str(e) for e in range(1, EPOCHS + 1))
    assert len(attempts) == 2 and attempts[1]["resumed_from_epoch"] == 2
    survivors = {h for h in ("worker1", "worker2", "spare") if h != paused["host"]}
    assert {h for h in survivors if f"started on {hosts[h].ip} " in out["_log"].split("attempt 2")[-1]} == survivors


def test_the_driver_cut_off_during_the_rendezvous_fails_clearly_and_a_rerun_succeeds(cluster, lake, tmp_path):
    spark, hosts, _ = cluster
    committed = set(lake.glob("runs/*/_COMMITTED"))
    start_timeout_s = 15
    job, log = _paused_job(spark, hosts, lake, tmp_path, f"train.launch.start_timeout_s={start_timeout_s}")
    deadline = time.monotonic() + 240
    while "launched 2 horovod ranks" not in log.read_text():
        assert job.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.1)
    hosts["driver"].cut()  # before the ranks reach the driver for the rendezvous port
    started = time.monotonic()
    try:
        rc = job.wait(timeout=300)
    finally:
        hosts["driver"].restore()
        if job.poll() is None:
            job.kill()
    took, text = time.monotonic() - started, log.read_text()
    # attempt 1 waits start_timeout_s for its ranks; attempt 2 as long for executors to come back
    assert rc == 2 and took < 2 * start_timeout_s + 30, (rc, took)  # a LaunchError: exit status 2
    error = next(line for line in text.splitlines() if line.startswith("sparkdl: "))
    assert "the cluster has 0" in error and "lower train.ranks to 0" not in error
    unreachable = error.split("From this host, the executors on ")[1].split(" do not answer")[0].split(", ")
    assert len(unreachable) >= 2 and set(unreachable) <= {"worker1", "worker2", "spare"}, error  # by name
    assert set(lake.glob("runs/*/_COMMITTED")) == committed  # nothing committed

    rerun = tmp_path / "rerun"
    rerun.mkdir()
    job, log = _paused_job(spark, hosts, lake, rerun, "train.epochs=1")
    out = _finish(job, log, 300)
    assert out["epochs"] == "1" and len(set(lake.glob("runs/*/_COMMITTED")) - committed) == 1
