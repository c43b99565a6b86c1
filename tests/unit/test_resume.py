"""Which abandoned runs resume, which are stale, and the lock that tells them apart."""
import json
import subprocess
import sys

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
                         {"tracking.uri": "http://127.0.0.1:5000"}):
            assert find_resumable(lake, cfg.with_values(same_run)) is not None
        assert sorted(s.run_id[-6:] for s in remove_stale(lake)) == ["aaaaaa", "cccccc", "dddddd"]
        assert [s.run_id[-6:] for s in remove_stale(lake, include_resumable=True)] == ["bbbbbb"]
        assert [p.name[-6:] for p in lake.runs_root.iterdir()] == ["eeeeee"]
    finally:
        lock.release()


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
