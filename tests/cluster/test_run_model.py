"""A finished run as a Spark ML Transformer (``sparkdl.load_run``), on real executors."""
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

import sparkdl
from sparkdl.core.columns import PREDICTION, PROBABILITY, SCORE_ERROR
from sparkdl.core.errors import ConfigError
from sparkdl.preparation.examples import resolve_path
from sparkdl.serving.score import score


@pytest.fixture(scope="module")
def raw_test_rows(spark_cluster, adult_config):
    """The Adult test file as a user reads it: every column text, nothing cleaned."""
    schema = ", ".join(f"`{c.name}` string" for c in adult_config.schema.columns)
    return spark_cluster.read.csv(resolve_path(adult_config.data.test), header=True, schema=schema)


def test_transform_equals_sparkdl_score_row_for_row(spark_cluster, adult_run, adult_config, raw_test_rows, tmp_path):
    model = sparkdl.load_run(adult_run.path.name, lake=str(adult_run.path.parent.parent))
    assert model.run.path == adult_run.path
    names = [c.name for c in adult_config.schema.columns]
    ours = model.transform(raw_test_rows).toPandas()
    score(spark_cluster, adult_run.path, adult_config.data.test, str(tmp_path / "preds"))
    theirs = pq.read_table(tmp_path / "preds").to_pandas()
    assert len(ours) == len(theirs) == 16281
    assert ours[SCORE_ERROR].isna().all()
    ours = ours.sort_values(names + [PROBABILITY], ignore_index=True)
    theirs = theirs.sort_values(names + [PROBABILITY], ignore_index=True)
    assert (ours[names].fillna("?") == theirs[names].fillna("?")).all().all()
    assert (ours[PREDICTION] == theirs[PREDICTION]).all()
    assert ours[PROBABILITY].to_numpy() == pytest.approx(theirs[PROBABILITY].to_numpy(), abs=1e-9)


def test_bad_rows_are_kept_with_their_reason_and_other_columns_pass_through(adult_run, raw_test_rows):
    df = (raw_test_rows.limit(50).withColumn("applicant", F.monotonically_increasing_id())
          .withColumn("age", F.when(F.col("applicant") == 3, F.lit("forty")).otherwise(F.col("age"))))
    out = sparkdl.load_run(adult_run.path).transform(df).orderBy("applicant").toPandas()
    assert len(out) == 50 and list(out.columns[:len(df.columns)]) == df.columns
    bad = out[out[SCORE_ERROR].notna()]
    assert list(bad["applicant"]) == [3]
    assert bad.iloc[0][SCORE_ERROR] == "column 'age': 'forty' is not a double"
    assert bad.iloc[0][PREDICTION] is None and bad[PROBABILITY].isna().all()
    good = out[out[SCORE_ERROR].isna()]
    assert good[PREDICTION].isin(["<=50K", ">50K"]).all() and good[PROBABILITY].between(0.5, 1.0).all()


def test_transform_composes_with_sql(spark_cluster, adult_run, raw_test_rows):
    sparkdl.load_run(adult_run.path).transform(raw_test_rows).createOrReplaceTempView("scored_adult")
    rows = spark_cluster.sql("SELECT prediction, count(*) AS n FROM scored_adult GROUP BY prediction").collect()
    assert sum(r["n"] for r in rows) == 16281 and {r["prediction"] for r in rows} == {"<=50K", ">50K"}


@pytest.mark.parametrize("change, message", [
    (lambda df: df.drop("occupation"), "the DataFrame has no column(s) ['occupation']"),
    (lambda df: df.withColumn("age", F.array(F.lit(1))), "column 'age' is array<int>, but run"),
    (lambda df: df.withColumn("prediction", F.lit(1)), "already has column(s) ['prediction']"),
])
def test_unusable_input_is_refused_before_any_spark_job(spark_cluster, adult_run, raw_test_rows, change, message):
    tracker = spark_cluster.sparkContext.statusTracker()
    df = change(raw_test_rows)
    jobs = len(tracker.getJobIdsForGroup(None))
    with pytest.raises(ConfigError) as err:
        sparkdl.load_run(adult_run.path).transform(df)
    assert message in str(err.value)
    assert len(tracker.getJobIdsForGroup(None)) == jobs
