"""The one SparkSession factory.

In a notebook or under ``spark-submit`` the active session (or the submitted
configuration) is reused. Otherwise sparkdl starts an embedded cluster with real
executor processes (``local-cluster[2,1,1024]`` by default) and waits, with a bound,
until its executors have registered.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import sys
import time
from typing import Optional

from sparkdl.config import SparkConfig

log = logging.getLogger(__name__)

_LOCAL_CLUSTER = re.compile(r"^local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]$")

#: Settings sparkdl applies unless the user (config, spark-submit or spark-defaults) set them.
DEFAULTS = {
    "spark.executorEnv.OMP_NUM_THREADS": "1",
    "spark.executorEnv.MKL_NUM_THREADS": "1",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    # Python workers fork from a daemon that has torch and Horovod imported already.
    "spark.python.daemon.module": "sparkdl.launch.worker_daemon",
    # Let HotSpot compile Spark's generated code past 8,000 bytecodes: ingest's validation of
    # a wide schema is one such method, and interpreted it took 4.9 s per million rows
    # against 2.1 s (README, Benchmarks: Prepare). A user's own extraJavaOptions add to these.
    "spark.driver.defaultJavaOptions": "-XX:-DontCompileHugeMethods",
    "spark.executor.defaultJavaOptions": "-XX:-DontCompileHugeMethods",
}


class SparkStartError(RuntimeError):
    """The embedded cluster did not come up."""


def launched_by_spark_submit() -> bool:
    """True when this Python process is the driver of a spark-submit (or pyspark shell)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _drop_stale_spark_home() -> None:
    """A SPARK_HOME from another Spark install makes pip-installed pyspark launch the wrong JVM."""
    home = os.environ.get("SPARK_HOME")
    if not home:
        return
    import pyspark

    if not glob.glob(os.path.join(home, "jars", f"spark-core_*-{pyspark.__version__}.jar")):
        log.warning("ignoring SPARK_HOME=%s: it has no Spark %s jars (using pyspark's own)", home, pyspark.__version__)
        del os.environ["SPARK_HOME"]


def expected_executors(master: str) -> Optional[int]:
    """Executors a master string promises, where it says (local-cluster[N,C,M] → N)."""
    m = _LOCAL_CLUSTER.match(master.strip())
    return int(m.group(1)) if m else None


def get_spark(cfg: Optional[SparkConfig] = None):
    """Return the active SparkSession, or start one as ``cfg`` describes."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    cfg = cfg or SparkConfig()
    builder = SparkSession.builder.appName(cfg.app_name)
    if launched_by_spark_submit():
        from pyspark import SparkConf

        submitted = SparkConf()
        settings = {k: v for k, v in {**DEFAULTS, **cfg.conf}.items() if not submitted.contains(k)}
        log.info("reusing the spark-submit configuration (master %s)", submitted.get("spark.master", "?"))
    else:
        _drop_stale_spark_home()
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        settings = dict(DEFAULTS)
        m = _LOCAL_CLUSTER.match(cfg.master.strip())
        if m:  # an executor cannot ask for more memory than its worker has
            settings["spark.executor.memory"] = f"{int(m.group(3))}m"
        settings.update(cfg.conf)
        builder = builder.master(cfg.master)
        log.info("starting Spark (master %s)", cfg.master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    t0 = time.monotonic()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.conf.get("sparkdl.log_level", "WARN"))
    want = expected_executors(spark.sparkContext.master)
    if want:
        wait_for_executors(spark, want, cfg.executor_start_timeout_s)
        log.info("Spark ready: %d executors in %.1fs", want, time.monotonic() - t0)
    return spark


def registered_executors(spark) -> int:
    """Executors currently registered with the driver (the driver itself not counted)."""
    return max(0, spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1)


def wait_for_executors(spark, want: int, timeout_s: float) -> None:
    """Block until ``want`` executors registered, then run one warm-up barrier job."""
    deadline = time.monotonic() + timeout_s
    have = registered_executors(spark)
    while have < want:
        if time.monotonic() > deadline:
            raise SparkStartError(
                f"only {have} of {want} executors registered after {timeout_s:.0f}s "
                f"(master {spark.sparkContext.master}). Check the worker logs under "
                f"{os.environ.get('SPARK_HOME', 'pyspark')}/work, the memory asked per executor, "
                "or raise spark.executor_start_timeout_s.")
        time.sleep(0.25)
        have = registered_executors(spark)
    slots = task_slots(spark)
    spark.sparkContext.parallelize(range(slots), slots).barrier().mapPartitions(lambda it: [0]).collect()


def task_slots(spark) -> int:
    """How many tasks can run at once, i.e. the largest possible barrier stage."""
    jsc = spark.sparkContext._jsc.sc()
    try:
        profile = jsc.resourceProfileManager().defaultResourceProfile()
        return int(jsc.maxNumConcurrentTasks(profile))
    except Exception:  # private API moved: fall back to the public estimate
        return int(spark.sparkContext.defaultParallelism)
