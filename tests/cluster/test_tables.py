"""Catalog tables as a job's input (``data.format: table``) and as scoring's output
(``--output-table``), on real executors with the session's catalog."""
import shutil

import pyarrow.parquet as pq
import pytest
import torch
from pyspark.sql import functions as F

from sparkdl.cli import main as cli
from sparkdl.core.columns import PREDICTION, PROBABILITY
from sparkdl.core.errors import BadDataError, ScoringError, TableError
from sparkdl.preparation.examples import resolve_path
from sparkdl.serving.score import score
from sparkdl.workflow import prepare


@pytest.fixture(scope="module")
def adult_tables(spark_cluster, adult_config):
    """The Adult files as typed tables in database ``lakehouse``; the training table has one
    row whose label is not a class."""
    spark = spark_cluster
    spark.sql("CREATE DATABASE IF NOT EXISTS lakehouse")
    text = ", ".join(f"`{c.name}` string" for c in adult_config.schema.columns)
    typed = [F.col(f"`{c.name}`").cast(c.type).alias(c.name) for c in adult_config.schema.columns]
    for split in ("train", "test"):
        df = spark.read.csv(resolve_path(getattr(adult_config.data, split)), header=True, schema=text).select(*typed)
        if split == "train":
            df = df.withColumn("class", F.when(F.monotonically_increasing_id() == 7, F.lit("maybe"))
                               .otherwise(F.col("class")))
        df.write.mode("overwrite").saveAsTable(f"lakehouse.adult_{split}")
    yield "lakehouse.adult_train", "lakehouse.adult_test"
    spark.sql("DROP DATABASE lakehouse CASCADE")


def _tables(spark):
    return sorted(t.name for t in spark.catalog.listTables("lakehouse"))


def test_a_job_reads_catalog_tables(spark_cluster, adult_tables, adult_config, adult_lake, tmp_path):
    train_table, test_table = adult_tables
    cfg = adult_config.with_values({"data.format": "table", "data.train": train_table, "data.test": test_table,
                                    "data.options": {}})
    manifest = prepare(cfg, str(tmp_path / "lake"), spark=spark_cluster)
    _, from_files = adult_lake
    assert manifest.rows["input"] == from_files.rows["input"] == 32561
    assert manifest.rows["quarantined"] == 1 and manifest.test_rows == from_files.test_rows
    assert manifest.feature_width == from_files.feature_width
    bad = pq.read_table(manifest.quarantine["train"]["quarantine_path"]).to_pandas()
    assert list(bad["file"]) == [train_table]  # the quarantine names the table the row came from
    assert bad.iloc[0]["reason"] == "label 'class': 'maybe' is not one of ['<=50K', '>50K']"


def test_a_missing_table_or_column_is_named_before_any_spark_job(spark_cluster, adult_tables, adult_config, tmp_path):
    train_table, _ = adult_tables
    tracker = spark_cluster.sparkContext.statusTracker()
    cfg = adult_config.with_values({"data.format": "table", "data.train": train_table,
                                    "data.test": "lakehouse.adult_tset", "data.options": {}})
    # the test table is checked before the training table is read (the message lists the catalog's tables)
    with pytest.raises(BadDataError, match=r"data.test: table 'lakehouse.adult_tset' does not exist .*"
                                           r"tables in database 'lakehouse': \['adult_test', 'adult_train'\]"):
        prepare(cfg, str(tmp_path / "lake"), spark=spark_cluster)
    spark_cluster.read.table(train_table).drop("occupation").createOrReplaceTempView("adult_no_occupation")
    cfg = cfg.with_values({"data.train": "adult_no_occupation", "data.test": None})
    jobs = len(tracker.getJobIdsForGroup(None))
    with pytest.raises(BadDataError, match=r"data.train: table 'adult_no_occupation' has no column\(s\) "
                                           r"\['occupation'\]"):
        prepare(cfg, str(tmp_path / "lake"), spark=spark_cluster)
    assert len(tracker.getJobIdsForGroup(None)) == jobs
    assert not list((tmp_path / "lake").rglob("*.parquet"))


def test_table_in_table_out_equals_files(spark_cluster, adult_run, adult_tables, adult_config, tmp_path):
    _, test_table = adult_tables
    report = score(spark_cluster, adult_run.path, test_table, fmt="table", output_table="lakehouse.adult_scored")
    assert (report.input, report.scored, report.quarantined) == (16281, 16281, 0)
    assert report.output == "lakehouse.adult_scored" and report.quarantine_path is None
    score(spark_cluster, adult_run.path, adult_config.data.test, str(tmp_path / "preds"))
    names = [c.name for c in adult_config.schema.columns]
    ours = spark_cluster.read.table("lakehouse.adult_scored").toPandas().sort_values(names + [PROBABILITY])
    theirs = pq.read_table(tmp_path / "preds").to_pandas().sort_values(names + [PROBABILITY])
    assert len(ours) == len(theirs) == 16281
    assert list(ours[PREDICTION]) == list(theirs[PREDICTION])
    assert ours[PROBABILITY].to_numpy() == pytest.approx(theirs[PROBABILITY].to_numpy(), abs=1e-9)
    assert not [t for t in _tables(spark_cluster) if "staging" in t]


def test_output_table_modes(spark_cluster, adult_run, adult_tables, tmp_path):
    spark = spark_cluster
    spark.read.table(adult_tables[1]).limit(40).write.mode("overwrite").saveAsTable("lakehouse.few")
    (spark.read.table(adult_tables[1]).withColumn("n", F.monotonically_increasing_id())  # 10 bad of 16,281
     .withColumn("age", F.when(F.col("n") < 10, F.lit(float("inf"))).otherwise(F.col("age"))).drop("n")
     .write.mode("overwrite").saveAsTable("lakehouse.some_bad"))
    target = "lakehouse.modes"

    def run(source, mode):
        return cli(["score", "--run", str(adult_run.path), "--input", f"lakehouse.{source}", "--format", "table",
                    "--output-table", target, "--table-mode", mode])

    assert run("few", "error") == 0 and spark.read.table(target).count() == 40
    assert run("few", "error") == 2  # exists: refused, the table as it was
    assert spark.read.table(target).count() == 40 and not [t for t in _tables(spark) if "staging" in t]
    assert run("few", "append") == 0 and spark.read.table(target).count() == 80
    assert run("some_bad", "append") == 0  # the bad rows land in <table>_quarantine, with their reason
    assert spark.read.table(target).count() == 80 + 16271
    bad = spark.read.table(target + "_quarantine").toPandas()
    assert len(bad) == 10 and set(bad["file"]) == {"lakehouse.some_bad"}
    assert (bad["reason"] == "column 'age': 'Infinity' is not a finite number").all()
    assert run("few", "overwrite") == 0
    assert spark.read.table(target).count() == 40
    assert not spark.catalog.tableExists(target + "_quarantine")  # replaced by a run with no bad rows: gone
    spark.read.table(target).drop(PROBABILITY).write.mode("overwrite").saveAsTable("lakehouse.other_shape")
    with pytest.raises(TableError, match=r"cannot append to 'lakehouse.other_shape'.*probability"):
        score(spark, adult_run.path, "lakehouse.few", fmt="table", output_table="lakehouse.other_shape",
              table_mode="append")
    assert spark.read.table("lakehouse.other_shape").count() == 40
    assert not [t for t in _tables(spark) if "staging" in t]


def test_a_failed_scoring_leaves_the_table_as_it_was(spark_cluster, adult_run, adult_tables, tmp_path):
    spark = spark_cluster
    score(spark, adult_run.path, adult_tables[1], fmt="table", output_table="lakehouse.kept")
    before = spark.read.table("lakehouse.kept").orderBy(PROBABILITY).limit(5).collect()
    broken = tmp_path / "broken-run"  # the same run with a diverged (NaN) network
    shutil.copytree(adult_run.path, broken)
    weights = torch.load(broken / "model" / "weights.pt", weights_only=True)
    torch.save({k: torch.full_like(v, float("nan")) for k, v in weights.items()}, broken / "model" / "weights.pt")
    with pytest.raises(ScoringError, match="the run's model is broken"):
        score(spark, broken, adult_tables[1], fmt="table", output_table="lakehouse.kept", table_mode="overwrite")
    assert spark.read.table("lakehouse.kept").count() == 16281
    assert spark.read.table("lakehouse.kept").orderBy(PROBABILITY).limit(5).collect() == before
    assert not [t for t in _tables(spark) if "staging" in t]
