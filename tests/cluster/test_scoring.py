"""Batch scoring with a finished run on real executors."""
import gzip

import pyarrow.parquet as pq
import pytest

from sparkdl.cli import main as cli
from sparkdl.evaluation import evaluate_network
from sparkdl.inference import PROBABILITIES, score
from sparkdl.ingest import resolve_path


@pytest.fixture(scope="module")
def test_csv(adult_config, tmp_path_factory):
    """The Adult test file plus two broken lines and a row with unseen categories."""
    lines = gzip.open(resolve_path(adult_config.data.test), "rt").read().splitlines()
    extra = ["45,Private,1000,Bachelors", "x,Private,1000,Bachelors,13,Divorced,Sales,Unmarried,White,Male,0,0,40,"
             "United-States,<=50K", "30,Space-agency,1000,Bachelors,13,Divorced,Astronaut,Unmarried,White,Male,0,0,40,"
             "Atlantis,"]
    path = tmp_path_factory.mktemp("score") / "to_score.csv"
    path.write_text("\n".join(lines[:1] + extra + lines[1:]) + "\n")
    return path, len([ln for ln in lines[1:] if ln.strip()])


def test_rows_in_equal_rows_out_plus_quarantined(spark_cluster, adult_run, test_csv, tmp_path):
    path, n_test = test_csv
    report = score(spark_cluster, adult_run.path, str(path), str(tmp_path / "preds"))
    assert report.input == n_test + 3
    assert report.quarantined == 2 and report.scored == n_test + 1
    assert report.input == report.scored + report.quarantined
    assert set(report.stages) == {"ingest", "predict_and_write", "verify"}
    out = pq.read_table(tmp_path / "preds").to_pandas()
    assert len(out) == report.scored
    unseen = out[out["occupation"] == "Astronaut"]
    assert len(unseen) == 1 and unseen.iloc[0]["prediction"] in ("<=50K", ">50K")  # unseen: no crash
    assert out[PROBABILITIES].map(sum).between(0.999, 1.001).all()
    bad = pq.read_table(str(tmp_path / "preds") + ".quarantine").to_pandas()
    assert sorted(bad["raw"].str[:2]) == ["45", "x,"]


def test_scored_predictions_reproduce_the_networks_accuracy(spark_cluster, adult_run, adult_lake, test_csv, tmp_path):
    _, manifest = adult_lake
    path, _ = test_csv
    score(spark_cluster, adult_run.path, str(path), str(tmp_path / "preds"))
    out = pq.read_table(tmp_path / "preds").to_pandas()
    labelled = out[out["class"].isin(manifest.classes)]
    acc = float((labelled["prediction"] == labelled["class"]).mean())
    direct = evaluate_network(spark_cluster, manifest.paths["test"], str(adult_run.path / "model"),
                              manifest.classes, manifest.feature_width)
    assert len(labelled) == direct["rows"] == 16281
    assert acc == pytest.approx(direct["accuracy"], abs=1e-12)
    assert acc >= 0.84


def test_runs_list_and_show(spark_cluster, adult_run, capsys):
    lake = adult_run.path.parent.parent
    assert cli(["runs", "list", "--lake", str(lake)]) == 0
    assert adult_run.run_id in capsys.readouterr().out
    assert cli(["runs", "show", adult_run.run_id, "--lake", str(lake)]) == 0
    shown = capsys.readouterr().out
    assert "epoch   4" in shown and str(adult_run.path) in shown
    assert cli(["runs", "show", "no-such-run", "--lake", str(lake)]) == 2
    assert spark_cluster.range(3).count() == 3  # the CLI leaves a session it did not start alone
