"""The click-log shape at 1 M rows on the default 1 GiB executors: 26 categorical columns
up to a million values each, learned as embeddings (indexed, or hashed past the
vocabulary limit; the large tables with sparse gradients), beating the wide linear
baseline; and the same job with one-hot refused before any heavy work."""
import json
from pathlib import Path

import pytest

from sparkdl.core.config.loading import load_config
from sparkdl.core.errors import ConfigError
from sparkdl.core.lake import Lake
from sparkdl.preparation import synthetic
from sparkdl.preparation.materialize import Manifest
from sparkdl.workflow import prepare, run_job

CONF = Path(__file__).resolve().parents[2] / "conf" / "clicklog.yaml"


def test_a_million_click_log_rows_prepare_and_train_on_default_executors(spark_at_scale, tmp_path):
    assert spark_at_scale.sparkContext.master == "local-cluster[2,1,1024]"  # 1 GiB per executor
    cfg = load_config(CONF, ["data.options.rows=1000000"])  # 2 epochs
    result = run_job(cfg, str(tmp_path / "lake"), spark=spark_at_scale)
    manifest = Manifest.load(result.path / "manifest.json")
    tables = {e["name"]: e for e in manifest.embeddings}
    spec = json.loads((result.run_dir.model / "spec.json").read_text())
    m = result.metrics
    print(f"\nclick-log, 1 M rows, 2 epochs: test AUC {m.held_out['auc']:.4f}, accuracy {m.held_out['accuracy']:.4f}; "
          f"baseline {m.baseline['logistic_regression']['auc']:.4f}; {m.train['samples_per_sec']:,.0f} samples/s; "
          f"stages {m.stages}")
    assert manifest.rows == {"input": 1_000_000, "accepted": 1_000_000, "quarantined": 0}
    assert len(tables) == 26 and manifest.feature_width == 13
    assert tables["c0"]["kind"] == "index" and tables["c0"]["size"] == 11  # 10 values + unknown
    assert tables["c25"]["kind"] == "hash" and tables["c25"]["size"] == 131_072
    assert {e["name"] for e in spec["embeddings"] if e["sparse"]} == {n for n, e in tables.items()
                                                                      if e["size"] >= 100_000}
    assert m.held_out["auc"] > m.baseline["logistic_regression"]["auc"] + 0.005
    assert m.held_out["auc"] > 0.8


def test_one_hot_for_a_column_of_many_values_is_refused_before_features_are_fit(spark_at_scale, tmp_path):
    cfg = load_config(CONF, ["data.options.rows=100000", "features.categorical_encoding=onehot"])
    with pytest.raises(ConfigError) as err:
        prepare(cfg, str(tmp_path / "lake"), spark=spark_at_scale)
    column = err.value.path.split(".")[2]
    assert err.value.path == f"features.columns.{column}.encoding"
    assert synthetic.CLICKLOG_CATEGORICAL[column] > 1000  # a column that is wide, not a narrow one
    assert "distinct values" in str(err.value) and f"features.columns.{column}.encoding: embedding" in str(err.value)
    assert not Lake(str(tmp_path / "lake")).has_dataset(cfg.name)  # nothing published


def test_a_job_whose_only_features_are_embedded_columns(spark_at_scale, tmp_path):
    cfg = load_config(CONF, ["data.options.rows=20000", "schema.numeric=[]", "train.epochs=1"])
    result = run_job(cfg, str(tmp_path / "lake"), spark=spark_at_scale)
    assert Manifest.load(result.path / "manifest.json").feature_width == 0
    m = result.metrics
    assert m.held_out["rows"] > 0 and 0.0 < m.held_out["auc"] < 1.0
    assert m.baseline["logistic_regression"]["rows"] == m.held_out["rows"]  # the baseline on the one-hot columns alone
