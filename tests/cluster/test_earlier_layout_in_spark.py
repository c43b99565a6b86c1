"""sparkdl 0.2's run (tests/fixtures/layout-0.2) in Spark after the move to
sub-packages: its Transformer scores as it did, and a copy of it cut off after its
first epoch resumes from that checkpoint under its own id."""
import json
import shutil

import numpy as np
import pandas as pd
from layout_fixture import FIXTURE, RUN_ID, copy_lake

from sparkdl.core.config.loading import load_config
from sparkdl.core.lake import COMMIT_MARKER, STAGING_PREFIX
from sparkdl.serving.transformer import load_run
from sparkdl.workflow import run_job


def test_its_run_scores_in_spark_as_its_mlflow_model_did(spark_cluster, tmp_path):
    lake = copy_lake(tmp_path / "lake")
    rows = pd.read_csv(FIXTURE / "rows.csv")
    before = pd.read_csv(FIXTURE / "predictions.csv")
    scored = load_run(str(lake / "runs" / RUN_ID)).transform(spark_cluster.createDataFrame(rows)).toPandas()
    assert list(scored["prediction"]) == list(before["prediction"])
    assert np.allclose(scored["probability"], before["probability"], atol=1e-5)


def test_its_interrupted_run_resumes_from_its_checkpoint(spark_cluster, tmp_path):
    lake = copy_lake(tmp_path / "lake")
    committed = lake / "runs" / RUN_ID
    staging = lake / "runs" / f"{STAGING_PREFIX}{RUN_ID}"
    committed.rename(staging)  # as a driver that died after epoch 1 left it
    (staging / COMMIT_MARKER).unlink()
    (staging / "checkpoints" / "epoch-0002.pt").unlink()
    shutil.rmtree(staging / "model")
    info = json.loads((FIXTURE / "resume.json").read_text())
    info["dataset"] = info["dataset"].replace("/tmp/fixture/lake", str(lake))
    (staging / "resume.json").write_text(json.dumps(info))

    cfg = load_config(FIXTURE / "job.yaml", ["tracking.mlflow=\"off\""])
    result = run_job(cfg, str(lake), spark=spark_cluster, baseline=False)
    assert result.run_id == RUN_ID and not staging.exists() and (committed / COMMIT_MARKER).is_file()
    m = result.metrics
    assert m.attempts[0]["resumed_from_epoch"] == 1 and [h["epoch"] for h in m.history] == [1, 2]
    assert m.held_out["split"] == "test" and m.held_out["accuracy"] > 0.7
    assert m.train["early_stopping"]["metric"] == "val_auc"  # the callback's state came back with it
