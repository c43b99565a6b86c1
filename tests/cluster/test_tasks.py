"""Tasks beyond binary classification, end to end on two ranks: regression on real data,
multi-class and imbalanced classification on generated data, early stopping and a
learning-rate schedule that survives a restart."""
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from sparkdl.core.config.loading import load_config, parse_config
from sparkdl.core.rundir import SPEC
from sparkdl.preparation.examples import resolve_path
from sparkdl.serving.evaluation import evaluate_run
from sparkdl.serving.score import score
from sparkdl.testing.faults import FaultSpec
from sparkdl.training.rank.controls import scheduled_lr
from sparkdl.workflow import prepare, run_job, train

REPO = Path(__file__).resolve().parents[2]

HOUSING = resolve_path("embedded:california-housing/housing.csv.gz")
FEATURES = [f"x{i}" for i in range(6)]


def _write_csv(path, x, labels, groups):
    lines = [",".join(FEATURES + ["g", "label"])]
    lines += [",".join(f"{v:.5f}" for v in row) + f",{g},{y}" for row, g, y in zip(x, groups, labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(csv, classes, **train):
    return parse_config({
        "name": "generated", "data": {"train": str(csv), "options": {"header": True}},
        "schema": {"columns": [{"name": n, "type": "double"} for n in FEATURES]
                   + [{"name": "g", "type": "string"}, {"name": "label", "type": "string"}],
                   "numeric": FEATURES, "categorical": ["g"], "label": "label", "classes": classes},
        "materialize": {"validation_fraction": 0.15, "test_fraction": 0.15, "max_ranks": 2, "row_groups_per_rank": 2},
        "model": {"hidden": [64, 32], "dropout": 0.0},
        "train": {"ranks": 2, "epochs": 6, "batch_size": 64, **train}})


@pytest.fixture(scope="module")
def housing_run(spark_cluster, tmp_path_factory):
    cfg = load_config(REPO / "conf" / "california_housing.yaml")  # the copy shipped in the package
    return run_job(cfg, str(tmp_path_factory.mktemp("housing-lake")), spark=spark_cluster)


def test_california_housing_beats_least_squares_on_the_test_split(housing_run):
    m = housing_run.metrics
    baseline = m.baseline["linear_regression"]
    print(f"\ncalifornia housing: test RMSE {m.held_out['rmse']:,.0f} (R2 {m.held_out['r2']:.3f}), linear regression "
          f"{baseline['rmse']:,.0f}; kept epoch {m.train['kept_epoch']} of {m.train['epochs']}")
    assert m.task == "regression" and m.held_out["split"] == "test" and baseline["split"] == "test"
    assert m.held_out["rmse"] <= 55_000
    assert m.held_out["rmse"] <= 0.85 * baseline["rmse"]
    assert {"rmse", "mae", "r2"} <= set(m.validation) and m.validation["epoch"] == m.train["kept_epoch"]
    assert (housing_run.path / "metrics.png").is_file() and not (housing_run.path / "confusion.json").exists()


def test_regression_scoring_writes_numbers_in_dollars(spark_cluster, housing_run, tmp_path):
    report = score(spark_cluster, housing_run.path, HOUSING, str(tmp_path / "preds"))
    assert report.input == report.scored == 20640 and report.quarantined == 0
    out = pq.read_table(tmp_path / "preds").to_pandas()
    assert "probabilities" not in out.columns and out["prediction"].dtype == np.float64
    rmse = float(np.sqrt(np.mean((out["prediction"] - out["median_house_value"]) ** 2)))
    assert rmse < 60_000  # in dollars: the target's standardization was undone
    assert out["prediction"].between(-100_000, 800_000).all()


@pytest.fixture(scope="module")
def five_classes(tmp_path_factory):
    rng = np.random.default_rng(5)
    n, k = 4000, 5
    centres = rng.normal(0, 1.6, size=(k, len(FEATURES)))
    y = rng.integers(0, k, n)
    x = centres[y] + rng.normal(0, 1, size=(n, len(FEATURES)))
    return _write_csv(tmp_path_factory.mktemp("five") / "five.csv", x, [f"c{v}" for v in y],
                      rng.choice(["a", "b", "c"], n))


def test_multiclass_job_writes_macro_f1_and_the_confusion_matrix(spark_cluster, five_classes, tmp_path):
    cfg = _config(five_classes, [f"c{i}" for i in range(5)], epochs=8)
    result = run_job(cfg, str(tmp_path / "lake"), spark=spark_cluster)
    m = result.metrics
    base = m.baseline["logistic_regression"]
    print(f"\n5 classes: test accuracy {m.held_out['accuracy']:.4f}, macro-F1 {m.held_out['macro_f1']:.4f}, log-loss "
          f"{m.held_out['log_loss']:.4f}; multinomial logistic regression accuracy {base['accuracy']:.4f}")
    assert m.held_out["accuracy"] > 0.6 and 0 < m.held_out["macro_f1"] <= 1 and m.held_out["log_loss"] > 0
    assert {"val_macro_f1", "val_log_loss", "val_accuracy"} <= set(m.history[-1])
    confusion = json.loads((result.path / "confusion.json").read_text())
    matrix = np.array(confusion["matrix"])
    assert matrix.shape == (5, 5) and matrix.sum() == m.held_out["rows"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(m.held_out["accuracy"])
    assert (result.path / "confusion.png").stat().st_size > 5000
    out_dir = tmp_path / "preds"
    score(spark_cluster, result.path, str(five_classes), str(out_dir))
    out = pq.read_table(out_dir).to_pandas()
    assert len(out) == 4000 and out["probabilities"].map(len).eq(5).all()
    assert set(out["prediction"]) <= set(cfg.schema.classes)


@pytest.fixture(scope="module")
def rare_positives(spark_cluster, tmp_path_factory):
    """20,000 rows, 2 % positives, weakly separated; prepared once for two runs."""
    rng = np.random.default_rng(2)
    n = 20000
    y = (rng.random(n) < 0.02).astype(int)
    x = rng.normal(0, 1, size=(n, len(FEATURES))) + y[:, None] * np.array([1.2, 1.0, 0.8, 0, 0, 0])
    path = _write_csv(tmp_path_factory.mktemp("rare") / "rare.csv", x, np.where(y, "pos", "neg"),
                      rng.choice(["a", "b"], n))
    cfg = _config(path, ["neg", "pos"], epochs=5, batch_size=256)
    lake = tmp_path_factory.mktemp("rare-lake")
    return cfg, str(lake), prepare(cfg, str(lake), spark=spark_cluster)


def test_balanced_class_weights_raise_recall_and_pr_auc_is_reported(spark_cluster, rare_positives, tmp_path):
    cfg, lake, manifest = rare_positives
    assert manifest.label["counts"]["pos"] < 0.03 * sum(manifest.label["counts"].values())
    results = {}
    for weights in (None, "balanced"):
        run = train(cfg.with_values({"train.class_weights": weights}), lake, spark=spark_cluster, manifest=manifest)
        results[weights] = evaluate_run(spark_cluster, run.path, split="test", baseline=False)["network"]
    plain, balanced = results[None], results["balanced"]
    print(f"\n2% positives: recall {plain['recall']:.3f} -> {balanced['recall']:.3f} with balanced weights "
          f"(precision {plain['precision']:.3f} -> {balanced['precision']:.3f}); PR-AUC {plain['pr_auc']:.3f}, "
          f"{balanced['pr_auc']:.3f}")
    assert balanced["recall"] > plain["recall"] + 0.2
    for r in (plain, balanced):
        assert 0.02 < r["pr_auc"] <= 1 and {"precision", "recall", "f1", "auc"} <= set(r)


def test_best_f1_threshold_is_recorded_and_used_for_scoring(spark_cluster, rare_positives, tmp_path):
    cfg, lake, manifest = rare_positives
    run = train(cfg.with_values({"train.decision_threshold": "best_f1"}), lake, spark=spark_cluster,
                manifest=manifest)
    spec = json.loads((run.path / "model" / SPEC).read_text())
    kept = run.metrics.history[-1]
    assert spec["threshold"] == kept["val_best_f1_threshold"] != 0.5
    csv = tmp_path / "few.csv"
    source = cfg.data.train
    csv.write_text("".join(open(source).readlines()[:2001]))
    score(spark_cluster, run.path, str(csv), str(tmp_path / "preds"))
    out = pq.read_table(tmp_path / "preds").to_pandas()
    p1 = out["probabilities"].map(lambda p: p[1])
    assert ((p1 >= spec["threshold"]) == (out["prediction"] == "pos")).all()
    assert ((p1 >= 0.5) != (p1 >= spec["threshold"])).any()  # the threshold changed some predictions


@pytest.fixture(scope="module")
def noise(tmp_path_factory):
    """Labels independent of the features: validation loss can only rise once the net memorizes."""
    rng = np.random.default_rng(7)
    n = 1600
    return _write_csv(tmp_path_factory.mktemp("noise") / "noise.csv", rng.normal(size=(n, len(FEATURES))),
                      rng.choice(["a", "b"], n), rng.choice(["u", "v"], n))


def test_early_stopping_stops_within_patience_and_keeps_the_best_epoch(spark_cluster, noise, tmp_path):
    cfg = _config(noise, ["a", "b"], epochs=20, optimizer={"lr": 0.01},
                  early_stopping={"metric": "val_loss", "patience": 2})
    cfg = cfg.with_values({"model.hidden": [256, 256]})
    result = run_job(cfg, str(tmp_path / "lake"), spark=spark_cluster, baseline=False)
    m = result.metrics
    stop = m.train["early_stopping"]
    losses = [h["val_loss"] for h in m.history]
    best = int(np.argmin(losses)) + 1
    assert stop["stopped_early"] and m.train["stopped_early"]
    assert stop["best_epoch"] == best == m.train["kept_epoch"] == m.validation["epoch"]
    assert stop["last_epoch"] == best + 2 == len(m.history) < 20
    again = evaluate_run(spark_cluster, result.path, split="validation", baseline=False)["network"]
    assert again["log_loss"] == pytest.approx(m.history[best - 1]["val_loss"], rel=1e-5)
    assert again["accuracy"] == pytest.approx(m.history[best - 1]["val_accuracy"], abs=1e-12)
    assert "kept epoch" in (result.path / "summary.txt").read_text()


def test_a_resumed_run_continues_the_same_schedule(spark_cluster, adult_config, adult_lake, tmp_path):
    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 4, "train.ranks": 2, "train.lr_schedule.kind": "cosine",
                                    "train.lr_schedule.warmup_epochs": 1})
    plain = train(cfg, str(tmp_path / "plain"), spark=spark_cluster, manifest=manifest)
    resumed = train(cfg, str(tmp_path / "resumed"), spark=spark_cluster, manifest=manifest,
                    callbacks=[FaultSpec(rank=1, epoch=3, step=20, mode="kill")])
    assert resumed.metrics.attempts[1]["resumed_from_epoch"] == 2
    assert [h["attempt"] for h in resumed.metrics.history] == [1, 1, 2, 2]
    steps = plain.metrics.train["steps_per_epoch"]
    base = cfg.train.optimizer.lr * 2  # linear scaling for 2 ranks
    expected = [scheduled_lr(cfg.train.lr_schedule, base, e * steps - 1, steps, 4) for e in (1, 2, 3, 4)]
    assert [h["lr"] for h in plain.metrics.history] == pytest.approx(expected, rel=1e-12)
    assert [h["lr"] for h in resumed.metrics.history] == [h["lr"] for h in plain.metrics.history]
    assert abs(resumed.metrics.history[-1]["val_loss"] - plain.metrics.history[-1]["val_loss"]) < 0.01
