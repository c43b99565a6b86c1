from pathlib import Path

from sparkdl import synthetic
from sparkdl.config_loading import load_config
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


def test_written_files_round_trip(spark_local, tmp_path):
    path = synthetic.write_synthetic(spark_local, str(tmp_path / "raw"), 1000, seed=2, fmt="csv")
    assert spark_local.read.option("header", "true").csv(path).count() == 1000
