"""Driver side of the barrier stage: check slots, launch, watch, and translate failures.

``run_on_ranks`` runs ``fn(RankContext)`` on N ranks (Horovod or torch.distributed)
inside ONE barrier-mode Spark stage and returns each rank's (small) result. While the stage runs, the driver
logs the ranks' events as they arrive and enforces the bounds of ``train.launch``: every
rank must start within ``start_timeout_s``, some rank must report within
``progress_timeout_s``, and a failing rank ends the whole stage at once as a
:class:`TrainingError` naming that rank.

The same code drives a classic session and a Spark Connect client: the stage is
``DataFrame.mapInArrow(..., barrier=True)`` and it is cancelled through a job tag. A
Connect client is not Spark's driver and executors may not reach it, so its ranks share
launch values through Spark (``allGather``) and, where they cannot connect, write their
events to a spool in the lake that the client follows.
"""
from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from sparkdl.core.config import LaunchConfig
from sparkdl.core.errors import FailureKind, LaunchError, TrainingError, TrainingTimeoutError
from sparkdl.core.spark_errors import python_traceback_tail
from sparkdl.training.launch.events import Event, EventServer, EventType
from sparkdl.training.launch.exchange import THROUGH_DRIVER, THROUGH_SPARK
from sparkdl.training.launch.failures import MEMORY_FIX, classify_spark_failure, root_cause
from sparkdl.training.launch.plan import route_address
from sparkdl.training.launch.reachability import Endpoint, executor_endpoints, known_endpoints, network_note
from sparkdl.training.launch.task import RESULT_SCHEMA, LaunchSettings, RankContext, run_barrier_task

log = logging.getLogger(__name__)

EventHandler = Callable[[Event], None]


def log_event(event: Event) -> None:
    """Default event handler: one log line per event."""
    rank = event.rank
    if event.type is EventType.LOG:
        level = logging.WARNING if event.get("level") == "warning" else logging.INFO
        log.log(level, "rank %s: %s", rank, event.get("message"))
    elif event.type is EventType.STARTED:
        log.info("rank %s started on %s (partition %s, pid %s)%s", rank, event.get("host"), event.get("partition"),
                 event.get("pid"), "; it cannot connect here, so its events come through the lake's spool"
                 if event.get("spooled") else "")
    elif event.type not in (EventType.DONE, EventType.ERROR):
        fields = " ".join(f"{k}={v}" for k, v in event.fields.items())
        log.info("rank %s %s %s", rank, event.type.value, fields)


def driver_addresses(spark, launch: LaunchConfig = LaunchConfig()) -> Tuple[str, str]:
    """(address to listen on, address executors reach it at). A classic driver uses Spark's
    own (executors reach it already); a Connect client listens everywhere and gives
    ``train.launch.event_host``, or its own address on the route to the server."""
    from sparkdl.core.session import is_connect

    if is_connect(spark):
        return "0.0.0.0", launch.event_host or client_address(spark)
    host = launch.event_host or spark.conf.get("spark.driver.host", "127.0.0.1")
    return spark.conf.get("spark.driver.bindAddress", None) or host, host


def client_address(spark) -> str:
    """This machine's address on its route to the Connect server (no packet is sent)."""
    try:
        builder = spark.client._builder  # the channel the session was built with
        server = (builder.host, int(builder._port or 15002))
    except (AttributeError, TypeError, ValueError):
        return socket.gethostbyname(socket.gethostname())
    return route_address(*server)


def check_slots(spark, num_ranks: int, wait_s: float = 0.0) -> int:
    """Wait up to ``wait_s`` for ``num_ranks`` concurrent task slots (executors of a real
    cluster register after the driver starts); raise LaunchError saying how many exist.
    A Connect server that does not say how many it has is trusted with ``num_ranks``."""
    from sparkdl.core.session import known_task_slots, master_of

    deadline = time.monotonic() + wait_s
    slots = known_task_slots(spark)
    if slots is None:
        log.info("the cluster does not say how many task slots it has; launching %d ranks (a stage larger than the "
                 "cluster is stopped after train.launch.start_timeout_s)", num_ranks)
        return num_ranks
    while slots < num_ranks and time.monotonic() < deadline:
        time.sleep(0.5)
        slots = known_task_slots(spark) or 0
    if num_ranks > slots:
        fix = f"lower train.ranks to {slots} or add executors/cores" if slots else "start executors"
        raise LaunchError(
            f"{num_ranks} ranks need {num_ranks} concurrent task slots, but the cluster has {slots} "
            f"(master {master_of(spark)}{f', after waiting {wait_s:.0f}s' if wait_s else ''}). "
            f"A barrier stage starts all its tasks at once: {fix}.{network_note(known_endpoints(spark))}")
    return slots


def error_from_spark(exc: BaseException) -> TrainingError:
    """Turn a Spark/Py4J job failure into a TrainingError: the Python traceback tail when
    there is one, otherwise Spark's own failure lines (lost executor, crashed worker)."""
    text = str(exc)
    tail = python_traceback_tail(text)
    if tail:
        exception = tail.splitlines()[-1]
        return TrainingError(None, exception, tail, classify_spark_failure(exception))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("\tat ", "at "))]
    reasons = [ln for ln in lines if any(w in ln for w in ("Exception", "Failure", "Reason", "exited", "Error"))]
    summary = reasons[-1] if reasons else (lines[0] if lines else repr(exc))
    return TrainingError(None, summary[:500], "\n".join(reasons[-8:]), classify_spark_failure())


class _StageRunner(threading.Thread):
    """Runs the barrier stage in its own thread under a job tag, so it can be cancelled."""

    def __init__(self, spark, tag: str, n: int, task: Callable, env: Optional[Dict[str, str]] = None):
        super().__init__(name="sparkdl-barrier-stage", daemon=True)
        self.spark, self.tag, self.n, self.task, self.env = spark, tag, n, task, env
        self.result: Optional[list] = None
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        from sparkdl.core.session import job_tag, preloading

        try:
            with job_tag(self.spark, self.tag):  # tags belong to the thread that adds them
                with preloading(self.spark, env=self.env):
                    stage = self.spark.range(0, self.n, 1, self.n).mapInArrow(self.task, RESULT_SCHEMA,
                                                                               barrier=True)
                self.result = stage.collect()
        except BaseException as e:  # reported by the watcher
            self.error = e

    def failure(self) -> TrainingError:
        """The error when no rank reported one: Spark's."""
        return error_from_spark(self.error)

    def results(self) -> List[Any]:
        return results_by_rank(self.result or [], self.n)

    def cancel(self) -> None:
        """Interrupt the stage (its tasks are killed, their Python workers with them)."""
        from sparkdl.core.session import cancel_tagged

        try:
            cancel_tagged(self.spark, self.tag)
        except Exception as e:  # the session itself is going away
            log.warning("could not cancel the barrier stage %s: %s", self.tag, e)


def results_by_rank(rows, n: int) -> List[Any]:
    """Each rank's result, unpickled from its ``RESULT_SCHEMA`` rows."""
    import cloudpickle

    parts: dict = {}
    for row in rows:
        parts.setdefault(row["rank"], []).append((row["part"], bytes(row["chunk"])))
    return [cloudpickle.loads(b"".join(chunk for _, chunk in sorted(parts[r]))) for r in range(n)]


def run_on_ranks(spark, fn: Callable[[RankContext], Any], num_ranks: Optional[int] = None,
                 launch: LaunchConfig = LaunchConfig(), on_event: EventHandler = log_event,
                 attempt: int = 1, backend: str = "horovod", strategy: str = "ddp",
                 spool: Optional[str] = None) -> List[Any]:
    """Run ``fn`` on every rank of one barrier stage (or of the launcher that
    ``launch.launcher`` names), each rank joined to the others by ``backend`` (``horovod``
    or ``torch``); return results ordered by rank. ``spool``: a directory every executor
    can write (in the lake) for the events of ranks that cannot reach this process."""
    from sparkdl.core.session import RELEASE_MEMORY_ENV, expected_executors, is_connect, master_of, task_slots

    by_spark = launch.launcher == "spark"
    token = secrets.token_hex(16)
    tag = f"sparkdl-{token[:12]}"
    env = RELEASE_MEMORY_ENV if launch.release_memory else None
    if by_spark:
        n = num_ranks or task_slots(spark)
        check_slots(spark, n, wait_s=0.0 if expected_executors(master_of(spark)) else launch.start_timeout_s)
        bind, advertise = driver_addresses(spark, launch)
        executors = executor_endpoints(spark)  # where the ranks will run, named if they never start
    else:
        from sparkdl.training.launch.processes import ProcessRunner, default_ranks, event_addresses

        n, executors = num_ranks or default_ranks(launch.launcher), ()
        bind, advertise = event_addresses(launch.launcher, launch.event_host)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(EventServer(bind, token, advertise, spool=spool))
        settings = LaunchSettings(server.address, token, launch, attempt, backend, strategy,
                                  THROUGH_SPARK if by_spark and is_connect(spark) else THROUGH_DRIVER, spool)
        if by_spark:
            runner = _StageRunner(spark, tag, n, partial(run_barrier_task, fn, settings), env=env)
        else:
            import cloudpickle

            # the ranks' work directory: in the run's spool (shared with other hosts, removed with it)
            work = Path(spool) / "launch" if spool else Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="sparkdl-launch-")))
            payload = cloudpickle.dumps((fn, settings))
            if launch.launcher == "ray":
                from sparkdl.training.launch.ray_trainer import RayRunner

                runner = RayRunner(n, work, payload, env)
            else:
                runner = ProcessRunner(launch.launcher, n, work, payload, launch.launcher_restarts, env)
        t0 = time.monotonic()
        runner.start()
        log.info("launched %d %s ranks %s (attempt %d)", n, backend,
                 "in one barrier stage" if by_spark else f"with {launch.launcher}", attempt)
        try:
            failure = _watch(runner, server, n, launch, on_event, t0, executors,
                             until_exit=launch.launcher_restarts > 0)
        except BaseException:  # Ctrl-C, SIGTERM, a broken watch: the ranks stop before the run is let go
            _stop(runner, launch.cancel_grace_s)
            raise
        if failure is not None:
            raise _with_crash(failure, runner.error, _python_memory_limit(spark)) if by_spark else failure
        return runner.results()


def _stop(runner, grace_s: float) -> None:
    """Cancel the ranks and wait for them, bounded; a second Ctrl-C stops the wait."""
    if not runner.is_alive():
        return
    log.warning("stopping the ranks (waiting up to %.0fs)", grace_s)
    try:
        runner.cancel()
        runner.join(grace_s)
    except BaseException as e:  # the first interruption is the one to report
        log.warning("stopping the ranks was cut short: %r", e)
        return
    if runner.is_alive():
        log.warning("the ranks did not stop within %.0fs of being cancelled", grace_s)


#: After the first rank error, how long the driver keeps listening for the others, so the
#: root cause (the earliest by the ranks' own clocks) is among those it compares.
ERROR_COLLECTION_S = 1.5


def _python_memory_limit(spark) -> Optional[str]:
    try:
        return spark.conf.get("spark.executor.pyspark.memory", None)
    except Exception:  # a Connect server that will not say
        return None


def _with_crash(failure: TrainingError, spark_error: Optional[BaseException], limit: Optional[str]) -> TrainingError:
    """When the ranks' errors are only peers noticing one went away, and Spark says a
    Python worker crashed, the crash is the cause; under a Python memory limit it is most
    often the limit, and the error says so."""
    if failure.kind is not FailureKind.PEER or spark_error is None:
        return failure
    crash = error_from_spark(spark_error)
    if crash.kind is not FailureKind.INFRASTRUCTURE or "exited unexpectedly" not in str(spark_error):
        return failure
    note = (f"; under spark.executor.pyspark.memory={limit} a worker that crashes has most often run out of it: "
            f"{MEMORY_FIX}" if limit else "")
    return TrainingError(failure.rank, f"a Python worker crashed ({crash.exception}){note}; rank {failure.rank} saw "
                         f"its peer go: {failure.exception}", crash.traceback_tail, FailureKind.INFRASTRUCTURE,
                         failure.time)


def _error_from_event(event: Event) -> TrainingError:
    try:
        kind = FailureKind(event.get("kind", FailureKind.USER.value))
    except ValueError:
        kind = FailureKind.USER
    return TrainingError(event.rank, event.get("exception", "?"), event.get("traceback", ""), kind, event.time)


def _watch(runner, server: EventServer, n: int, launch: LaunchConfig, on_event: EventHandler, t0: float,
           executors: Iterable[Endpoint] = (), until_exit: bool = False) -> Optional[TrainingError]:
    """Consume events until the stage ends; return the error to raise, if any.
    ``until_exit``: the launcher restarts failed ranks itself, so a rank's error ends the
    watch only if the launcher then exits failing; a later attempt's start forgets it."""
    started: set = set()
    errors: List[TrainingError] = []
    last_event = time.monotonic()
    failure: Optional[TrainingError] = None
    first_error_at: Optional[float] = None
    attempt = 0

    def handle(event: Event) -> None:
        nonlocal first_error_at, attempt, t0
        if event.type is EventType.STARTED:
            if event.get("attempt", 0) > attempt:
                if attempt:  # the launcher restarted the ranks: they have the start bound again
                    t0 = time.monotonic()
                attempt = event.get("attempt", 0)
                started.clear()
                errors.clear()
            started.add(event.rank)
        elif event.type is EventType.ERROR and event.get("attempt", attempt) < attempt:
            log.info("rank %s's error from attempt %s came after its restart: %s", event.rank, event.get("attempt"),
                     event.get("exception"))
            return
        elif event.type is EventType.ERROR:
            errors.append(_error_from_event(event))
            first_error_at = first_error_at or time.monotonic()
            if until_exit:
                log.warning("rank %s failed in attempt %s (%s); %s restarts the ranks if it has restarts left",
                            event.rank, attempt, errors[-1].exception, launch.launcher)
        try:
            on_event(event)
        except Exception:  # a broken handler must not break training
            log.exception("event handler failed on %s", event)

    while True:
        event = server.get(timeout=0.2)
        now = time.monotonic()
        if event is not None:
            last_event = now
            handle(event)
        if errors and not until_exit and (now - first_error_at > ERROR_COLLECTION_S or len(errors) == n):
            failure = root_cause(errors)
            break
        if not runner.is_alive():
            # what the ranks sent before the stage ended is still owed to the handler (a slow
            # one, such as a remote tracking server, may be several events behind)
            while (event := server.get(timeout=0.1)) is not None:
                handle(event)
            if errors and (runner.error is not None or not until_exit):
                failure = root_cause(errors)
            break
        if len(started) < n and now - t0 > launch.start_timeout_s:
            missing = sorted(set(range(n)) - started)
            failure = TrainingTimeoutError(
                f"{len(started)} of {n} ranks started within {launch.start_timeout_s:.0f}s; still waiting for "
                f"rank(s) {missing}. Check that the cluster has {n} free slots and that executors can reach "
                f"the driver at {server.address}; raise train.launch.start_timeout_s if startup is slow."
                f"{network_note(executors)}", missing)
            break
        if len(started) == n and now - last_event > launch.progress_timeout_s:
            failure = TrainingTimeoutError(
                f"no rank reported anything for {launch.progress_timeout_s:.0f}s (a hung collective or a stuck "
                f"reader?). Raise train.launch.progress_timeout_s if epochs are legitimately that long.")
            break
    if failure is not None or runner.error is not None:
        if runner.is_alive():
            runner.cancel()
            runner.join(launch.cancel_grace_s)
            if runner.is_alive():
                log.warning("the barrier stage did not stop within %.0fs of being cancelled", launch.cancel_grace_s)
        # Drain: a rank's own error report usually arrives just before Spark's failure.
        deadline = time.monotonic() + 2.0
        while failure is None and time.monotonic() < deadline:
            event = server.get(timeout=0.1)
            if event is not None and event.type is EventType.ERROR:
                failure = _error_from_event(event)
        if failure is None:
            failure = runner.failure()
    return failure
