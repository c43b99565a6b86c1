from pathlib import Path

from sparkdl.core.config.loading import load_config
from sparkdl.preparation import synthetic
from sparkdl.workflow import prepare

CONF = Path(__file__).resolve().parents[2] / "conf" / "synthetic.yaml"


def test_same_rows_whatever_the_partitioning(spark_local):
    a = synthetic.synthetic_frame(spark_local, 2000, seed=3, partitions=1).collect()
    b = synthetic.synthetic_frame(spark_local, 2000, seed=3, partitions=7).collect()
    assert a == b
    c = synthetic.synthetic_frame(spark_local, 2000, seed=4, partitions=1).collect()
    assert a != c


def test_partitions_stay_bounded_as_rows_grow(spark_local):
    # 10 M rows in 2 partitions ran an executor with a 1 GiB heap out of memory while caching
    assert synthetic.synthetic_frame(spark_local, 10_000_000).rdd.getNumPartitions() == 20
    assert synthetic.synthetic_frame(spark_local, 1000).rdd.getNumPartitions() == 2  # local[2] parallelism


def test_label_is_learnable_and_both_classes_occur(spark_local):
    df = synthetic.synthetic_frame(spark_local, 20000, seed=1)
    pos = df.where(f"{synthetic.LABEL} = '{synthetic.CLASSES[1]}'").count() / 20000
    assert 0.2 < pos < 0.8
    # x0 carries signal: its mean differs between the classes
    means = {r[0]: r[1] for r in df.groupBy(synthetic.LABEL).avg("x0").collect()}
    assert means["pos"] - means["neg"] > 0.3


def test_synthetic_job_prepares(spark_local, tmp_path):
    cfg = load_config(CONF, ["data.options.rows=5000"])
    m = prepare(cfg, str(tmp_path / "lake"), spark=spark_local)
    assert m.rows == {"input": 5000, "accepted": 5000, "quarantined": 0}
    assert m.feature_width == 8 + sum(synthetic.CATEGORICAL.values())
    assert m.row_groups["train"] == 16  # max_ranks 4 x row_groups_per_rank 4: no group reaches 262,144 rows
    assert m.index_of("train").rows == m.splits["train"]

    capped = prepare(cfg.with_values({"materialize.max_rows_per_row_group": 200}), str(tmp_path / "lake2"),
                     spark=spark_local)
    # about 4,500 training rows in groups of at most 200: as many groups as that takes, of even sizes
    groups = [g.rows for g in capped.index_of("train").groups()]
    assert len(groups) == capped.row_groups["train"] >= -(-capped.splits["train"] // 200)
    assert max(groups) <= 200 and max(groups) - min(groups) <= 8  # no file split into a full one and a remainder


def test_written_files_round_trip(spark_local, tmp_path):
    path = synthetic.write_synthetic(spark_local, str(tmp_path / "raw"), 1000, seed=2, fmt="csv")
    assert spark_local.read.option("header", "true").csv(path).count() == 1000


def test_click_log_shape_has_zipf_ids_up_to_a_million_and_a_label_of_both_kinds(spark_local):
    from pyspark.sql import functions as F

    df = synthetic.synthetic_frame(spark_local, 50_000, seed=5, shape="clicklog").cache()
    assert df.columns == [c["name"] for c in synthetic.schema_columns("clicklog")]
    assert len(synthetic.CLICKLOG_NUMERIC) == 13 and len(synthetic.CLICKLOG_CATEGORICAL) == 26
    assert (synthetic.CLICKLOG_CATEGORICAL["c0"], synthetic.CLICKLOG_CATEGORICAL["c25"]) == (10, 1_000_000)
    top = df.groupBy("c25").count().orderBy(F.col("count").desc()).limit(3).collect()
    assert [r["c25"] for r in top] == ["c25_0", "c25_1", "c25_2"]  # Zipf: the first ids carry the most rows
    assert top[0]["count"] > 2 * top[2]["count"]
    distinct = df.agg(F.countDistinct("c0"), F.countDistinct("c25")).collect()[0]
    assert distinct[0] == 10 and 5_000 < distinct[1] < 50_000  # a long tail of rare ids
    pos = df.where(F.col("y") == "pos")
    assert 0.15 < pos.count() / 50_000 < 0.5
    # the label depends on a numeric column and on a categorical one
    means = {r[0]: r[1] for r in df.groupBy("y").avg("i0").collect()}
    assert means["pos"] - means["neg"] > 0.1
    rate = {r["c0"]: r["p"] for r in df.groupBy("c0").agg(F.avg((F.col("y") == "pos").cast("double")).alias("p"))
            .collect()}
    assert max(rate.values()) - min(rate.values()) > 0.05  # 0.29 to 0.37 at seed 5
    df.unpersist()
