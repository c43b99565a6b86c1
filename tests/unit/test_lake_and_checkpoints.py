import pytest
import torch

from sparkdl.core.errors import CheckpointWriteError, LakeError
from sparkdl.core.lake import COMMIT_MARKER, Lake, is_committed, staged_dir
from sparkdl.training.rank.checkpoints import list_checkpoints, load_latest, save_checkpoint


def test_staged_dir_commits_only_on_success(tmp_path):
    final = tmp_path / "runs" / "r1"
    with staged_dir(final) as stage:
        (stage / "metrics.json").write_text("{}")
        assert not final.exists()
    assert is_committed(final) and (final / COMMIT_MARKER).is_file()
    with pytest.raises(RuntimeError):
        with staged_dir(tmp_path / "runs" / "r2") as stage:
            (stage / "partial").write_text("x")
            raise RuntimeError("crash")
    assert not (tmp_path / "runs" / "r2").exists()
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r1"]
    with pytest.raises(LakeError, match="already exists"):
        with staged_dir(final):
            pass


def test_lake_lists_only_complete_runs(tmp_path):
    lake = Lake(str(tmp_path))
    (lake.runs_root / ".staging-r0").mkdir(parents=True)  # a writer that died mid-way
    (lake.runs_root / "r-unmarked").mkdir()
    with staged_dir(lake.run_dir("r-ok")):
        pass
    assert [p.name for p in lake.list_runs()] == ["r-ok"]
    with pytest.raises(LakeError, match="not a complete run"):
        lake.find_run("r-unmarked")
    with pytest.raises(LakeError, match="run `sparkdl prepare"):
        lake.current_dataset("adult")


def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    for epoch in (1, 2, 3):
        save_checkpoint(tmp_path, epoch, {"model": {"w": torch.tensor([float(epoch)])}})
    (tmp_path / "epoch-0003.pt").write_bytes(b"\x00" * 10)  # torn write from outside
    (tmp_path / ".epoch-0004.pt.abcd.tmp").write_bytes(b"half")  # never renamed: ignored
    state = load_latest(tmp_path)
    assert state["epoch"] == 2 and float(state["model"]["w"]) == 2.0
    assert len(state["skipped"]) == 1 and state["skipped"][0].startswith("epoch-0003.pt: unreadable (")
    assert (tmp_path / "epoch-0003.pt.unreadable").is_file()  # set aside, kept
    assert [e for e, _ in list_checkpoints(tmp_path)] == [2, 1]


def test_set_aside_checkpoints_are_never_pruned_for_and_the_run_goes_on(tmp_path):
    """Two unreadable checkpoints newer than the good one, keeping 2: the checkpoints the
    resumed run writes are kept (pruned by epoch, they lost to the broken newer ones)."""
    save_checkpoint(tmp_path, 1, {"x": 1}, keep=2)
    for epoch in (2, 3):
        (tmp_path / f"epoch-000{epoch}.pt").write_bytes(b"torn")
    assert load_latest(tmp_path)["epoch"] == 1
    save_checkpoint(tmp_path, 2, {"x": 2}, keep=2)
    assert [e for e, _ in list_checkpoints(tmp_path)] == [2, 1] and load_latest(tmp_path)["skipped"] == []


def test_when_no_checkpoint_loads_the_run_fails_naming_them_and_keeps_them(tmp_path):
    from sparkdl.core.errors import CheckpointReadError

    save_checkpoint(tmp_path, 1, {"x": 1})
    (tmp_path / "epoch-0002.pt").write_bytes(b"torn")
    with pytest.raises(CheckpointReadError, match=r"epoch-0002\.pt: unreadable .*; epoch-0001\.pt: unreadable "
                                                  r"\(a callback's state is bad\)\. The run does not start again "
                                                  r"from epoch 0"):
        load_latest(tmp_path, accept=lambda s: (_ for _ in ()).throw(ValueError("a callback's state is bad")))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001.pt", "epoch-0002.pt"]
    assert load_latest(tmp_path)["epoch"] == 1  # a state the callbacks take: it loads


def test_checkpoints_keep_the_newest(tmp_path):
    for epoch in range(1, 6):
        save_checkpoint(tmp_path, epoch, {"x": epoch}, keep=2)
    assert [e for e, _ in list_checkpoints(tmp_path)] == [5, 4]


def test_a_crash_before_rename_leaves_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, 1, {"x": 1})

    def crash(_tmp):
        raise SystemExit("worker died")

    with pytest.raises(SystemExit):
        save_checkpoint(tmp_path, 2, {"x": 2}, before_rename=crash)
    assert load_latest(tmp_path)["epoch"] == 1


def test_a_checkpoint_over_the_file_size_limit_is_a_clear_error_and_the_previous_one_loads(tmp_path):
    """The kernel refuses the write (RLIMIT_FSIZE: EFBIG), as a full disk or quota would."""
    import resource
    import signal

    save_checkpoint(tmp_path, 1, {"w": torch.zeros(10)})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, hard))
    try:
        with pytest.raises(CheckpointWriteError, match=r"epoch 2 to .*epoch-0002\.pt: File too large .*"
                                                       r"epoch 1 is intact"):
            save_checkpoint(tmp_path, 2, {"w": torch.zeros(1_000_000)})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert load_latest(tmp_path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001.pt"]  # no temporary file left behind


def test_a_full_then_read_only_lake_is_a_clear_error_and_the_previous_checkpoint_loads(tmp_path):
    import subprocess

    mnt = tmp_path / "lake"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        save_checkpoint(mnt, 1, {"w": torch.zeros(10)})
        with pytest.raises(CheckpointWriteError, match=r"epoch 2 to .*: No space left on device"):
            save_checkpoint(mnt, 2, {"w": torch.zeros(200_000)})  # 800 kB into 256 kB
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(CheckpointWriteError, match=r"epoch 3 to .*: Read-only file system .* epoch 1 is intact"):
            save_checkpoint(mnt, 3, {"w": torch.zeros(10)})
        assert load_latest(mnt)["epoch"] == 1
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_a_read_the_file_system_refuses_is_passed_over_not_set_aside(tmp_path, monkeypatch):
    """An EIO or ESTALE on a shared file system may pass: the newest checkpoint is skipped
    for this start (tried twice) but stays where it is; a broken one and its shards go aside
    under a number of their own when one of that epoch was set aside before."""
    for epoch in (1, 2):
        save_checkpoint(tmp_path, epoch, {"x": epoch})
    real, calls = torch.load, []

    def flaky(path, *args, **kwargs):
        calls.append(path.name)
        if path.name == "epoch-0002.pt":
            raise OSError(5, "Input/output error")
        return real(path, *args, **kwargs)

    monkeypatch.setattr("time.sleep", lambda s: None)  # the pause before the second try
    monkeypatch.setattr(torch, "load", flaky)
    state = load_latest(tmp_path)
    assert state["epoch"] == 1 and calls == ["epoch-0002.pt", "epoch-0002.pt", "epoch-0001.pt"]
    assert state["skipped"] == ["epoch-0002.pt: unreadable ([Errno 5] Input/output error)"]
    assert (tmp_path / "epoch-0002.pt").is_file()
    monkeypatch.setattr(torch, "load", real)

    (tmp_path / "epoch-0002.pt.unreadable").write_bytes(b"an earlier one")
    (tmp_path / "epoch-0002.pt").write_bytes(b"torn")
    (tmp_path / "epoch-0002.shard-00.pt").write_bytes(b"its shard")
    assert load_latest(tmp_path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001.pt", "epoch-0002.pt.unreadable",
                                                          "epoch-0002.pt.unreadable.2",
                                                          "epoch-0002.shard-00.pt.unreadable.2"]
