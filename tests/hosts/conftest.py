"""The multi-host tier: hosts in network namespaces on one machine (``testbed.py``).

Where namespaces cannot be made (not root), the tier is skipped with the reason; under
``CI`` that is a failure, so a CI machine that lost the privilege cannot pass silently.
"""

import pytest

from tests.hosts.spark_hosts import SparkHosts, succeeded
from tests.hosts.testbed import Testbed, TestbedUnavailable, check_permitted
from tests.tiers import unavailable

#: The cluster the job and fault tests share (``spare`` joins for the test that needs it):
#:
#:     driver, stranger, worker1, spare ── lan (198.18.0.0/24) ── master, worker2
#:     client ── side (198.19.0.0/24) ── master          worker2 ── backup (198.18.1.0/24)
#:
#: worker2 has two interfaces, its Spark address on the second; the workers have no route
#: to the client.
CLUSTER = (("driver", ("lan",)), ("master", ("lan", "side")), ("worker1", ("lan",)), ("worker2", ("backup", "lan")),
           ("spare", ("lan",)), ("stranger", ("lan",)), ("client", ("side",)))
WORKERS = ["worker1", "worker2"]


@pytest.fixture(scope="session")
def hosts_permitted():
    try:
        check_permitted()
    except TestbedUnavailable as e:
        unavailable("multi-host", str(e))


@pytest.fixture(scope="module")
def bed(hosts_permitted):
    """One testbed per test module, torn down whatever happens."""
    with Testbed() as testbed:
        yield testbed


@pytest.fixture(scope="session")
def cluster(hosts_permitted, tmp_path_factory):
    """A standalone Spark cluster across hosts: (SparkHosts, hosts by name, work directory)."""
    work = tmp_path_factory.mktemp("hosts-cluster")
    with Testbed() as testbed:
        hosts = {name: testbed.host(name, nets) for name, nets in CLUSTER}
        spark = SparkHosts(testbed, work)
        spark.start_master(hosts["master"])
        for name in WORKERS:
            spark.start_worker(hosts[name])
        spark.wait_for_workers(WORKERS)
        yield spark, hosts, work


@pytest.fixture(scope="session")
def runs(cluster):
    """``sparkdl run conf/adult.yaml`` (2 epochs) by spark-submit from the driver host, once
    per backend, into the cluster's lake: {backend: the run's key=value lines and log}."""
    spark, hosts, work = cluster
    out = {}
    for backend in ("horovod", "torch"):
        out[backend] = succeeded(spark.submit(hosts["driver"], "etl_train.py", "conf/adult.yaml", "--lake",
                                              str(work / "lake"), "--set", "train.epochs=2", "--set",
                                              f"train.backend={backend}", "--set", "progress.lines_every_s=1",
                                              "--set", "tracking.mlflow=off"),
                                 f"the {backend} job")
    return out
