"""Shared fixtures. Tiers are directories (unit/, integration/, cluster/, compat/, slurm/,
scale/, e2e/, hosts/); tests run in tier order so each kind of SparkSession is started once per pytest
process."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

TIERS = ["unit", "integration", "cluster", "compat", "slurm", "scale", "e2e", "hosts"]
REPO = Path(__file__).resolve().parent.parent

#: Every JVM the tests start (drivers, executors, Connect servers, standalone daemons, in
#: this process and the ones it starts) lives seconds to minutes on small data, where
#: HotSpot's optimizing compiler costs more than it returns: C1 alone (docs/development.md,
#: "Test time"). sparkdl's own defaults are unchanged; a value set in the environment wins.
os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1")


def pytest_collection_modifyitems(config, items):
    def tier(item):
        parts = Path(str(item.fspath)).relative_to(REPO / "tests").parts
        return parts[0] if parts and parts[0] in TIERS else "unit"

    for item in items:
        item.add_marker(getattr(pytest.mark, tier(item)))
    items.sort(key=lambda it: TIERS.index(tier(it)))


def _session(master: str, **conf):
    from pyspark.sql import SparkSession

    from sparkdl.core.config import SparkConfig
    from sparkdl.core.session import get_spark

    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master != master:
        active.stop()
    base = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "4",
            "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
            # managed tables (tests of data.format: table) live here, not in the working directory
            "spark.sql.warehouse.dir": tempfile.mkdtemp(prefix="sparkdl-test-warehouse-")}
    base.update(conf)
    return get_spark(SparkConfig(master=master, app_name="sparkdl-tests", conf=base))


@pytest.fixture(autouse=True)
def _ship_test_module_by_value(request):
    """Executors cannot import test modules: send functions defined in them by value."""
    from pyspark import cloudpickle

    module = sys.modules.get(request.module.__name__)
    if module is not None:
        cloudpickle.register_pickle_by_value(module)


@pytest.fixture(scope="session")
def spark_local():
    """Spark in local[2] mode (integration tier)."""
    spark = _session("local[2]")
    yield spark


@pytest.fixture(scope="session")
def spark_cluster():
    """local-cluster[2,1,1024]: two real executor JVMs with one core each (cluster tier)."""
    spark = _session("local-cluster[2,1,1024]")
    yield spark
    spark.stop()  # an embedded cluster torn down by interpreter exit relaunches executors noisily


@pytest.fixture(scope="module")
def spark_at_scale():
    """local-cluster[2,1,1024] with HotSpot's optimizing compiler back on (scale tier): jobs of
    minutes on a million rows, where it returns what it costs; stopped after the module. In
    a process that has the cluster tier's session already, that one."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master == "local-cluster[2,1,1024]":
        yield active
        return
    both = "-XX:TieredStopAtLevel=4"  # after JAVA_TOOL_OPTIONS on the command line, so it wins
    spark = _session("local-cluster[2,1,1024]", **{"spark.driver.extraJavaOptions": both,
                                                    "spark.executor.extraJavaOptions": both})
    yield spark
    spark.stop()


@pytest.fixture
def lake(tmp_path) -> Path:
    path = tmp_path / "lake"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def adult_config():
    from sparkdl.core.config.loading import load_config

    return load_config(REPO / "conf" / "adult.yaml")


@pytest.fixture(scope="session")
def adult_lake(spark_cluster, adult_config, tmp_path_factory):
    """A lake holding the prepared Adult dataset (prepared once per test session)."""
    from sparkdl.workflow import prepare

    lake = tmp_path_factory.mktemp("adult-lake")
    manifest = prepare(adult_config, str(lake), spark=spark_cluster)
    return lake, manifest


@pytest.fixture(scope="session")
def adult_run(spark_cluster, adult_config, adult_lake):
    """A 4-epoch, 2-rank run on the prepared Adult dataset."""
    from sparkdl.workflow import train

    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 4, "train.ranks": 2})
    return train(cfg, str(lake), spark=spark_cluster, manifest=manifest)


@pytest.fixture(scope="session", params=("horovod", "torch"))
def backend(request) -> str:
    """Each training backend in turn (``train.backend``)."""
    return request.param


@pytest.fixture(scope="session")
def backend_run(backend, adult_run, spark_cluster, adult_config, adult_lake):
    """``adult_run``'s job on each backend (the Horovod one is ``adult_run`` itself)."""
    from sparkdl.workflow import train

    if backend == "horovod":
        return adult_run
    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 4, "train.ranks": 2, "train.backend": backend})
    return train(cfg, str(lake), spark=spark_cluster, manifest=manifest)
