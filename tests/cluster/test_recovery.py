"""Recovery: a lost worker or a crash mid-checkpoint is retried from the last complete
checkpoint; a deterministic bug is not; the lake never shows an incomplete run."""
import time

import pytest

from sparkdl.core.errors import TrainingError
from sparkdl.core.lake import Lake
from sparkdl.testing.faults import FaultSpec
from sparkdl.workflow import train


def _epochs(metrics):
    return [h["epoch"] for h in metrics.history]


def test_sigkilled_worker_resumes_and_matches_an_uninterrupted_run(spark_cluster, adult_config, adult_lake,
                                                                    backend, backend_run, tmp_path):
    """On each backend; ``backend_run`` is the same config and seed, uninterrupted."""
    uninterrupted = backend_run
    lake, manifest = adult_lake
    t0 = time.monotonic()
    cfg = adult_config.with_values({"train.epochs": 4, "train.ranks": 2, "train.backend": backend})
    result = train(cfg, str(tmp_path / "lake"), spark=spark_cluster, manifest=manifest,
                   callbacks=[FaultSpec(rank=1, epoch=3, step=20, mode="kill")])
    m = result.metrics
    assert _epochs(m) == [1, 2, 3, 4]  # no gap, no duplicate
    assert [h["attempt"] for h in m.history] == [1, 1, 2, 2]
    assert len(m.attempts) == 2
    assert m.attempts[0]["error"] and m.attempts[0]["retryable"]
    assert m.attempts[1]["resumed_from_epoch"] == 2 and m.attempts[1]["error"] is None
    assert abs(m.validation["accuracy"] - uninterrupted.metrics.validation["accuracy"]) <= 0.01
    print(f"\nrecovery: failed attempt {m.attempts[0]['seconds']}s, resumed attempt "
          f"{m.attempts[1]['seconds']}s, whole run {time.monotonic() - t0:.1f}s "
          f"(uninterrupted {uninterrupted.metrics.train['seconds']}s)")


def test_crash_while_writing_a_checkpoint_keeps_the_previous_one(spark_cluster, adult_config, adult_lake, tmp_path):
    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 3, "train.ranks": 2})
    result = train(cfg, str(tmp_path / "lake"), spark=spark_cluster, manifest=manifest,
                   callbacks=[FaultSpec(rank=0, epoch=2, mode="checkpoint")])
    m = result.metrics
    assert m.attempts[1]["resumed_from_epoch"] == 1  # epoch 2's checkpoint never became visible
    assert _epochs(m) == [1, 2, 3]
    assert [h["attempt"] for h in m.history] == [1, 2, 2]
    assert sorted(p.name for p in (result.path / "checkpoints").glob("epoch-*.pt")) == \
        ["epoch-0001.pt", "epoch-0002.pt", "epoch-0003.pt"]


def test_a_deterministic_bug_fails_once_with_its_own_traceback(spark_cluster, adult_config, adult_lake, tmp_path):
    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 2, "train.ranks": 2, "train.failure.max_attempts": 3})
    with pytest.raises(TrainingError) as e:
        train(cfg, str(tmp_path / "lake"), spark=spark_cluster, manifest=manifest,
              callbacks=[FaultSpec(rank=0, epoch=1, step=3, mode="raise")])
    assert len(e.value.attempts) == 1 and e.value.attempts[0]["retryable"] is False
    assert e.value.rank == 0 and "InjectedFault" in e.value.exception and "at_step" in e.value.traceback_tail


def test_attempts_run_out_the_run_is_kept_and_the_same_job_continues_it(spark_cluster, adult_config, adult_lake,
                                                                         tmp_path, caplog):
    """Every attempt fails in epoch 3: no run is committed, but the staging run stays with
    its checkpoints and why it failed. Its newest checkpoint is then truncated: the same job
    again, on 1 rank instead of 2, continues the run under its id from the one before, says
    so, and records it."""
    from sparkdl.training.resume import stale_runs

    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 4, "train.ranks": 2, "train.failure.max_attempts": 2})
    with pytest.raises(TrainingError) as e:  # the worker dies on every attempt
        train(cfg, str(tmp_path / "lake"), spark=spark_cluster, manifest=manifest,
              callbacks=[FaultSpec(rank=1, epoch=3, step=2, mode="exit", attempt=0)])
    assert len(e.value.attempts) == 2 and e.value.attempts[1]["resumed_from_epoch"] == 2
    runs = Lake(str(tmp_path / "lake"))
    [kept] = stale_runs(runs)
    assert runs.list_runs() == [] and (kept.outcome, kept.epochs_done, kept.resumable) == ("failed", 2, True)
    assert kept.error.startswith("TrainingError: rank") and "Python worker crashed" in kept.error
    newest = kept.path / "checkpoints" / "epoch-0002.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # torn by something outside sparkdl
    result = train(cfg.with_values({"train.ranks": 1}), str(tmp_path / "lake"), spark=spark_cluster,
                   manifest=manifest)
    m = result.metrics
    assert result.run_id == kept.run_id and m.attempts[0]["resumed_from_epoch"] == 1
    assert [a["ranks"] for a in e.value.attempts + m.attempts] == [2, 2, 1] and m.train["ranks"] == 1
    assert [h.get("rows_per_rank") and len(h["rows_per_rank"]) for h in m.history] == [2, 1, 1, 1]
    assert m.validation["accuracy"] > 0.84 and m.train["earlier_stops"][0]["outcome"] == "failed"
    assert m.attempts[0]["skipped_checkpoints"][0].startswith("epoch-0002.pt: unreadable")
    assert any("epoch-0002.pt: unreadable" in r.message and r.levelname == "WARNING" for r in caplog.records)
    assert _epochs(m) == [1, 2, 3, 4] and [h["attempt"] for h in m.history][1:] == [1, 1, 1]
    assert stale_runs(runs) == [] and runs.list_runs() == [result.path]


def _executors(spark):
    """The executors' (host, port) as Spark's status tracker lists them (the driver included)."""
    return {(e.host(), e.port()) for e in spark.sparkContext._jsc.sc().statusTracker().getExecutorInfos()}


def test_a_killed_executor_jvm_is_replaced_and_training_resumes(spark_cluster, adult_config, adult_lake, tmp_path):
    """SIGKILL the whole executor JVM of rank 1 mid-epoch: the cluster's worker starts a
    replacement executor, and the next attempt resumes from the last checkpoint on it."""
    lake, manifest = adult_lake
    before = _executors(spark_cluster)
    cfg = adult_config.with_values({"train.epochs": 3, "train.ranks": 2})
    result = train(cfg, str(tmp_path / "lake"), spark=spark_cluster, manifest=manifest,
                   callbacks=[FaultSpec(rank=1, epoch=2, step=10, mode="executor")])
    m = result.metrics
    assert _epochs(m) == [1, 2, 3] and [h["attempt"] for h in m.history] == [1, 2, 2]
    assert m.attempts[0]["kind"] in ("peer", "infrastructure") and m.attempts[0]["retryable"]
    assert m.attempts[1]["resumed_from_epoch"] == 1
    after = _executors(spark_cluster)
    assert len(after - before) == 1 and len(after) == len(before), f"no replacement executor: {before} -> {after}"
