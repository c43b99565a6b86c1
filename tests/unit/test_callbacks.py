"""The loop's callback seam and the package's public surface (no Spark, no Horovod)."""
import pickle
import subprocess
import sys

import pytest

from sparkdl.core.stopwatch import Laps
from sparkdl.testing.faults import FaultSpec, InjectedFault
from sparkdl.training.rank.callbacks import Callback, Callbacks, LoopEvent, LoopState, StartupTimer


def _state(**kw):
    return LoopState(rank=kw.pop("rank", 0), size=2, attempt=kw.pop("attempt", 1), epochs=3, startup=Laps(), **kw)


class Recorder(Callback):
    def __init__(self):
        self.seen = []

    def on_epoch_end(self, state):
        self.seen.append(("epoch_end", state.epoch))


def test_only_overridden_events_are_dispatched_in_order():
    first, second = Recorder(), Recorder()
    callbacks = Callbacks([first, StartupTimer(), second])
    assert callbacks.on_step_start_hooks == [callbacks._hooks["on_step_start"][0]]  # StartupTimer's alone
    assert len(callbacks.on_step_end_hooks) == 1 and callbacks._hooks["before_checkpoint_commit"] == []
    callbacks.fire(LoopEvent.ON_EPOCH_END, _state(epoch=2))
    assert first.seen == second.seen == [("epoch_end", 2)]
    with pytest.raises(TypeError, match="is not a sparkdl.training.rank.callbacks.Callback"):
        Callbacks([object()])


def test_fault_spec_fires_only_at_its_rank_epoch_step_and_attempt():
    fault = pickle.loads(pickle.dumps(FaultSpec(rank=1, epoch=2, step=3)))  # shipped to executors by pickle
    for rank, epoch, step, attempt in [(0, 2, 3, 1), (1, 1, 3, 1), (1, 2, 4, 1), (1, 2, 3, 2)]:
        fault.on_step_start(_state(rank=rank, epoch=epoch, step=step, attempt=attempt))
    with pytest.raises(InjectedFault, match="rank 1 epoch 2 step 3"):
        fault.on_step_start(_state(rank=1, epoch=2, step=3))
    with pytest.raises(ValueError, match="mode 'explode'"):
        FaultSpec(mode="explode")


def test_startup_timer_laps_the_first_batch_and_step_once_and_returns_them():
    timer, state, sent = StartupTimer(), _state(), []
    state.report = lambda *a, **k: sent.append(k["message"])
    for _ in range(3):
        timer.on_step_start(state)
        state.first_step_at = state.first_step_at or 1.0
        timer.on_step_end(state)
    timer.on_train_end(state)
    assert list(state.extras["startup"]) == ["first_batch", "first_step"]
    assert len(sent) == 1 and sent[0].startswith("startup (s): first_batch")


def test_import_sparkdl_is_light_and_exposes_its_public_names():
    code = ("import sys, sparkdl; assert 'pyspark' not in sys.modules and 'torch' not in sys.modules; "
            "print(sorted(sparkdl.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("load_config", "JobConfig", "prepare", "train", "run_job", "score", "RunResult", "ScoreReport",
                 "Manifest", "ConfigError", "TrainingError", "__version__"):
        assert f"'{name}'" in out
    import sparkdl

    assert sparkdl.train.__module__ == "sparkdl.workflow"
    assert all(getattr(sparkdl, name) is not None for name in sparkdl.__all__)  # every export resolves
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sparkdl.nope
