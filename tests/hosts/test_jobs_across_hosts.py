"""The job across hosts: a driver host, a master, two worker hosts (one executor of one
core each), a stranger on the same bridge, and a Spark Connect client on a network the
workers cannot route to. worker2 has two interfaces, its Spark address on the second.

    driver, stranger, worker1 ── lan (198.18.0.0/24) ── master, worker2
    client ── side (198.19.0.0/24) ── master          worker2 ── backup (198.18.1.0/24)
"""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hosts.spark_hosts import REPO, SparkHosts, parse_outputs

SCRIPTS = Path(__file__).resolve().parent / "scripts"
TEST_FILE = REPO / "sparkdl" / "datasets" / "adult" / "adult.test.csv.gz"
EPOCHS = "train.epochs=2"
CONNECT_CONF = {  # what sparkdl's get_spark sets on a cluster it starts, set where the server starts
    "spark.python.daemon.module": "sparkdl.core.worker_daemon",
    "spark.executorEnv.SPARKDL_PRELOAD": "torch,torch._dynamo,horovod.torch",
    "spark.executorEnv.OMP_NUM_THREADS": "1", "spark.executorEnv.MKL_NUM_THREADS": "1",
    "spark.executor.memory": "1g", "spark.executor.cores": "1"}


@pytest.fixture(scope="module")
def cluster(bed, tmp_path_factory):
    work = tmp_path_factory.mktemp("hosts-jobs")
    hosts = {name: bed.host(name, nets) for name, nets in (
        ("driver", ("lan",)), ("master", ("lan", "side")), ("worker1", ("lan",)),
        ("worker2", ("backup", "lan")), ("stranger", ("lan",)), ("client", ("side",)))}
    spark = SparkHosts(bed, work)
    spark.start_master(hosts["master"])
    for name in ("worker1", "worker2"):
        spark.start_worker(hosts[name])
    spark.wait_for_workers(["worker1", "worker2"])
    return spark, hosts, work


def _ok(out: subprocess.CompletedProcess, what: str) -> dict:
    assert out.returncode == 0, f"{what} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return {**parse_outputs(out.stdout), "_log": out.stdout + out.stderr}


def _rank_hosts(log: str) -> dict:
    return {int(r): h for r, h in re.findall(r"rank (\d) started on (\S+) ", log)}


@pytest.fixture(scope="module")
def runs(cluster):
    """``sparkdl run conf/adult.yaml`` by spark-submit from the driver host, once per backend."""
    spark, hosts, work = cluster
    out = {}
    for backend in ("horovod", "torch"):
        out[backend] = _ok(spark.submit(hosts["driver"], "etl_train.py", "conf/adult.yaml", "--lake",
                                        str(work / "lake"), "--set", EPOCHS, "--set", f"train.backend={backend}"),
                           f"the {backend} job")
    return out


@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_the_job_across_hosts_reaches_the_one_host_accuracy_with_each_rank_on_its_host(cluster, runs, backend):
    _, hosts, _ = cluster
    result = runs[backend]
    assert float(result["test_accuracy"]) >= 0.85
    # each rank on its own worker host, at the address Spark knows: worker2's lan address, not
    # the address of its first interface (another network)
    assert sorted(_rank_hosts(result["_log"]).values()) == sorted([hosts["worker1"].ip, hosts["worker2"].ip])
    assert hosts["worker2"].interface("lan") == "eth1" and hosts["worker2"].ip == hosts["worker2"].address("lan")
    metrics = json.loads((Path(result["run_path"]) / "metrics.json").read_text())
    assert metrics["train"]["ranks"] == 2 and f"backend {backend}" in result["_log"]


def test_scoring_and_the_transformer_across_hosts(cluster, runs):
    spark, hosts, work = cluster
    run = runs["horovod"]["run_path"]
    scored = _ok(spark.submit(hosts["driver"], "score.py", "--run", run, "--input", str(TEST_FILE), "--output",
                              str(work / "scored")), "scoring")
    assert (scored["rows_in"], scored["rows_scored"], scored["rows_quarantined"]) == ("16281", "16281", "0")
    by_transformer = _ok(spark.submit(hosts["driver"], str(SCRIPTS / "transform_run.py"), run, str(TEST_FILE)),
                         "the Transformer")
    held_out = json.loads((Path(run) / "metrics.json").read_text())["held_out"]["accuracy"]
    assert by_transformer["rows"] == "16281"
    assert float(by_transformer["accuracy"]) == pytest.approx(held_out, abs=1e-6)


@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_a_stranger_is_refused_by_the_event_channel_and_the_rendezvous(cluster, backend, tmp_path):
    spark, hosts, _ = cluster
    log = tmp_path / "driver.log"
    job = spark.submit_background(hosts["driver"], str(SCRIPTS / "stranger_job.py"), backend, str(tmp_path),
                                  log_path=log)
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "knock.json").exists():
            assert job.poll() is None, f"the job ended before rank 0 was ready:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"rank 0 did not get ready:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        knocks = hosts["stranger"].run([sys.executable, str(SCRIPTS / "knock.py"), str(tmp_path / "knock.json"),
                                        backend], timeout=60)
        (tmp_path / "knocked").touch()
        assert job.wait(timeout=180) == 0, log.read_text()[-4000:]
    finally:
        if job.poll() is None:
            job.kill()
    out, stranger = parse_outputs(log.read_text()), hosts["stranger"].ip
    assert parse_outputs(knocks.stdout) == {"events": "closed", "guard": "403" if backend == "horovod" else "closed"}
    assert f"refused a connection to the event channel from {stranger}" in log.read_text()
    assert out["refused"] == stranger and out["sum"] == "3.0"  # refused by the guard; the job went on


def test_a_connect_client_the_workers_cannot_reach_gets_events_through_the_spool(cluster, runs):
    spark, hosts, work = cluster
    client = hosts["client"]
    unreachable = hosts["worker1"].run([sys.executable, "-c", "import socket,sys; socket.create_connection(("
                                        f"'{client.ip}', 9), timeout=3)"], timeout=30)
    assert "Network is unreachable" in unreachable.stderr  # no route from the workers to the client
    server = spark.start_connect(hosts["master"], CONNECT_CONF)
    out = _ok(spark.sparkdl(client, "train", "conf/adult.yaml", "--lake", str(work / "lake"), "--remote",
                            f"sc://{server}", "--set", "train.epochs=1", "--set", "progress.lines_every_s=1"),
              "the job through Spark Connect")
    log = out["_log"]
    assert "Spark Connect session ready" in log
    assert "it cannot connect here, so its events come through the lake's spool" in log
    assert re.search(r"epoch 1/1", log), log[-3000:]  # the ranks' progress, read from the spool
    assert (Path(out["run_path"]) / "_COMMITTED").is_file()
