"""What sparkdl 0.2 stored before its modules moved into sub-packages still works: its
MLflow model scores the same, its checkpoints restore into the model the spec builds, and
its metrics and config still read (the cluster tier resumes and scores its run in Spark)."""
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from layout_fixture import FIXTURE, RUN_ID, copy_lake

from sparkdl.core.config.loading import load_config
from sparkdl.core.models import build_model_and_loss
from sparkdl.core.rundir import RunDir
from sparkdl.training.rank.checkpoints import load_latest
from sparkdl.training.resume import config_fingerprint


def test_its_mlflow_model_loads_through_the_old_module_and_scores_the_same():
    mlflow = pytest.importorskip("mlflow")  # an optional extra; `make setup` installs it
    rows = pd.read_csv(FIXTURE / "rows.csv")
    before = pd.read_csv(FIXTURE / "predictions.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = mlflow.pyfunc.load_model(str(FIXTURE / "mlflow-model"))
    assert any("sparkdl.mlflow_model moved to sparkdl.tracking.pyfunc" in str(w.message) for w in caught)
    now = model.predict(rows)
    assert list(now["prediction"]) == list(before["prediction"])
    assert np.allclose(now["probability"], before["probability"], atol=1e-6)
    assert now["score_error"].isna().all()


def test_its_checkpoint_restores_with_its_callback_state(tmp_path):
    lake = copy_lake(tmp_path / "lake")
    run = RunDir(lake / "runs" / RUN_ID)
    state = load_latest(run.checkpoints)
    assert state["epoch"] == 2 and list(state["callbacks"]) == ["0:EarlyStopping"]
    import json

    spec = json.loads((run.model / "spec.json").read_text())
    net, _ = build_model_and_loss(spec)
    net.load_state_dict(state["model"])  # every key and shape as the model builds it today
    assert torch.equal(net.state_dict()[next(iter(state["model"]))], state["model"][next(iter(state["model"]))])


def test_its_config_and_metrics_read_and_its_fingerprint_is_unchanged(tmp_path):
    import json

    lake = copy_lake(tmp_path / "lake")
    run = RunDir(lake / "runs" / RUN_ID)
    metrics = run.read_metrics()
    assert metrics.held_out["split"] == "test" and metrics.held_out["accuracy"] > 0.7  # written as "test"
    cfg = load_config(FIXTURE / "job.yaml")
    # staged when the number of ranks was part of it: the print resumption accepts beside today's
    assert config_fingerprint(cfg, with_ranks=True) == json.loads((FIXTURE / "resume.json").read_text())["fingerprint"]


def test_its_report_draws_the_metric_early_stopping_watched(tmp_path, monkeypatch):
    from sparkdl.tracking import report

    run = RunDir(copy_lake(tmp_path / "lake") / "runs" / RUN_ID)
    metrics = run.read_metrics()
    assert metrics.train["early_stopping"]["metric"] == "val_auc"
    drawn = {}
    plot = report.plot_history
    monkeypatch.setattr(report, "plot_history", lambda *a, **k: (drawn.update(k), plot(*a, **k)))
    report.write_report(run, metrics)
    assert drawn["metrics"] == ["accuracy", "auc"] and drawn["kept_epoch"] == 2
    assert run.plot.stat().st_size > 10_000 and "val_auc" in run.summary.read_text()
