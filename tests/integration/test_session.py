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


def test_preloading_sets_the_daemon_environment_for_its_block_only(spark_local):
    from sparkdl.core.session import RELEASE_MEMORY_ENV, preloading
    from sparkdl.core.worker_daemon import PRELOAD_ENV

    environment = spark_local.sparkContext.environment
    environment["MALLOC_MMAP_THRESHOLD_"] = "65536"  # a user's own setting comes back after the block
    try:
        with preloading(spark_local, env=RELEASE_MEMORY_ENV):
            assert environment["MALLOC_MMAP_THRESHOLD_"] == "131072" and environment[PRELOAD_ENV]
            assert spark_local.range(4).mapInArrow(lambda batches: batches, "id long").count() == 4
        assert PRELOAD_ENV not in environment and environment["MALLOC_MMAP_THRESHOLD_"] == "65536"
    finally:
        environment.pop("MALLOC_MMAP_THRESHOLD_", None)
