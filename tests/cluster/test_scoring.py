"""Batch scoring with a finished run on real executors."""
import gzip
import os
import shutil
import time

import pyarrow.parquet as pq
import pytest
import torch

from sparkdl.cli import main as cli
from sparkdl.core.columns import PROBABILITIES
from sparkdl.core.errors import BadDataError, LakeError, ScoringError
from sparkdl.preparation.examples import resolve_path
from sparkdl.serving.evaluation import evaluate_network
from sparkdl.serving.score import score


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
    direct = evaluate_network(spark_cluster, manifest.paths["test"], str(adult_run.path / "model"), manifest)
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


def test_relative_paths_mean_what_they_mean_on_the_driver(spark_cluster, adult_run, test_csv, tmp_path,
                                                          monkeypatch):
    """Executors run in another working directory: a relative run, input or output path
    given on the driver must still name the same files there."""
    path, _ = test_csv
    monkeypatch.chdir(tmp_path)
    run = os.path.relpath(adult_run.path, tmp_path)
    report = score(spark_cluster, run, os.path.relpath(path, tmp_path), "preds")
    assert report.output == str(tmp_path / "preds")
    assert len(pq.read_table(tmp_path / "preds")) == report.scored > 0


def test_a_missing_run_or_input_fails_fast_with_one_line(spark_cluster, adult_run, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(LakeError, match=r"run 'lake/runs/nope' does not exist \(looked for /"):
        score(spark_cluster, "lake/runs/nope", "in.csv", str(tmp_path / "out"))
    with pytest.raises(BadDataError, match="does not exist or holds no files"):
        score(spark_cluster, adult_run.path, str(tmp_path / "no-such.csv"), str(tmp_path / "out"))
    assert time.monotonic() - t0 < 5 and not (tmp_path / "out").exists()


def test_failed_scoring_publishes_nothing_and_a_rerun_replaces_cleanly(spark_cluster, adult_run, test_csv,
                                                                       tmp_path):
    path, _ = test_csv
    out = tmp_path / "preds"
    first = score(spark_cluster, adult_run.path, str(path), str(out))
    before = sorted(p.name for p in out.iterdir())
    assert first.quarantined == 2 and (tmp_path / "preds.quarantine").is_dir()

    broken = tmp_path / "broken-run"  # the same run with a diverged (NaN) network
    shutil.copytree(adult_run.path, broken)
    weights = torch.load(broken / "model" / "weights.pt", weights_only=True)
    torch.save({k: torch.full_like(v, float("nan")) for k, v in weights.items()}, broken / "model" / "weights.pt")
    with pytest.raises(ScoringError, match="NaN or infinite outputs for .* rows .* the run's model is broken"):
        score(spark_cluster, broken, str(path), str(out))
    assert sorted(p.name for p in out.iterdir()) == before  # the previous output, untouched
    assert [p.name for p in tmp_path.iterdir() if ".staging-" in p.name] == []

    clean = tmp_path / "clean.csv"  # a rerun whose input has no bad rows leaves no stale quarantine
    clean.write_text("\n".join(path.read_text().splitlines()[:1] + path.read_text().splitlines()[4:50]) + "\n")
    again = score(spark_cluster, adult_run.path, str(clean), str(out))
    assert again.quarantined == 0 and again.quarantine_path is None
    assert len(pq.read_table(out)) == again.scored == 46 and not (tmp_path / "preds.quarantine").exists()
