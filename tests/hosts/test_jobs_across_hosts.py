"""The job across hosts (the cluster of ``conftest.CLUSTER``): a driver host, a master,
two worker hosts with one executor of one core each, a stranger on the same bridge, and
a Spark Connect client on a network the workers cannot route to."""
import json
import re
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.hosts.spark_hosts import REPO, SCRIPTS, parse_outputs, succeeded

TEST_FILE = REPO / "sparkdl" / "datasets" / "adult" / "adult.test.csv.gz"
CONNECT_CONF = {  # what sparkdl's get_spark sets on a cluster it starts, set where the server starts
    "spark.python.daemon.module": "sparkdl.core.worker_daemon",
    "spark.executorEnv.SPARKDL_PRELOAD": "torch,torch._dynamo,horovod.torch",
    "spark.executorEnv.OMP_NUM_THREADS": "1", "spark.executorEnv.MKL_NUM_THREADS": "1",
    "spark.executor.memory": "1g", "spark.executor.cores": "1"}


def _rank_hosts(log: str) -> dict:
    return {int(r): h for r, h in re.findall(r"rank (\d) started on (\S+) ", log)}


@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_the_job_across_hosts_reaches_the_one_host_accuracy_with_each_rank_on_its_host(cluster, runs, backend):
    _, hosts, _ = cluster
    result = runs[backend]
    assert float(result["test_accuracy"]) >= 0.85
    # each rank on its own worker host, at the address Spark knows: worker2's lan address, not
    # the address of its first interface (another network)
    assert sorted(_rank_hosts(result["_log"]).values()) == sorted([hosts["worker1"].ip, hosts["worker2"].ip])
    assert hosts["worker2"].interface("lan") == "eth1" and hosts["worker2"].ip == hosts["worker2"].address("lan")
    run = Path(result["run_path"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["ranks"] == 2 and f"backend {backend}" in result["_log"]
    assert len(metrics["history"]) == 2 and metrics["held_out"]["rows"] == 16281
    assert "accuracy" in metrics["baseline"]["logistic_regression"] and "auc" in metrics["held_out"]
    assert set(metrics["stages"]) == {"session", "ingest", "features", "materialize", "launch", "train",
                                      "write_back", "evaluate", "baseline"}
    assert (run / "_COMMITTED").is_file() and (run / "metrics.png").is_file() and (run / "summary.txt").is_file()
    # not a terminal: progress as plain log lines, each epoch's end among them, and prepare's longer Spark stages
    for epoch in (1, 2):
        assert f"epoch {epoch}/2: step " in result["_log"] and "(100%)" in result["_log"]
    assert "prepare: stage " in result["_log"] and " tasks done" in result["_log"]


def test_scoring_across_hosts_into_a_table_and_from_it(cluster, runs, tmp_path):
    """``sparkdl score`` runs the run's Transformer (``load_run``) on the executors: its
    predictions, written to a table in a Hive metastore (Derby, on the shared disk) by one
    application and read back by the next, score the test split as the run's evaluation did."""
    spark, hosts, _ = cluster
    run = runs["horovod"]["run_path"]
    hive = {"spark.sql.catalogImplementation": "hive", "spark.sql.warehouse.dir": str(tmp_path / "warehouse"),
            "spark.hadoop.javax.jdo.option.ConnectionURL":
                f"jdbc:derby:;databaseName={tmp_path / 'metastore'};create=true",
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={tmp_path}"}
    to_table = succeeded(spark.submit(hosts["driver"], "score.py", "--run", run, "--input", str(TEST_FILE),
                                      "--output-table", "adult_predictions", conf=hive), "scoring into a table")
    assert (to_table["output"], to_table["rows_in"], to_table["rows_scored"], to_table["rows_quarantined"]) == (
        "adult_predictions", "16281", "16281", "0")
    from_table = succeeded(spark.submit(hosts["driver"], "score.py", "--run", run, "--input", "adult_predictions",
                                        "--format", "table", "--output", str(tmp_path / "rescored"), conf=hive),
                           "scoring a table")
    assert from_table["rows_scored"] == "16281"
    preds = pq.read_table(tmp_path / "rescored").to_pandas()
    held_out = json.loads((Path(run) / "metrics.json").read_text())["held_out"]["accuracy"]
    assert float((preds["prediction"] == preds["class"]).mean()) == pytest.approx(held_out, abs=1e-12)
    assert not (REPO / "metastore_db").exists() and not (REPO / "spark-warehouse").exists()


def test_a_stranger_is_refused_by_the_event_channel_and_each_backends_rendezvous(cluster, tmp_path):
    spark, hosts, _ = cluster
    log = tmp_path / "driver.log"
    job = spark.submit_background(hosts["driver"], str(SCRIPTS / "stranger_job.py"), str(tmp_path), log_path=log)
    knocks = {}
    try:
        for backend in ("horovod", "torch"):
            knock = tmp_path / f"knock-{backend}.json"
            deadline = time.monotonic() + 180
            while not knock.exists():
                assert job.poll() is None, f"the job ended before rank 0 was ready:\n{log.read_text()[-4000:]}"
                assert time.monotonic() < deadline, f"rank 0 did not get ready:\n{log.read_text()[-4000:]}"
                time.sleep(0.5)
            knocks[backend] = hosts["stranger"].run([sys.executable, str(SCRIPTS / "knock.py"), str(knock), backend],
                                                    timeout=60)
            (tmp_path / f"knocked-{backend}").touch()
        assert job.wait(timeout=180) == 0, log.read_text()[-4000:]
    finally:
        if job.poll() is None:
            job.kill()
    out, stranger = parse_outputs(log.read_text()), hosts["stranger"].ip
    for backend, guard in (("horovod", "403"), ("torch", "closed")):
        assert parse_outputs(knocks[backend].stdout) == {"events": "closed", "guard": guard}
        assert out[f"{backend}_refused"] == stranger and out[f"{backend}_sum"] == "3.0"  # the job went on
    assert log.read_text().count(f"refused a connection to the event channel from {stranger}") == 2


def test_a_connect_client_the_workers_cannot_reach_gets_events_through_the_spool(cluster, runs):
    spark, hosts, work = cluster
    client = hosts["client"]
    unreachable = hosts["worker1"].run([sys.executable, "-c", "import socket,sys; socket.create_connection(("
                                        f"'{client.ip}', 9), timeout=3)"], timeout=30)
    assert "Network is unreachable" in unreachable.stderr  # no route from the workers to the client
    server = spark.start_connect(hosts["master"], CONNECT_CONF)
    try:
        out = succeeded(spark.sparkdl(client, "train", "conf/adult.yaml", "--lake", str(work / "lake"), "--remote",
                                      f"sc://{server}", "--set", "train.epochs=1", "--set",
                                      "progress.lines_every_s=1",
                                      # the server's JVM may still be starting: on a loaded machine, past 60 s
                                      "--set", "spark.connect_timeout_s=240"), "the job through Spark Connect")
    finally:
        spark.stop_connect(hosts["master"])
    log = out["_log"]
    assert "Spark Connect session ready" in log
    assert "it cannot connect here, so its events come through the lake's spool" in log
    assert re.search(r"epoch 1/1", log), log[-3000:]  # the ranks' progress, read from the spool
    assert (Path(out["run_path"]) / "_COMMITTED").is_file()
