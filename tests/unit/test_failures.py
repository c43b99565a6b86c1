"""The failure policy, case by case, without Spark: where an error is classified, and
whether another attempt is made."""
import pytest

from sparkdl.core.errors import ExchangeError, FailureKind, TrainingError, TrainingTimeoutError
from sparkdl.training.launch.driver import error_from_spark
from sparkdl.training.launch.failures import (
    Decision,
    RetryPolicy,
    classify_rank_exception,
    classify_spark_failure,
    root_cause,
)


class HorovodInternalError(RuntimeError):
    """Stands in for horovod.common.exceptions.HorovodInternalError (matched by name)."""


@pytest.mark.parametrize("exc, in_user_code, kind", [
    (ValueError("bad batch"), True, FailureKind.USER),
    (EOFError("Ran out of input"), True, FailureKind.USER),  # a truncated input file is the user's to fix
    (TimeoutError("timed out reading the feature store"), True, FailureKind.USER),
    (HorovodInternalError("Horovod has been shut down"), True, FailureKind.PEER),
    (RuntimeError("[enforce fail at gloo/transport/tcp/pair.cc:446] Connection closed by peer"), True,
     FailureKind.PEER),
    (ExchangeError("rank 1 waited 60s for 'rendezvous_port' from another rank"), False, FailureKind.PEER),
    (ModuleNotFoundError("No module named 'horovod'"), False, FailureKind.USER),
    (OSError("No route to host"), False, FailureKind.INFRASTRUCTURE),
])
def test_a_rank_classifies_its_own_exception(exc, in_user_code, kind):
    assert classify_rank_exception(exc, in_user_code) is kind


def test_the_driver_classifies_what_only_spark_reported():
    assert classify_spark_failure() is FailureKind.INFRASTRUCTURE  # a lost executor, a killed worker
    assert classify_spark_failure("ZeroDivisionError: division by zero") is FailureKind.USER
    assert classify_spark_failure("HorovodInternalError: Horovod has been shut down") is FailureKind.PEER
    lost = error_from_spark(RuntimeError(
        "Job aborted due to stage failure: Task 1 in stage 3.0 failed 1 times, most recent failure: "
        "Lost task 1.0 (executor 1): ExecutorLostFailure (executor 1 exited caused by one of the running tasks) "
        "Reason: Remote RPC client disassociated."))
    assert lost.kind is FailureKind.INFRASTRUCTURE and "ExecutorLostFailure" in lost.exception


@pytest.mark.parametrize("error, attempt, decision", [
    (TrainingError(0, "ValueError: bad batch", kind=FailureKind.USER), 1, Decision.RAISE),
    (TrainingError(0, "EOFError: Ran out of input", kind=FailureKind.USER), 1, Decision.RAISE),
    (TrainingError(1, "HorovodInternalError", kind=FailureKind.PEER), 1, Decision.RETRY),
    (TrainingError(None, "ExecutorLostFailure", kind=FailureKind.INFRASTRUCTURE), 2, Decision.RETRY),
    (TrainingTimeoutError("no rank reported anything for 600s"), 1, Decision.RETRY),
    (TrainingError(None, "ExecutorLostFailure", kind=FailureKind.INFRASTRUCTURE), 3, Decision.RAISE),  # the last
])
def test_retry_policy_decides_from_the_kind_and_the_attempt(error, attempt, decision):
    policy = RetryPolicy(max_attempts=3)
    assert policy.decide(error, attempt) is decision
    assert policy.retryable(error) is (error.kind is not FailureKind.USER)


def test_one_attempt_means_no_retry_of_anything():
    assert RetryPolicy(max_attempts=1).decide(TrainingTimeoutError("x"), 1) is Decision.RAISE


def test_root_cause_is_the_earliest_by_the_ranks_own_clocks():
    late_cause = TrainingError(0, "ValueError: late", kind=FailureKind.USER, time_=105.0)
    early_cause = TrainingError(2, "KeyError: early", kind=FailureKind.USER, time_=101.0)
    symptom = TrainingError(1, "HorovodInternalError", kind=FailureKind.PEER, time_=100.0)
    assert root_cause([late_cause, symptom, early_cause]) is early_cause  # arrival order does not matter
    late_symptom = TrainingError(3, "HorovodInternalError", kind=FailureKind.PEER, time_=102.0)
    assert root_cause([late_symptom, symptom]) is symptom  # only symptoms: the earliest


def test_kind_and_time_survive_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(TrainingError(1, "HorovodInternalError", "tail", FailureKind.PEER, 42.0)))
    assert (err.rank, err.kind, err.time, err.traceback_tail) == (1, FailureKind.PEER, 42.0, "tail")
    timeout = pickle.loads(pickle.dumps(TrainingTimeoutError("waited", [1])))
    assert timeout.kind is FailureKind.TIMEOUT and timeout.missing_ranks == [1]


def test_an_allocation_that_failed_names_the_limit_and_the_fix():
    from sparkdl.training.launch.failures import memory_hint

    hint = memory_hint(MemoryError(), {"PYSPARK_EXECUTOR_MEMORY_MB": "2048"})
    assert "at most 2048 MiB (spark.executor.pyspark.memory)" in hint and "train.strategy: fsdp or pipeline" in hint
    torch_oom = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                             "you tried to allocate 67108864 bytes.")
    assert "spark.executor.pyspark.memory is unset" in memory_hint(torch_oom, {})
    assert classify_rank_exception(torch_oom, in_user_code=True) is FailureKind.USER  # no retry: it would fail again
    assert memory_hint(ValueError("bad value"), {}) == ""


def test_a_wrapped_allocation_failure_is_found_in_the_chain():
    from sparkdl.training.launch.failures import memory_hint

    try:
        try:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 16785408 bytes")
        except RuntimeError as inner:
            raise RuntimeError("\n        Failed to run stage backward:\n") from inner
    except RuntimeError as outer:
        assert "at most 512 MiB" in memory_hint(outer, {"PYSPARK_EXECUTOR_MEMORY_MB": "512"})


def test_a_crashed_worker_is_the_cause_its_peers_noticed():
    from sparkdl.training.launch.driver import _with_crash

    peer = TrainingError(1, "RuntimeError: Connection closed by peer [10.0.0.1]:1", kind=FailureKind.PEER)
    spark = RuntimeError("Job aborted due to stage failure: org.apache.spark.SparkException: Python worker exited "
                         "unexpectedly (crashed)")
    crash = _with_crash(peer, spark, "2300m")
    assert crash.kind is FailureKind.INFRASTRUCTURE and "Python worker crashed" in crash.exception
    assert "spark.executor.pyspark.memory=2300m" in crash.exception and "rank 1 saw its peer go" in crash.exception
    assert _with_crash(peer, RuntimeError("cancelled"), "2300m") is peer
    user = TrainingError(0, "ValueError: bad", kind=FailureKind.USER)
    assert _with_crash(user, spark, None) is user
