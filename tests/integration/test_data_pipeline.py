"""The data side on the real Adult files: ingest, quarantine, features, materialize, manifest."""
import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from sparkdl.core.columns import FEATURES, LABEL, MISSING
from sparkdl.core.config.loading import load_config
from sparkdl.core.errors import BadDataError
from sparkdl.core.lake import Lake
from sparkdl.core.rundir import MANIFEST, PORTABLE_FILE
from sparkdl.preparation.examples import resolve_path
from sparkdl.preparation.features import to_training_frame
from sparkdl.preparation.ingest import ingest, release
from sparkdl.preparation.materialize import Manifest
from sparkdl.preparation.portable import PortableFeatures
from sparkdl.workflow import prepare

REPO = Path(__file__).resolve().parents[2]
ADULT_CONF = REPO / "conf" / "adult.yaml"


def _read_adult(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = [r for r in csv.reader(f) if r]
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def adult_cfg():
    return load_config(ADULT_CONF)


@pytest.fixture(scope="module")
def prepared(spark_local, adult_cfg, tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    manifest = prepare(adult_cfg, str(lake), spark=spark_local)
    return lake, manifest


def test_clean_adult_file_is_accepted_exactly(prepared):
    _, m = prepared
    assert m.rows == {"input": 32561, "accepted": 32561, "quarantined": 0}
    assert m.test_rows == {"input": 16281, "accepted": 16281, "quarantined": 0}
    assert m.splits["train"] + m.splits["validation"] == 32561
    assert 0.08 < m.splits["validation"] / 32561 < 0.12
    assert m.splits["test"] == 16281


def test_feature_width_matches_category_counts(prepared, adult_cfg):
    _, m = prepared
    header, rows = _read_adult(resolve_path(adult_cfg.data.train))
    expected = len(adult_cfg.schema.numeric)
    for col in adult_cfg.schema.categorical:
        i = header.index(col)
        expected += len({MISSING if r[i] in ("?", "") else r[i] for r in rows})
    assert m.feature_width == expected == len(m.feature_names) == 108
    assert "occupation=Sales" in m.feature_names and f"workclass={MISSING}" in m.feature_names
    table = pq.read_table(m.paths["train"])
    assert table.column(FEATURES).type.value_type.bit_width == 32
    assert {len(v) for v in table.column(FEATURES).to_pylist()[:100]} == {108}
    assert set(table.column(LABEL).to_pylist()) == {0, 1}


def test_every_rank_gets_several_row_groups(prepared, adult_cfg):
    _, m = prepared
    want = adult_cfg.materialize.max_ranks * adult_cfg.materialize.row_groups_per_rank
    assert m.row_groups["train"] >= want and m.row_groups["validation"] >= want


def test_split_is_deterministic_whatever_the_partitioning(spark_local, adult_config, prepared):
    from sparkdl.core.columns import RAW
    from sparkdl.preparation.materialize import split_frames

    _, m = prepared
    accepted, _ = ingest(spark_local, adult_config.data, adult_config.schema, adult_config.data.train, None)
    one = sorted(r[RAW] for r in split_frames(accepted.coalesce(1), adult_config.materialize)["validation"]
                 .select(RAW).collect())
    many = sorted(r[RAW] for r in split_frames(accepted.repartition(7), adult_config.materialize)["validation"]
                  .select(RAW).collect())
    assert one == many and len(one) == m.splits["validation"]
    cache = accepted._sparkdl_ingest_cache
    assert cache.storageLevel.useDisk  # the validated rows are cached for the passes that follow
    release(accepted)  # accepted.unpersist() would leave that cache for the rest of the session
    assert not cache.storageLevel.useDisk and not cache.storageLevel.useMemory


def test_manifest_round_trips_and_is_current(prepared, adult_cfg):
    lake, m = prepared
    path = Path(m.paths["dataset"]) / MANIFEST
    loaded = Manifest.load(path)
    assert loaded == m
    assert json.loads(path.read_text())["label"]["classes"] == ["<=50K", ">50K"]
    assert Lake(str(lake)).current_dataset(adult_cfg.name) == Path(m.paths["dataset"])
    assert not list((lake / "datasets" / "adult").glob(".staging-*"))


def test_unseen_category_scores_without_error(spark_local, prepared, adult_cfg):
    from pyspark.ml import PipelineModel

    _, m = prepared
    model = PipelineModel.load(m.paths["preprocessing"])
    names = [c.name for c in adult_cfg.schema.columns]
    row = dict(zip(names, [37.0, "Private", 100000.0, "Bachelors", 13.0, "Never-married", "Astronaut",
                           "Not-in-family", "White", "Female", 0.0, 0.0, 40.0, "Atlantis", "<=50K"]))
    df = spark_local.createDataFrame([row], ", ".join(f"`{c.name}` {c.type}" for c in adult_cfg.schema.columns))
    out = to_training_frame(model, df, adult_cfg.schema).collect()[0]
    feats = dict(zip(m.feature_names, out[FEATURES]))
    assert len(out[FEATURES]) == 108
    assert all(v == 0.0 for k, v in feats.items() if k.startswith(("occupation=", "native-country=")))
    assert feats["workclass=Private"] == 1.0
    # prepare wrote the same preprocessing as numbers, for scorers without Spark (the MLflow model)
    portable = PortableFeatures.load(Path(m.paths["preprocessing"]) / PORTABLE_FILE)
    numbers, _, reasons = portable.transform(pd.DataFrame([row]))
    assert reasons == [None] and numbers[0].tolist() == pytest.approx(list(out[FEATURES]), abs=1e-6)


def test_broken_lines_are_quarantined_with_reasons(spark_local, adult_cfg, tmp_path):
    src = resolve_path(adult_cfg.data.train)
    header, rows = _read_adult(src)
    good = [",".join(r) for r in rows[:3000]]
    broken = {
        "39,State-gov,77516,Bachelors": "wrong number of fields",
        "abc,Private,77516,Bachelors,13,Never-married,Sales,Not-in-family,White,Male,0,0,40,United-States,<=50K":
            "column 'age': 'abc' is not a double",
        "50,Private,83311,Bachelors,13,Married-civ-spouse,Sales,Husband,White,Male,0,0,forty,United-States,>50K":
            "column 'hours-per-week': 'forty' is not a double",
        "38,Private,215646,HS-grad,9,Divorced,Sales,Not-in-family,White,Male,0,0,40,United-States,maybe":
            "label 'class': 'maybe' is not one of",
        "38,Private,215646,HS-grad,9,Divorced,Sales,Not-in-family,White,Male,0,0,40,United-States,?":
            "label 'class' is missing",
    }
    lines = [",".join(header)] + good[:1000] + list(broken) + good[1000:] + [""]
    data_file = tmp_path / "adult_broken.csv"
    data_file.write_text("\n".join(lines) + "\n")
    quarantine = tmp_path / "quarantine"
    accepted, report = ingest(spark_local, adult_cfg.data, adult_cfg.schema, str(data_file), str(quarantine))
    assert report.input == 3000 + len(broken)
    assert report.accepted == 3000 == accepted.count()
    assert report.quarantined == len(broken)
    assert report.input == report.accepted + report.quarantined
    bad = {r["raw"]: r["reason"] for r in pq.read_table(quarantine).to_pylist()}
    assert set(bad) == set(broken)
    for raw, why in broken.items():
        assert why in bad[raw], (raw, bad[raw])
    assert all(r["file"].endswith("adult_broken.csv") for r in pq.read_table(quarantine).to_pylist())
    # '?' in a feature column is missing data, not an error
    assert accepted.where("workclass IS NULL").count() == sum(1 for r in rows[:3000] if r[1] == "?") > 0


@pytest.mark.parametrize("policy", ["quarantine", "missing"])
def test_non_finite_numbers_are_quarantined_or_missing_never_numbers(spark_local, adult_cfg, tmp_path, policy):
    import dataclasses

    header, rows = _read_adult(resolve_path(adult_cfg.data.train))
    good = [",".join(r) for r in rows[:200]]
    row = "38,Private,215646,HS-grad,9,Divorced,Sales,Not-in-family,White,Male,{},0,40,United-States,<=50K"
    odd = {row.format(v): v for v in ("1e400", "-inf", "NaN", "Infinity")}
    huge = row.format("-1.5e300")  # finite as a double, infinity as the float32 the model reads
    data_file = tmp_path / "adult_odd.csv"
    data_file.write_text("\n".join([",".join(header)] + good + list(odd) + [huge]) + "\n")
    data = dataclasses.replace(adult_cfg.data, non_finite=policy, max_bad_fraction=0.5)
    accepted, report = ingest(spark_local, data, adult_cfg.schema, str(data_file), str(tmp_path / "q"))
    assert report.input == report.accepted + report.quarantined == 205
    reasons = {r["raw"]: r["reason"] for r in pq.read_table(tmp_path / "q").to_pylist()}
    assert reasons[huge] == "column 'capital-gain': '-1.5e300' is beyond float32's range (|x| <= 3.403e+38)"
    if policy == "quarantine":
        assert report.quarantined == 5
        for raw, v in odd.items():
            assert reasons[raw] == f"column 'capital-gain': '{v}' is not a finite number"
    else:
        assert report.quarantined == 1
        assert accepted.where("`capital-gain` IS NULL").count() == 4  # missing: imputed by the pipeline
    assert accepted.where("isnan(`capital-gain`) OR abs(`capital-gain`) = double('inf')").count() == 0


def test_a_flood_of_bad_rows_is_an_error_naming_file_and_example(spark_local, adult_cfg, tmp_path):
    header, rows = _read_adult(resolve_path(adult_cfg.data.train))
    lines = [",".join(header)] + [",".join(r) for r in rows[:50]] + ["1,2,3"] * 10
    data_file = tmp_path / "mostly_bad.csv"
    data_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadDataError) as e:
        ingest(spark_local, adult_cfg.data, adult_cfg.schema, str(data_file), None)
    msg = str(e.value)
    assert "mostly_bad.csv" in msg and "'1,2,3'" in msg and "max_bad_fraction" in msg and "10 of 60" in msg


def test_header_mismatch_is_caught_before_spark_work(spark_local, adult_cfg, tmp_path):
    data_file = tmp_path / "renamed.csv"
    data_file.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(BadDataError, match="schema.columns declares"):
        ingest(spark_local, adult_cfg.data, adult_cfg.schema, str(data_file), None)
    with pytest.raises(BadDataError, match="does not exist"):
        ingest(spark_local, adult_cfg.data, adult_cfg.schema, str(tmp_path / "nope.csv"), None)


def test_json_and_parquet_sources(spark_local, adult_cfg, tmp_path):
    import dataclasses

    header, rows = _read_adult(resolve_path(adult_cfg.data.train))
    recs = [dict(zip(header, r)) for r in rows[:200]]
    for r in recs:
        r["age"] = float(r["age"])
    json_file = tmp_path / "adult.jsonl"
    json_file.write_text("\n".join(json.dumps(r) for r in recs) + "\n{not json}\n")
    data = dataclasses.replace(adult_cfg.data, format="json", options={})
    accepted, report = ingest(spark_local, data, adult_cfg.schema, str(json_file), None)
    assert (report.accepted, report.quarantined) == (200, 1)
    parquet_dir = tmp_path / "adult_parquet"
    accepted.drop("_raw").write.parquet(str(parquet_dir))
    data = dataclasses.replace(adult_cfg.data, format="parquet", options={})
    _, report = ingest(spark_local, data, adult_cfg.schema, str(parquet_dir), None)
    assert (report.input, report.accepted) == (200, 200)


def test_prepare_from_the_command_line(tmp_path):
    lake = tmp_path / "lake"
    out = subprocess.run(
        [sys.executable, "-m", "sparkdl.cli", "prepare", str(ADULT_CONF), "--lake", str(lake),
         "--set", "spark.master=local[2]", "--set", "spark.conf.spark.ui.enabled=false", "--set", "data.test=null"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    printed = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    manifest_path = Path(printed["manifest"])
    assert manifest_path.name == MANIFEST and manifest_path.is_file()
    assert Manifest.load(manifest_path).rows["accepted"] == 32561


def test_cli_reports_config_errors_with_exit_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "sparkdl.cli", "prepare", str(ADULT_CONF), "--lake", str(tmp_path),
                          "--set", "train.epochs=zero"], capture_output=True, text=True)
    assert out.returncode == 2 and "train.epochs" in out.stderr
