"""The one SparkSession factory, and what sparkdl asks of a session (classic or Connect).

In a notebook or under ``spark-submit`` the active session (or the submitted
configuration) is reused. With ``spark.remote`` (or ``SPARK_REMOTE``) the session is a
Spark Connect client of that server. Otherwise sparkdl starts an embedded cluster with
real executor processes (``local-cluster[2,1,1024]`` by default) and waits, with a
bound, until its executors have registered.

A Connect client has no SparkContext and no JVM: the slot count and the parallelism
come from the server's configuration (:func:`known_task_slots`), never from ``_jsc``.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import sys
import threading
import time
from typing import Dict, Iterator, Optional

from sparkdl.core.config import SparkConfig
from sparkdl.core.errors import LaunchError, SparkStartError
from sparkdl.core.worker_daemon import MODEL_MODULES, PRELOAD_ENV

log = logging.getLogger(__name__)

_LOCAL_CLUSTER = re.compile(r"^local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]$")

#: Settings sparkdl applies unless the user (config, spark-submit or spark-defaults) set them.
DEFAULTS = {
    "spark.executorEnv.OMP_NUM_THREADS": "1",
    "spark.executorEnv.MKL_NUM_THREADS": "1",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    # Python workers fork from sparkdl's daemon: where a stage asks (``preloading``), it has
    # torch and Horovod imported already.
    "spark.python.daemon.module": "sparkdl.core.worker_daemon",
    # Let HotSpot compile Spark's generated code past 8,000 bytecodes: ingest's validation of
    # a wide schema is one such method, and interpreted it is more than twice as slow
    # (docs/benchmarks.md, Prepare). A user's own extraJavaOptions add to these.
    "spark.driver.defaultJavaOptions": "-XX:-DontCompileHugeMethods",
    "spark.executor.defaultJavaOptions": "-XX:-DontCompileHugeMethods",
}


#: The oldest Spark a Connect server may run: Spark ML over Connect arrived in 4.0.
MIN_CONNECT_SERVER = 4


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


def is_connect(spark) -> bool:
    """True for a Spark Connect session: no SparkContext, no RDDs, no JVM in this process."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def remote_url(cfg: Optional[SparkConfig] = None) -> Optional[str]:
    """The Connect endpoint to use: ``spark.remote``, else ``SPARK_REMOTE``."""
    return (cfg.remote if cfg else None) or os.environ.get("SPARK_REMOTE") or None


def redacted(url: str) -> str:
    """A Connect URL fit for a log line (its ``token=`` parameter hidden)."""
    return re.sub(r"(?i)(token=)[^;]*", r"\1***", url)


def get_spark(cfg: Optional[SparkConfig] = None):
    """Return the active SparkSession, or start one as ``cfg`` describes."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    cfg = cfg or SparkConfig()
    url = remote_url(cfg)
    if url and not launched_by_spark_submit():
        return connect(url, cfg)
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


def connect(url: str, cfg: SparkConfig):
    """A Spark Connect session of ``url``, answering within ``cfg.connect_timeout_s``.

    The server's cluster settings (executors, ``spark.python.daemon.module``...) are the
    server's: they are set where it starts. Session settings (``spark.sql.*``) from
    :data:`DEFAULTS` and ``spark.conf`` are applied; a setting the server refuses to change
    is logged with where to set it instead."""
    from pyspark.sql import SparkSession

    log.info("connecting to Spark Connect at %s", redacted(url))
    t0 = time.monotonic()
    spark = SparkSession.builder.remote(url).getOrCreate()
    answer: dict = {}

    def first_call() -> None:
        try:
            answer["version"] = spark.version
            answer["master"] = spark.conf.get("spark.master", "?")
        except Exception as e:  # shown below, with the URL
            answer["error"] = e

    probe = threading.Thread(target=first_call, name="sparkdl-connect-probe", daemon=True)
    probe.start()
    probe.join(cfg.connect_timeout_s)
    if "master" not in answer:
        reason = answer.get("error") or f"no answer within {cfg.connect_timeout_s:.0f}s"
        raise SparkStartError(
            f"cannot reach a Spark Connect server at {redacted(url)}: {str(reason).splitlines()[0]}. Start one "
            "with $SPARK_HOME/sbin/start-connect-server.sh (Spark's default port is 15002), check the host, port "
            "and token, or raise spark.connect_timeout_s.")
    major = int(re.match(r"\d+", answer["version"]).group())
    if major < MIN_CONNECT_SERVER:
        raise SparkStartError(
            f"the Spark Connect server at {redacted(url)} runs Spark {answer['version']}; sparkdl needs Spark "
            f"{MIN_CONNECT_SERVER}.0 or later there (Spark ML fitting and PipelineModel save/load over Connect "
            "arrived in 4.0). Upgrade the server, or run sparkdl with a classic session on that cluster.")
    for key, value in {**{k: v for k, v in DEFAULTS.items() if k.startswith("spark.sql.")}, **cfg.conf}.items():
        try:
            spark.conf.set(key, value)
        except Exception as e:  # a cluster setting: fixed when the server started
            log.warning("the Connect server keeps its own %s (%s): set it where the server starts "
                        "(start-connect-server.sh --conf %s=%s)", key, str(e).splitlines()[0][:120], key, value)
    log.info("Spark Connect session ready in %.1fs (server master %s)", time.monotonic() - t0, answer["master"])
    return spark


def registered_executors(spark) -> int:
    """Executors currently registered with the driver (the driver itself not counted)."""
    return max(0, spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1)


def wait_for_executors(spark, want: int, timeout_s: float) -> None:
    """Block until ``want`` executors registered, then run one warm-up barrier job (a
    DataFrame job, so its Python workers fork from the daemon the ETL's stages use: an RDD
    job's environment differs, and Spark would start a second daemon per executor)."""
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
    spark.range(0, slots, 1, slots).mapInArrow(_pass_through, "id long", barrier=True).collect()


def _pass_through(batches):
    yield from batches


def master_of(spark) -> str:
    """The cluster's master URL (the server's, for a Connect session)."""
    return spark.conf.get("spark.master", "?") if is_connect(spark) else spark.sparkContext.master


def known_task_slots(spark) -> Optional[int]:
    """How many tasks can run at once (the largest possible barrier stage), or None where
    a Connect server's configuration does not say."""
    if not is_connect(spark):
        jsc = spark.sparkContext._jsc.sc()
        try:
            profile = jsc.resourceProfileManager().defaultResourceProfile()
            return int(jsc.maxNumConcurrentTasks(profile))
        except Exception:  # private API moved: fall back to the public estimate
            return int(spark.sparkContext.defaultParallelism)
    return slots_from_conf(lambda key: spark.conf.get(key, None))


def slots_from_conf(get) -> Optional[int]:
    """Task slots as a cluster's settings promise them: ``local-cluster[N,C,M]``,
    ``local[K]``, executor instances x cores, or standalone's ``spark.cores.max``; each
    divided by ``spark.task.cpus``. None where they do not say."""
    master = (get("spark.master") or "").strip()
    per_task = int(get("spark.task.cpus") or 1)
    cores: Optional[int] = None
    m = _LOCAL_CLUSTER.match(master)
    local = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\d+)?\])?", master)
    if m:
        cores = int(m.group(1)) * int(m.group(2))
    elif local:
        cores = None if local.group(1) == "*" else int(local.group(1) or 1)  # '*': the server's CPUs, unknown here
    elif get("spark.executor.instances") and get("spark.executor.cores"):
        cores = int(get("spark.executor.instances")) * int(get("spark.executor.cores"))
    elif get("spark.cores.max"):
        cores = int(get("spark.cores.max"))
    return None if cores is None else max(0, cores // per_task)


def task_slots(spark) -> int:
    """How many tasks can run at once, i.e. the largest possible barrier stage."""
    slots = known_task_slots(spark)
    if slots is None:
        raise LaunchError(
            f"the Spark Connect server (master {master_of(spark)}) does not say how many task slots its cluster "
            "has (none of spark.executor.instances with spark.executor.cores, or spark.cores.max, is set): "
            "set train.ranks to the number of ranks to launch")
    return slots


def default_parallelism(spark) -> int:
    """Spark's default partition count (a Connect session's from the server's settings)."""
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    configured = spark.conf.get("spark.default.parallelism", None)
    return int(configured) if configured else max(2, known_task_slots(spark) or 2)


#: ``train.launch.release_memory``: glibc's mmap threshold fixed for the ranks' workers
#: (read when their daemon starts), so that the large buffers FSDP and the pipeline
#: schedules gather and free each step go back to the system instead of staying in the
#: arenas of the threads that freed them (glibc raises its threshold once a large block
#: is freed).
RELEASE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


@contextlib.contextmanager
def preloading(spark, modules=MODEL_MODULES, env: Optional[Dict[str, str]] = None) -> Iterator[None]:
    """Python functions that this block hands to Spark run in workers forked from a daemon
    that imported ``modules`` first (and was started with ``env`` set); all others, the
    ETL's included, from a daemon that imported nothing. Spark keeps one daemon per
    executor and environment, so the variables set here pick the daemon. A Spark Connect
    server keeps its own settings."""
    if is_connect(spark):
        yield
        return
    environment = spark.sparkContext.environment
    wanted = {PRELOAD_ENV: ",".join(modules), **(env or {})}
    before = {key: environment.get(key) for key in wanted}
    environment.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value


@contextlib.contextmanager
def job_tag(spark, tag: str) -> Iterator[None]:
    """Tag the jobs this thread starts in the block, so :func:`cancel_tagged` can stop them.

    A Connect session tags its operations; a classic one tags its SparkContext's jobs
    (and interrupts their tasks on cancel). Classic ``SparkSession.addTag`` is not used:
    in Spark 4.3 it leaves the session unserializable, and a later job whose closure holds
    the session (``LogisticRegressionModel.transform``) fails with "Task not serializable"."""
    if is_connect(spark):
        spark.addTag(tag)
        try:
            yield
        finally:
            spark.removeTag(tag)
        return
    sc = spark.sparkContext
    sc.addJobTag(tag)
    sc.setInterruptOnCancel(True)
    try:
        yield
    finally:
        sc.removeJobTag(tag)


def cancel_all(spark) -> None:
    """Cancel every running job of the session (from any thread)."""
    if is_connect(spark):
        spark.interruptAll()
    else:
        spark.sparkContext.cancelAllJobs()


def cancel_tagged(spark, tag: str) -> None:
    """Cancel the running jobs tagged ``tag`` (from any thread)."""
    if is_connect(spark):
        spark.interruptTag(tag)
    else:
        spark.sparkContext.cancelJobsWithTag(tag)
