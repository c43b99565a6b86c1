"""Which abandoned runs resume, which are stale, and the lock that tells them apart."""
import json
import subprocess
import sys

import pytest

from sparkdl.core.config.loading import parse_config
from sparkdl.core.lake import Lake
from sparkdl.core.rundir import RunDir
from sparkdl.preparation.materialize import Manifest
from sparkdl.training.rank.checkpoints import save_checkpoint
from sparkdl.training.resume import RunLock, config_fingerprint, find_resumable, remove_stale, stale_runs
from tests.unit.test_config import MINIMAL


def _dataset(path):
    path.mkdir(parents=True)
    Manifest(name="job", dataset_id=path.name, created="now", rows={}, splits={}, row_groups={}, feature_width=3,
             feature_names=[], label={}, schema_hash="h", paths={"dataset": str(path)}).save(path / "manifest.json")
    return path


def _staging(lake, run_id, cfg, dataset, epochs=2, info=True):
    run = RunDir(lake.runs_root / f".staging-{run_id}")
    run.path.mkdir(parents=True)
    for epoch in range(1, epochs + 1):
        save_checkpoint(run.checkpoints, epoch, {"x": epoch})
    if info:
        run.resume_info.write_text(json.dumps({"job": cfg.name, "fingerprint": config_fingerprint(cfg),
                                               "dataset": str(dataset)}))
    return run


def test_the_newest_abandoned_run_of_the_same_config_resumes_and_the_rest_are_stale(tmp_path):
    cfg = parse_config(MINIMAL)
    lake = Lake(str(tmp_path / "lake"))
    data = _dataset(tmp_path / "lake" / "datasets" / "job" / "d1")
    _staging(lake, "job-20260101-000000-aaaaaa", cfg, data)  # superseded by the newer one below
    _staging(lake, "job-20260102-000000-bbbbbb", cfg, data, epochs=3)  # resumes
    _staging(lake, "job-20260103-000000-cccccc", cfg, tmp_path / "gone")  # its dataset was removed
    _staging(lake, "job-20260104-000000-dddddd", cfg, data, info=False)  # died before writing resume.json
    running = _staging(lake, "job-20260105-000000-eeeeee", cfg, data)
    lock = RunLock(running)
    assert lock.acquire()  # a live driver: never listed, never resumed, never removed
    try:
        stale = {s.run_id[-6:]: s for s in stale_runs(lake)}
        assert set(stale) == {"aaaaaa", "bbbbbb", "cccccc", "dddddd"}
        assert [k for k, s in stale.items() if s.resumable] == ["bbbbbb"] and stale["bbbbbb"].epochs_done == 3
        assert "newer abandoned run" in stale["aaaaaa"].why and "is gone" in stale["cccccc"].why
        run_id, manifest = find_resumable(lake, cfg)
        assert run_id.endswith("bbbbbb") and manifest.dataset_id == "d1"
        assert find_resumable(lake, cfg.with_values({"train.epochs": 3})) is None  # another configuration
        for same_run in ({"train.launch.start_timeout_s": 5}, {"progress.display": "lines"},
                         {"tracking.uri": "http://127.0.0.1:5000"}, {"train.ranks": 3}):  # on another world too
            assert find_resumable(lake, cfg.with_values(same_run)) is not None
        assert sorted(s.run_id[-6:] for s in remove_stale(lake)) == ["aaaaaa", "cccccc", "dddddd"]
        assert [s.run_id[-6:] for s in remove_stale(lake, include_resumable=True)] == ["bbbbbb"]
        assert [p.name[-6:] for p in lake.runs_root.iterdir()] == ["eeeeee"]
    finally:
        lock.release()


def test_a_run_staged_when_the_ranks_were_in_its_fingerprint_still_resumes(tmp_path):
    cfg = parse_config(MINIMAL).with_values({"train.ranks": 2})
    lake = Lake(str(tmp_path / "lake"))
    run = _staging(lake, "job-20260101-000000-aaaaaa", cfg, _dataset(tmp_path / "d1"))
    info = json.loads(run.resume_info.read_text())
    run.resume_info.write_text(json.dumps({**info, "fingerprint": config_fingerprint(cfg, with_ranks=True)}))
    assert config_fingerprint(cfg, with_ranks=True) != config_fingerprint(cfg)
    assert find_resumable(lake, cfg)[0].endswith("aaaaaa")
    assert find_resumable(lake, cfg.with_values({"train.ranks": 1})) is None  # its old print holds 2 ranks


def test_the_lock_is_free_once_its_holder_dies(tmp_path):
    run = RunDir(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from sparkdl.training.resume import RunLock
from sparkdl.core.rundir import RunDir
lock = RunLock(RunDir(__import__('pathlib').Path({str(tmp_path)!r})))
assert lock.acquire()
print('locked', flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert not RunLock(run).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(run)
    assert lock.acquire()  # SIGKILL released it
    lock.release()


def test_a_driver_taking_its_run_waits_out_another_drivers_look_and_the_look_writes_nothing(tmp_path):
    """Two drivers on one lake: one checks whether the other's new run is abandoned (an
    instant's flock) just as that one takes its lock. The taker retries within its bound;
    the look leaves the lock file naming the driver that holds it."""
    import fcntl
    import threading

    cfg = parse_config(MINIMAL)
    lake = Lake(str(tmp_path / "lake"))
    run = _staging(lake, "job-20260101-000000-aaaaaa", cfg, _dataset(tmp_path / "d1"))
    with open(run.lock, "a+") as look:  # the other driver's probe, held for 0.2 s
        fcntl.flock(look, fcntl.LOCK_EX | fcntl.LOCK_NB)
        threading.Timer(0.2, lambda: fcntl.flock(look, fcntl.LOCK_UN)).start()
        lock = RunLock(run)
        assert not lock.acquire()  # no wait: refused while the look holds it
        assert lock.acquire(wait_s=5)
    try:
        named = run.lock.read_text()
        assert [s.run_id for s in stale_runs(lake)] == []  # held: not abandoned
        assert run.lock.read_text() == named
    finally:
        lock.release()
    assert [s.run_id[-6:] for s in stale_runs(lake)] == ["aaaaaa"]
    assert run.lock.read_text() == named  # a look at an abandoned run does not sign it either


def test_a_run_that_stopped_is_kept_with_why_and_continued_by_the_same_job(tmp_path):
    """A staging run that failed for good or was interrupted keeps its checkpoints and its
    outcome; it resumes like one whose driver died; ``clean --failed`` (by age) removes it."""
    from sparkdl.core.errors import Interrupted, TrainingError
    from sparkdl.training.resume import record_outcome, write_resume_info

    cfg = parse_config(MINIMAL)
    lake = Lake(str(tmp_path / "lake"))
    data = _dataset(tmp_path / "lake" / "datasets" / "job" / "d1")
    failed = _staging(lake, "job-20260101-000000-aaaaaa", cfg, data, epochs=2)
    error = TrainingError(1, "boom", "Traceback ...")
    error.attempts = [{"attempt": 1, "error": "boom"}, {"attempt": 2, "error": "boom"}]
    record_outcome(failed.path, error)
    stopped = _staging(lake, "job-20260102-000000-bbbbbb", cfg.with_values({"train.epochs": 7}), data, epochs=1)
    record_outcome(stopped.path, Interrupted(15))
    stale = {s.run_id[-6:]: s for s in stale_runs(lake)}
    assert (stale["aaaaaa"].outcome, stale["aaaaaa"].epochs_done, stale["aaaaaa"].resumable) == ("failed", 2, True)
    assert stale["aaaaaa"].error == "TrainingError: rank 1 failed: boom"
    assert json.loads(failed.outcome.read_text())["attempts"] == error.attempts
    assert stale["bbbbbb"].outcome == "interrupted" and "SIGTERM" in stale["bbbbbb"].error
    assert remove_stale(lake) == []  # both would resume: plain clean keeps them

    run_id, manifest = find_resumable(lake, cfg)  # the same job continues the failed run
    assert run_id.endswith("aaaaaa") and manifest.dataset_id == "d1"
    write_resume_info(failed, cfg, manifest)  # as its next driver starts: why it stopped goes to the record
    assert not failed.outcome.exists()
    assert json.loads(failed.resume_info.read_text())["earlier"][0]["outcome"] == "failed"
    assert [s.outcome for s in stale_runs(lake)] == ["interrupted", "abandoned"]

    assert remove_stale(lake, failed=True, older_than_s=3600) == []  # stopped moments ago
    assert [s.run_id[-6:] for s in remove_stale(lake, failed=True)] == ["bbbbbb"]  # not the abandoned one
    assert [p.name[-6:] for p in lake.runs_root.iterdir()] == ["aaaaaa"]


def test_the_cli_lists_kept_runs_and_exits_for_a_signal_as_schedulers_expect(tmp_path, capsys):
    from sparkdl.cli import main
    from sparkdl.core.errors import Interrupted
    from sparkdl.training.resume import record_outcome

    cfg = parse_config(MINIMAL)
    lake = Lake(str(tmp_path / "lake"))
    run = _staging(lake, "job-20260101-000000-aaaaaa", cfg, _dataset(tmp_path / "lake" / "datasets" / "d1"))
    record_outcome(run.path, Interrupted(2))
    assert main(["runs", "list", "--lake", str(lake.root)]) == 0
    assert "job-20260101-000000-aaaaaa  interrupted  checkpointed epochs 2  resumable" in capsys.readouterr().out
    assert main(["runs", "clean", "--lake", str(lake.root), "--failed", "--older-than", "7d"]) == 0
    assert "no removable unfinished runs" in capsys.readouterr().out and run.path.exists()
    assert main(["runs", "clean", "--lake", str(lake.root), "--failed", "--older-than", "0s"]) == 0
    assert "removed job-20260101-000000-aaaaaa  interrupted" in capsys.readouterr().out and not run.path.exists()


def test_sigterm_to_the_cli_unwinds_the_command_and_exits_143(tmp_path):
    """A scheduler's SIGTERM reaches a running command as :class:`Interrupted`: what it
    holds unwinds (a run in progress is kept, interrupted), and it exits 128 + 15."""
    import signal
    import time

    script = tmp_path / "slow.py"
    script.write_text("""
import sys, time
import sparkdl.cli as cli
def slow(args):
    print('started', flush=True)
    try:
        time.sleep(60)
    finally:
        print('unwound', flush=True)
cli._train = slow
parser = cli.build_parser
def build():
    p = parser()
    p._subparsers._group_actions[0].choices['train'].set_defaults(handler=slow)
    return p
cli.build_parser = build
sys.exit(cli.main(['train', 'conf.yaml', '--lake', 'x']))
""")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and out.split() == ["unwound", "outcome=interrupted"]
    assert "interrupted (stopped by SIGTERM)" in err


def test_only_a_run_with_a_checkpoint_and_a_kept_outcome_stays(tmp_path):
    """A run that stopped before its first checkpoint (a config or data error, an early
    crash) has nothing to continue and goes; so does an outcome the caller does not keep
    (an estimator's fit keeps none, a search's trial only interrupted ones)."""
    from sparkdl.core.errors import Interrupted
    from sparkdl.core.lake import staged_dir
    from sparkdl.training.resume import keep_stopped

    cfg = parse_config(MINIMAL)
    lake = Lake(str(tmp_path / "lake"))
    data = _dataset(tmp_path / "d1")
    for run_id, epochs, keep, error, stays in (("a", 0, ("failed", "interrupted"), RuntimeError("x"), False),
                                                ("b", 1, ("interrupted",), RuntimeError("x"), False),
                                                ("c", 1, ("interrupted",), Interrupted(15), True),
                                                ("d", 1, (), Interrupted(2), False)):
        final = lake.run_dir(run_id)
        with pytest.raises(type(error)):
            with staged_dir(final, keep_failed=keep_stopped(keep)) as stage:
                for epoch in range(1, epochs + 1):
                    save_checkpoint(RunDir(stage).checkpoints, epoch, {"x": epoch})
                RunDir(stage).resume_info.write_text(json.dumps(
                    {"job": cfg.name, "fingerprint": config_fingerprint(cfg), "dataset": str(data)}))
                raise error
        assert (lake.runs_root / f".staging-{run_id}").exists() is stays, run_id
    assert [s.run_id for s in stale_runs(lake)] == ["c"]
