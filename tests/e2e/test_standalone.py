"""End to end on a real standalone Spark cluster (a master and two workers started from
pyspark's own bin/spark-class on loopback), driven with spark-submit exactly as users do."""
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Optional

import pyarrow.parquet as pq
import pytest

from tests.e2e.spark_processes import free_port, spark_env, spark_home, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A master and two 1-core workers on 127.0.0.1; stopped whatever happens."""
    work = tmp_path_factory.mktemp("standalone")
    spark_class = os.path.join(spark_home(), "bin", "spark-class")
    port, ui = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    procs = []

    def start(name, args):
        log = open(work / f"{name}.log", "w")
        procs.append(subprocess.Popen([spark_class, *args], env=spark_env(), stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))

    try:
        start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                         "--webui-port", str(ui)])
        wait_for("the master's web UI", lambda: urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2), 90)
        for i in range(2):
            start(f"worker{i}", ["org.apache.spark.deploy.worker.Worker", master_url, "--host", "127.0.0.1",
                                 "--cores", "1", "--memory", "2g", "--webui-port", str(free_port()),
                                 "--work-dir", str(work / f"work{i}")])

        def two_workers():
            state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2))
            return state.get("aliveworkers", 0) >= 2

        wait_for("two workers to register with the master", two_workers, 90)
        yield master_url, work
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _submit(master: str, script: str, *args: str, timeout: int = 1200, conf: Optional[dict] = None) -> dict:
    conf = {"spark.executor.memory": "1g", "spark.executor.cores": "1", "spark.driver.host": "127.0.0.1",
            "spark.pyspark.python": sys.executable, "spark.ui.enabled": "false", **(conf or {})}
    cmd = [os.path.join(spark_home(), "bin", "spark-submit"), "--master", master,
           *[arg for k, v in conf.items() for arg in ("--conf", f"{k}={v}")], str(REPO / "jobs" / script), *args]
    out = subprocess.run(cmd, env=spark_env(), capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
    assert out.returncode == 0, f"{script} failed:\n{out.stderr[-4000:]}"
    # spark-submit's PythonRunner merges the driver's stderr into its stdout, so the log is in both
    return {**dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line),
            "_log": out.stdout + out.stderr}


def test_submit_etl_train_then_score(standalone, tmp_path):
    master, _ = standalone
    lake = tmp_path / "lake"
    result = _submit(master, "etl_train.py", "conf/adult.yaml", "--lake", str(lake), "--set",
                     "progress.lines_every_s=1")
    run = Path(result["run_path"])
    assert (run / "_COMMITTED").is_file()
    # not a terminal: progress as plain log lines, each epoch's end among them, and prepare's longer Spark stages
    for epoch in (1, 10):
        assert f"epoch {epoch}/10: step " in result["_log"] and "(100%)" in result["_log"]
    assert "prepare: stage " in result["_log"] and " tasks done" in result["_log"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["ranks"] == 2 and len(metrics["history"]) == 10
    assert metrics["held_out"]["rows"] == 16281
    assert metrics["held_out"]["accuracy"] >= 0.85
    assert "accuracy" in metrics["baseline"]["logistic_regression"] and "auc" in metrics["held_out"]
    assert (run / "metrics.png").is_file() and (run / "summary.txt").is_file()
    assert set(metrics["stages"]) == {"session", "ingest", "features", "materialize", "launch", "train",
                                      "write_back", "evaluate", "baseline"}

    test_file = REPO / "sparkdl" / "datasets" / "adult" / "adult.test.csv.gz"
    scored = _submit(master, "score.py", "--run", str(run), "--input", str(test_file),
                     "--output", str(tmp_path / "preds"))
    assert (scored["rows_in"], scored["rows_scored"], scored["rows_quarantined"]) == ("16281", "16281", "0")
    preds = pq.read_table(tmp_path / "preds").to_pandas()
    assert len(preds) == 16281
    acc = float((preds["prediction"] == preds["class"]).mean())
    assert acc == pytest.approx(metrics["held_out"]["accuracy"], abs=1e-12)

    # Tables in a Hive metastore (Derby, on disk): one job writes a predictions table, the
    # next reads it back as its input, in a session of its own.
    hive = {"spark.sql.catalogImplementation": "hive", "spark.sql.warehouse.dir": str(tmp_path / "warehouse"),
            "spark.hadoop.javax.jdo.option.ConnectionURL":
                f"jdbc:derby:;databaseName={tmp_path / 'metastore'};create=true",
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={tmp_path}"}
    to_table = _submit(master, "score.py", "--run", str(run), "--input", str(test_file),
                       "--output-table", "adult_predictions", conf=hive)
    assert (to_table["output"], to_table["rows_scored"]) == ("adult_predictions", "16281")
    from_table = _submit(master, "score.py", "--run", str(run), "--input", "adult_predictions", "--format", "table",
                         "--output", str(tmp_path / "rescored"), conf=hive)
    assert from_table["rows_scored"] == "16281"
    again = pq.read_table(tmp_path / "rescored").to_pandas()
    names = [c for c in preds.columns if c not in ("prediction", "probability", "probabilities")]
    assert (again.sort_values(names + ["probability"])["prediction"].tolist()
            == preds.sort_values(names + ["probability"])["prediction"].tolist())
    assert not (REPO / "metastore_db").exists() and not (REPO / "spark-warehouse").exists()
