"""MLflow tracking and the run's pyfunc model, with a real MLflow store and server."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed (pip install 'sparkdl-torch[mlflow]')")

from sparkdl.core.columns import PREDICTION, PROBABILITY, SCORE_ERROR
from sparkdl.core.rundir import MLFLOW_FILE
from sparkdl.preparation.examples import resolve_path
from sparkdl.serving.score import score
from tests.e2e.spark_processes import free_port


@pytest.fixture(scope="module")
def logged(adult_run):
    """(tracking URI, MLflow run id, model URI) of the session's Adult run, logged to the lake's own store."""
    info = json.loads((adult_run.path / MLFLOW_FILE).read_text())
    assert info["tracking_uri"] == f"sqlite:///{adult_run.path.parent.parent / 'mlflow' / 'mlflow.db'}"
    mlflow.set_tracking_uri(info["tracking_uri"])
    return info["tracking_uri"], info["run_id"], info["model_uri"]


@pytest.fixture(scope="module")
def raw_rows(adult_config):
    """The Adult test file as pandas reads it: its whole numbers as int64 for the double columns."""
    raw = pd.read_csv(resolve_path(adult_config.data.test)).drop(columns=[adult_config.schema.label])
    assert (raw.dtypes[[c.name for c in adult_config.schema.columns if c.type == "double"]] == "int64").all()
    return raw


def test_the_run_is_in_the_lakes_store_with_params_metrics_and_files(adult_run, logged):
    uri, run_id, _ = logged
    client = mlflow.tracking.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == adult_run.run_id
    assert run.data.params["train.epochs"] == "4" and run.data.params["schema.label"] == "class"
    history = client.get_metric_history(run_id, "val_accuracy")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    by_epoch = {h["epoch"]: h["val_accuracy"] for h in adult_run.metrics.history}
    assert all(m.value == pytest.approx(by_epoch[m.step], abs=1e-5) for m in history)  # as reported: 5 digits
    assert run.data.metrics["best_val_accuracy"] == pytest.approx(adult_run.metrics.validation["accuracy"])
    files = {f.path for f in client.list_artifacts(run_id)}
    assert {"metrics.json", "metrics.png", "summary.txt", "config.yaml"} <= files


def test_pyfunc_on_raw_rows_equals_sparkdl_score(spark_cluster, adult_run, adult_config, logged, raw_rows, tmp_path):
    model = mlflow.pyfunc.load_model(logged[2])
    ours = model.predict(raw_rows)
    score(spark_cluster, adult_run.path, adult_config.data.test, str(tmp_path / "preds"))
    theirs = pq.read_table(tmp_path / "preds").to_pandas()
    assert len(ours) == len(theirs) == 16281 and ours[SCORE_ERROR].isna().all()
    assert (ours[PREDICTION].to_numpy() == theirs[PREDICTION].to_numpy()).all()
    assert ours[PROBABILITY].to_numpy() == pytest.approx(theirs[PROBABILITY].to_numpy(), abs=1e-9)


def test_pyfunc_names_a_bad_value_and_imputes_a_missing_one(logged, raw_rows):
    rows = raw_rows.head(3).copy()
    rows.loc[0, "age"] = np.inf
    rows.loc[1, "age"] = np.nan
    out = mlflow.pyfunc.load_model(logged[2]).predict(rows)
    assert out.loc[0, SCORE_ERROR] == "column 'age': 'inf' is not a finite number" and out.loc[0, PREDICTION] is None
    assert out[SCORE_ERROR].iloc[1:].isna().all() and out[PREDICTION].iloc[1:].isin(["<=50K", ">50K"]).all()


def test_spark_udf_scores_a_dataframe_of_raw_rows(spark_cluster, logged, raw_rows):
    udf = mlflow.pyfunc.spark_udf(spark_cluster, logged[2], env_manager="local")
    head = raw_rows.head(500)
    df = spark_cluster.createDataFrame(head)
    scored = df.withColumn("out", udf(*[df[c] for c in head.columns])).select("out.*").toPandas()
    expected = mlflow.pyfunc.load_model(logged[2]).predict(head)
    assert len(scored) == 500
    assert (scored[PREDICTION].to_numpy() == expected[PREDICTION].to_numpy()).all()
    assert scored[PROBABILITY].to_numpy() == pytest.approx(expected[PROBABILITY].to_numpy(), abs=1e-9)


def test_a_run_logged_to_an_mlflow_server_appears_there(spark_cluster, adult_config, adult_lake, tmp_path):
    from sparkdl.workflow import train

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
         str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=open(tmp_path / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "mlflow server did not answer /health within 120 s"
                time.sleep(0.5)
        lake, manifest = adult_lake
        cfg = adult_config.with_values({"train.epochs": 2, "train.ranks": 2,
                                        "tracking.uri": f"http://127.0.0.1:{port}", "tracking.mlflow": "on",
                                        "tracking.experiment": "served", "tracking.register_as": "adult-income"})
        result = train(cfg, str(lake), spark=spark_cluster, manifest=manifest)
        client = mlflow.tracking.MlflowClient(f"http://127.0.0.1:{port}")
        runs = client.search_runs([client.get_experiment_by_name("served").experiment_id])
        assert [r.info.run_name for r in runs] == [result.run_id] and runs[0].info.status == "FINISHED"
        hist = client.get_metric_history(runs[0].info.run_id, "loss")
        assert len(hist) == 2, (hist, result.metrics.history)
        versions = client.search_model_versions("name='adult-income'")
        assert len(versions) == 1 and versions[0].run_id == runs[0].info.run_id
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_logging_the_model_prints_no_download_bars(adult_run, adult_config, logged, capfd):
    from sparkdl.core.rundir import RunDir
    from sparkdl.tracking.mlflow_run import MlflowRun

    uri, run_id, _ = logged
    capfd.readouterr()
    MlflowRun(mlflow.tracking.MlflowClient(uri), uri, run_id, "0")._log_model(RunDir(adult_run.path), adult_config)
    err = capfd.readouterr().err
    assert "Downloading artifacts" not in err and "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in os.environ


def test_a_dataset_prepared_without_portable_numbers_gets_them_from_its_pipeline(spark_cluster, adult_run,
                                                                                   adult_config, tmp_path):
    """Datasets prepared before ``prepare`` wrote ``portable.json``: the export reads the
    PipelineModel with Spark instead, and gets the numbers ``prepare`` writes now."""
    import shutil

    from sparkdl.core.rundir import PORTABLE_FILE, RunDir
    from sparkdl.preparation.portable import PortableFeatures
    from sparkdl.tracking.pyfunc import portable_features

    older = RunDir(tmp_path / "run")
    shutil.copytree(adult_run.path / "preprocessing", older.preprocessing)
    (older.preprocessing / PORTABLE_FILE).unlink()
    prepared = PortableFeatures.load(adult_run.path / "preprocessing" / PORTABLE_FILE)
    assert portable_features(older, adult_config) == prepared and prepared.width == 108
