"""End to end through Spark Connect: a server started from pyspark's own
sbin/start-connect-server.sh over local-cluster[2,1,1024], and sparkdl as a thin client
of it (``--remote``), in processes of their own."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.e2e.spark_processes import free_port, spark_env, spark_home, wait_for

REPO = Path(__file__).resolve().parents[2]
TEST_FILE = REPO / "sparkdl" / "datasets" / "adult" / "adult.test.csv.gz"


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server on 127.0.0.1 with two executor JVMs; stopped whatever happens."""
    work = tmp_path_factory.mktemp("connect-server")
    port = free_port()
    env = spark_env(SPARK_LOG_DIR=str(work / "logs"), SPARK_PID_DIR=str(work / "pids"))
    conf = {"spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": str(port),
            "spark.driver.host": "127.0.0.1", "spark.ui.enabled": "false", "spark.executor.memory": "1024m",
            "spark.sql.warehouse.dir": str(work / "warehouse"),
            # what sparkdl's get_spark sets on a cluster it starts, set where this one starts
            "spark.python.daemon.module": "sparkdl.core.worker_daemon",
            # a Connect client cannot pick a stage's daemon: this server's daemons preload torch for all
            "spark.executorEnv.SPARKDL_PRELOAD": "torch,torch._dynamo,horovod.torch",
            "spark.executorEnv.OMP_NUM_THREADS": "1", "spark.executorEnv.MKL_NUM_THREADS": "1"}
    sbin = os.path.join(spark_home(), "sbin")
    subprocess.run([os.path.join(sbin, "start-connect-server.sh"), "--master", "local-cluster[2,1,1024]",
                    *[arg for k, v in conf.items() for arg in ("--conf", f"{k}={v}")]],
                   env=env, check=True, timeout=120, capture_output=True)
    try:
        wait_for("the Spark Connect server's port",
                 lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, 120)
        yield f"sc://127.0.0.1:{port}"
    finally:
        subprocess.run([os.path.join(sbin, "stop-connect-server.sh")], env=env, timeout=120, capture_output=True)


def _sparkdl(*args: str, timeout: int = 900) -> dict:
    out = subprocess.run([sys.executable, "-m", "sparkdl.cli", *args], env=spark_env(), capture_output=True,
                         text=True, timeout=timeout, cwd=str(REPO))
    assert out.returncode == 0, f"sparkdl {' '.join(args)} failed:\n{out.stderr[-4000:]}"
    return {**dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line), "_log": out.stderr}


def test_the_adult_job_through_connect_equals_the_classic_run_and_scores(connect_server, tmp_path):
    epochs = ("--set", "train.epochs=3", "--set", "tracking.mlflow=off")  # MLflow has tests of its own
    remote = _sparkdl("run", "conf/adult.yaml", *epochs, "--lake", str(tmp_path / "lake"), "--remote", connect_server)
    classic = _sparkdl("run", "conf/adult.yaml", *epochs, "--lake", str(tmp_path / "classic"))
    assert "Spark Connect session ready" in remote["_log"] and "Spark Connect" not in classic["_log"]
    # the same data path, partitioning and seeds: the same network, to the last digit printed
    assert float(remote["test_accuracy"]) >= 0.84
    for key in ("test_accuracy", "test_auc", "test_log_loss", "baseline_logistic_regression_accuracy"):
        assert remote[key] == classic[key], key
    # executors reach this machine here, so the events came over the socket, not the spool
    assert "rank 0 started" in remote["_log"] and "spool" not in remote["_log"]
    run = Path(remote["run_path"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["ranks"] == 2 and len(metrics["history"]) == 3 and not (run / "events").exists()

    scored = _sparkdl("score", "--run", str(run), "--input", str(TEST_FILE), "--output", str(tmp_path / "remote"),
                      "--remote", connect_server)
    assert (scored["rows_in"], scored["rows_scored"], scored["rows_quarantined"]) == ("16281", "16281", "0")
    _sparkdl("score", "--run", str(run), "--input", str(TEST_FILE), "--output", str(tmp_path / "local"))
    by_remote, by_classic = (pq.read_table(tmp_path / name).to_pandas() for name in ("remote", "local"))
    key = [c for c in by_remote.columns if c not in ("prediction", "probabilities")]
    by_remote, by_classic = (df.sort_values(key).reset_index(drop=True) for df in (by_remote, by_classic))
    assert len(by_remote) == 16281
    assert (by_remote["prediction"] == by_classic["prediction"]).all()
    assert by_remote["probability"].to_numpy() == pytest.approx(by_classic["probability"].to_numpy(), abs=1e-6)
    accuracy = float((by_remote["prediction"] == by_remote["class"]).mean())
    assert accuracy == pytest.approx(metrics["held_out"]["accuracy"], abs=1e-12)


def test_a_client_executors_cannot_reach_still_sees_progress_and_the_rank_error(connect_server, tmp_path):
    lake = tmp_path / "lake"
    out = subprocess.run([sys.executable, str(REPO / "tests" / "e2e" / "scripts" / "connect_fault.py"),
                          connect_server, str(lake)], env=spark_env(), capture_output=True, text=True, timeout=900,
                         cwd=str(REPO))
    assert out.returncode == 0, out.stderr[-4000:]
    error = json.loads(out.stdout.strip().splitlines()[-1])
    log = out.stderr
    # both ranks fell back to the lake, and what they wrote there reached the client as it happened
    assert log.count("it cannot connect here, so its events come through the lake's spool") == 2
    assert "epoch 1/3: step 114/114 (100%)" in log and "rank 0 epoch epoch=1 " in log
    assert error["rank"] == 1 and error["kind"] == "user"
    assert error["exception"] == "InjectedFault: injected fault: rank 1 epoch 2 step 3"
    assert "in train_rank" in error["traceback"] and "raise InjectedFault(message)" in error["traceback"]
    assert "rank 1 failed: InjectedFault" in log
    # nothing committed, and no spool left behind
    assert not [p for p in (lake / "runs").iterdir() if not p.name.startswith(".")]
    assert not list(lake.glob("runs/*/events"))


def test_the_estimator_fits_scores_and_round_trips_through_connect(connect_server, tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "tests" / "e2e" / "scripts" / "connect_estimator.py"),
                          connect_server, str(tmp_path / "lake"), str(tmp_path / "model")], env=spark_env(),
                         capture_output=True, text=True, timeout=900, cwd=str(REPO))
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["accuracy"] >= 0.85 and result["same"] and result["classes"] == ["<=50K", ">50K"]
    assert {"prediction", "probability", "rawPrediction", "predictedLabel"} <= set(result["columns"])
    assert "launched 2 horovod ranks in one barrier stage" in out.stderr
    assert (tmp_path / "lake" / "runs" / result["run_id"] / "_COMMITTED").is_file()  # the session's lake
