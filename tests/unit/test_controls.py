"""The learning-rate schedule and early stopping, driven through the loop's callback events."""
import math

import pytest

from sparkdl.core.config import EarlyStoppingConfig, LrScheduleConfig
from sparkdl.core.stopwatch import Laps
from sparkdl.training.rank.callbacks import Callbacks, LoopState
from sparkdl.training.rank.controls import EarlyStopping, LrSchedule, scheduled_lr


def test_warmup_then_cosine_step_and_constant():
    cfg = LrScheduleConfig(kind="cosine", warmup_epochs=2, min_lr=0.0)
    lrs = [scheduled_lr(cfg, 1.0, s, steps_per_epoch=10, epochs=10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.05) and lrs[19] == pytest.approx(1.0)  # linear over 20 steps
    assert all(a < b for a, b in zip(lrs[:19], lrs[1:20]))
    assert lrs[20] == pytest.approx(1.0) and lrs[60] == pytest.approx(0.5)  # half-way through the cosine
    assert all(a >= b for a, b in zip(lrs[20:], lrs[21:])) and lrs[99] < 0.001
    step = LrScheduleConfig(kind="step", step_epochs=3, gamma=0.5)
    assert [scheduled_lr(step, 1.0, e * 10, 10, 10) for e in (0, 2, 3, 6, 9)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    assert scheduled_lr(LrScheduleConfig(), 0.3, 57, 10, 10) == 0.3


class _Optimizer:
    def __init__(self):
        self.param_groups = [{"lr": 0.0}]


def _state(**kw):
    return LoopState(rank=0, size=1, attempt=1, epochs=20, startup=Laps(), steps_per_epoch=10, **kw)


def test_schedule_sets_the_rate_before_each_step_and_plateau_state_survives_a_restart():
    opt = _Optimizer()
    cfg = LrScheduleConfig(kind="plateau", patience=2, gamma=0.5)
    sched = LrSchedule(cfg, base_lr=0.1)
    state = _state(optimizer=opt, epoch=1)
    state.step = 3
    sched.on_step_start(state)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    for epoch, loss in enumerate([1.0, 0.9, 0.95, 0.92], start=1):  # two epochs without a better loss
        state.epoch = epoch
        state.history.append({"epoch": epoch, "val_loss": loss})
        sched.on_epoch_end(state)
    assert sched.plateau_factor == 0.5
    restored = LrSchedule(cfg, base_lr=0.1)
    Callbacks([restored]).load_state_dict(Callbacks([sched]).state_dict())
    restored.on_step_start(state)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_early_stopping_stops_after_patience_and_keeps_the_best_weights():
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(2, 1)
    es = EarlyStopping(EarlyStoppingConfig(metric="val_loss", patience=2, min_delta=0.01))
    state = _state(model=model)
    losses = [1.0, 0.8, 0.795, 0.9, 0.7]  # 0.795 is not better by min_delta
    for epoch, loss in enumerate(losses, start=1):
        state.epoch = epoch
        with torch.no_grad():
            model.weight.fill_(epoch)
        state.history.append({"epoch": epoch, "val_loss": loss})
        es.on_epoch_end(state)
        if state.stop_reason:
            break
    assert epoch == 4 and es.best_epoch == 2  # stopped `patience` epochs after the best
    es.on_train_end(state)
    assert float(model.weight.detach()[0, 0]) == 2.0  # the best epoch's weights, not the last
    record = state.extras["early_stopping"]
    assert record["kept_epoch"] == 2 and record["stopped_early"] and "after epoch 2" in record["reason"]


def test_early_stopping_mode_follows_the_metric():
    assert EarlyStoppingConfig(metric="val_accuracy").direction == "max"
    assert EarlyStoppingConfig(metric="val_rmse").direction == "min"
    assert EarlyStoppingConfig(metric="val_rmse", mode="max").direction == "max"


def test_keep_last_leaves_the_weights_alone():
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(1, 1)
    es = EarlyStopping(EarlyStoppingConfig(metric="val_accuracy", patience=1, keep="last"))
    state = _state(model=model)
    for epoch, acc in enumerate([0.5, 0.6, 0.55], start=1):
        state.epoch = epoch
        with torch.no_grad():
            model.weight.fill_(epoch)
        state.history.append({"epoch": epoch, "val_accuracy": acc})
        es.on_epoch_end(state)
    es.on_train_end(state)
    assert state.stop_reason and float(model.weight.detach()[0, 0]) == 3.0
    assert state.extras["early_stopping"]["kept_epoch"] == 3 and not math.isnan(es.best)
