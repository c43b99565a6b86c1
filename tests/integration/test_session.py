from sparkdl.core.config import SparkConfig
from sparkdl.core.session import DEFAULTS, expected_executors, get_spark, task_slots


def test_active_session_is_reused(spark_local):
    assert get_spark(SparkConfig(master="local[1]")) is spark_local


def test_defaults_applied_and_slots_counted(spark_local):
    conf = spark_local.sparkContext.getConf()
    for key, value in DEFAULTS.items():
        assert conf.get(key) == value, key
    assert task_slots(spark_local) == 2


def test_expected_executors_from_master():
    assert expected_executors("local-cluster[3, 1, 512]") == 3
    assert expected_executors("spark://host:7077") is None
