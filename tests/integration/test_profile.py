"""The training profile and the drift count, in Spark: the same rows drift by nothing, a
shifted column by a large PSI, new categories are counted as unseen, and a sampled
profile does not claim to know every category."""
import pytest

from sparkdl.core.config import DriftConfig
from sparkdl.preparation import profile as profiles
from sparkdl.preparation.profile import count_against, profile_rows
from sparkdl.promotion.drift import measure


@pytest.fixture(scope="module")
def rows(spark_local):
    data = [(float(i % 97), None if i % 10 == 0 else ["a", "b", "c"][i % 3]) for i in range(3000)]
    return spark_local.createDataFrame(data, "age double, kind string")


def test_the_same_rows_do_not_drift_and_a_shift_does(spark_local, rows):
    from pyspark.sql import functions as F

    profile = profile_rows(rows, ["age"], ["kind"])
    assert len(profile["numeric"]["age"]["edges"]) == 9 and profile["categorical"]["kind"]["complete"]
    assert profile["categorical"]["kind"]["null_share"] == pytest.approx(0.1)
    same = {f.column: f for f in measure(profile, count_against(rows, profile), DriftConfig())}
    assert same["age"].psi == pytest.approx(0, abs=1e-9) and same["kind"].psi == pytest.approx(0, abs=1e-9)
    moved = rows.withColumn("age", F.col("age") + 30).withColumn(
        "kind", F.when(F.col("kind") == "a", F.lit("z")).otherwise(F.col("kind")))
    drift = {f.column: f for f in measure(profile, count_against(moved, profile), DriftConfig())}
    assert drift["age"].psi > 0.25 and drift["age"].level == "fail"
    assert drift["kind"].unseen_share == pytest.approx(900 / 3000) and drift["kind"].psi > 0.25


def test_a_sampled_profile_keeps_shares_but_does_not_count_unseen(spark_local, rows, monkeypatch):
    monkeypatch.setattr(profiles, "SAMPLE_ROWS", 1000)
    profile = profile_rows(rows, ["age"], ["kind"], seed=1)
    assert profile["rows"] == 3000 and 700 < profile["profiled_rows"] < 1300
    assert not profile["categorical"]["kind"]["complete"]
    assert profile["categorical"]["kind"]["shares"]["a"] == pytest.approx(0.3, abs=0.05)
