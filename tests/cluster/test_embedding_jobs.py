"""Adult with every categorical column learned as an embedding: parity with one-hot, and
scoring that indexes raw rows exactly as training did."""
import gzip

import pyarrow.parquet as pq
import pytest

from sparkdl.preparation.examples import resolve_path
from sparkdl.preparation.materialize import Manifest
from sparkdl.serving.evaluation import evaluate_network
from sparkdl.serving.score import score
from sparkdl.workflow import run_job


@pytest.fixture(scope="module")
def embedded_run(spark_cluster, adult_config, tmp_path_factory):
    cfg = adult_config.with_values({"features.categorical_encoding": "embedding"})
    return run_job(cfg, str(tmp_path_factory.mktemp("embedded-lake")), spark=spark_cluster)


def test_adult_with_embeddings_matches_one_hot(embedded_run):
    m = embedded_run.metrics
    manifest = Manifest.load(embedded_run.path / "manifest.json")
    print(f"\nAdult, embeddings for all 8 categorical columns: test accuracy {m.held_out['accuracy']:.4f}, "
          f"AUC {m.held_out['auc']:.4f}; tables {[(e['name'], e['size'], e['dim']) for e in manifest.embeddings]}")
    assert len(manifest.embeddings) == 8 and all(e["kind"] == "index" for e in manifest.embeddings)
    assert manifest.feature_width == 6  # the numeric columns; the categories are indices, not one-hot
    assert m.held_out["accuracy"] >= 0.85


def test_scoring_raw_rows_indexes_them_as_training_did(spark_cluster, embedded_run, tmp_path):
    manifest = Manifest.load(embedded_run.path / "manifest.json")
    raw = gzip.open(resolve_path("embedded:adult/adult.test.csv.gz"), "rt").read().splitlines()
    raw.append(raw[1].replace("Private", "Spaceship-crew"))  # an unseen category: the unknown index
    src = tmp_path / "test.csv"
    src.write_text("\n".join(raw) + "\n")
    report = score(spark_cluster, embedded_run.path, str(src), str(tmp_path / "preds"))
    out = pq.read_table(tmp_path / "preds").to_pandas()
    labelled = out[out["class"].isin(manifest.classes)]
    direct = evaluate_network(spark_cluster, manifest.paths["test"], str(embedded_run.path / "model"), manifest)
    assert report.scored == len(out) == direct["rows"] + 1
    unseen = out["workclass"] == "Spaceship-crew"
    assert unseen.sum() == 1 and out.loc[unseen, "prediction"].iloc[0] in manifest.classes
    known = labelled[labelled["workclass"] != "Spaceship-crew"]
    assert float((known["prediction"] == known["class"]).mean()) == pytest.approx(direct["accuracy"], abs=1e-12)
