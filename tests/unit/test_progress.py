"""Live progress: rank 0's step reports, the driver's bar and log lines, TensorBoard files
(real tqdm, real TensorBoard event files read back with TensorBoard's own reader)."""
import logging
import pickle

import pytest
import torch

from sparkdl.core.config import ProgressConfig
from sparkdl.core.errors import ConfigError
from sparkdl.core.progress import form
from sparkdl.core.stopwatch import Laps
from sparkdl.tracking.progress import TrainingProgress
from sparkdl.training.launch.events import Event, EventType
from sparkdl.training.rank.callbacks import Callbacks, LoopEvent, LoopState
from sparkdl.training.rank.progress import StepProgress, TensorBoardLogger


def _run_epochs(callbacks, epochs=2, steps=5, rank=0, losses=None, start_epoch=0, history=None, reporting_rank=0):
    """Drive the loop's events the way ``sparkdl.training.rank.loop`` does, with fixed losses."""
    sent = []
    state = LoopState(rank=rank, size=2, reporting_rank=reporting_rank, attempt=1, epochs=epochs, startup=Laps(),
                      steps_per_epoch=steps,
                      epoch=start_epoch, history=history if history is not None else [],
                      report=lambda type, **f: sent.append((type, f)))
    cbs = Callbacks(callbacks)
    cbs.fire(LoopEvent.ON_TRAIN_START, state)
    for epoch in range(start_epoch + 1, epochs + 1):
        state.epoch = epoch
        for step in range(steps):
            state.step = step
            cbs.fire(LoopEvent.ON_STEP_START, state)
            state.loss = torch.tensor(losses[step] if losses else 1.0)
            cbs.fire(LoopEvent.ON_STEP_END, state)
        state.history.append({"epoch": epoch, "loss": 0.5 / epoch, "val_accuracy": 0.8 + epoch / 100, "lr": 0.01,
                              "samples_per_sec": 1000.0, "steps": steps, "attempt": 1})
        cbs.fire(LoopEvent.ON_EPOCH_END, state)
    cbs.fire(LoopEvent.ON_TRAIN_END, state)
    return sent


def test_rank_0_reports_each_interval_and_always_the_epochs_last_step():
    # an interval no step reaches: only each epoch's last step reports, with the mean loss since the last report
    sent = _run_epochs([StepProgress(3600.0, batch_size=32)], losses=[1.0, 2.0, 3.0, 4.0, 5.0])
    assert [t for t, _ in sent] == [EventType.PROGRESS, EventType.PROGRESS]
    first = sent[0][1]
    assert (first["epoch"], first["epochs"], first["step"], first["steps"], first["loss"]) == (1, 2, 5, 5, 3.0)
    assert first["samples_per_sec"] > 0 and first["elapsed_s"] >= 0  # 5 tiny steps may round to 0.000 s
    # an interval of zero: every step reports, its own loss
    sent = _run_epochs([StepProgress(0.0, batch_size=32)], epochs=1, losses=[1.0, 2.0, 3.0, 4.0, 5.0])
    assert [f["step"] for _, f in sent] == [1, 2, 3, 4, 5] and [f["loss"] for _, f in sent] == [1, 2, 3, 4, 5]
    assert _run_epochs([StepProgress(0.0, batch_size=32)], rank=1) == []  # rank 0 only
    # a pipeline's loss is on its last stage: that rank reports, rank 0 does not
    assert len(_run_epochs([StepProgress(0.0, batch_size=32)], rank=1, reporting_rank=1, epochs=1)) == 5
    assert _run_epochs([StepProgress(0.0, batch_size=32)], rank=0, reporting_rank=1) == []


def _progress(step, steps=10, epoch=1, loss=0.25):
    return Event(EventType.PROGRESS, 0, 0.0, {"epoch": epoch, "epochs": 3, "step": step, "steps": steps,
                                             "loss": loss, "elapsed_s": step * 0.5, "samples_per_sec": 1234.0})


def test_plain_lines_are_rate_limited_but_end_of_epoch_is_always_logged(caplog):
    handler = TrainingProgress(ProgressConfig(display="lines", lines_every_s=3600))
    with caplog.at_level(logging.INFO, logger="sparkdl.tracking.progress"):
        for step in (2, 4, 10):
            handler.on_event(_progress(step))
        handler.on_event(Event(EventType.EPOCH, 0, 0.0, {"epoch": 1}))  # not progress: not its to show
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["epoch 1/3: step 2/10 (20%), 1,234 samples/s, loss 0.2500, about 4s left in the epoch",
                     "epoch 1/3: step 10/10 (100%), 1,234 samples/s, loss 0.2500"]


def test_the_first_line_shows_on_a_machine_just_booted(caplog, monkeypatch):
    # time.monotonic() counts from boot: 5 s after it, a 30 s interval must not hide the first line
    monkeypatch.setattr("sparkdl.tracking.progress.time.monotonic", lambda: 5.0)
    monkeypatch.setattr("sparkdl.core.progress.time.monotonic", lambda: 5.0)
    handler = TrainingProgress(ProgressConfig(display="lines", lines_every_s=30))
    with caplog.at_level(logging.INFO, logger="sparkdl.tracking.progress"):
        handler.on_event(_progress(2))
    assert [r.getMessage() for r in caplog.records][0].startswith("epoch 1/3: step 2/10")


def test_the_driver_logs_every_event_but_progress_and_hands_all_to_its_callbacks(caplog):
    from sparkdl.training.driver_callbacks import DriverCallback, DriverCallbacks
    from sparkdl.training.supervisor import _dispatch

    seen = []

    class Seen(DriverCallback):
        def on_event(self, event):
            seen.append(event.type)

    with caplog.at_level(logging.INFO, logger="sparkdl.training.launch.driver"):
        _dispatch(_progress(2), DriverCallbacks([Seen()]))
        _dispatch(Event(EventType.EPOCH, 0, 0.0, {"epoch": 1}), DriverCallbacks([Seen()]))
    assert seen == [EventType.PROGRESS, EventType.EPOCH]
    assert [r.getMessage() for r in caplog.records] == ["rank 0 epoch epoch=1"]


def test_bar_shows_steps_rate_and_loss_and_keeps_log_lines_above_it(capsys):
    handler = TrainingProgress(ProgressConfig(display="bar"))
    handler.on_attempt_start(1)
    handler.on_event(_progress(4))
    handler.on_event(_progress(10))
    handler.on_event(_progress(3, epoch=2))  # a new epoch: a new bar
    handler.on_attempt_end(1, None)
    err = capsys.readouterr().err
    assert "epoch 1/3" in err and "10/10" in err and "1,234" in err and "loss=0.2500" in err
    assert "epoch 2/3" in err and "3/10" in err


def test_auto_form_follows_where_output_goes(monkeypatch):
    assert form(ProgressConfig()) == "lines"  # pytest captures stderr: not a terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert form(ProgressConfig()) == "bar"
    assert form(ProgressConfig(display="off")) == "off"
    with pytest.raises(ConfigError, match="progress.interval_s"):
        ProgressConfig(interval_s=-1)


def test_tensorboard_holds_one_point_per_epoch_per_metric_and_a_resume_purges_what_it_redoes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = pickle.loads(pickle.dumps(TensorBoardLogger(str(tmp_path), 0.0, batch_size=32)))  # shipped by pickle
    _run_epochs([logger], epochs=3, steps=4)
    _run_epochs([TensorBoardLogger(str(tmp_path / "other-rank"), 0.0, 32)], rank=1)
    assert not (tmp_path / "other-rank").exists()  # rank 0 only

    def scalars():
        acc = EventAccumulator(str(tmp_path)).Reload()
        return {tag: [(e.step, round(e.value, 6)) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}

    first = scalars()
    assert set(first) == {"epoch/loss", "epoch/val_accuracy", "epoch/lr", "epoch/samples_per_sec", "step/loss",
                          "step/samples_per_sec"}
    assert first["epoch/val_accuracy"] == [(4, 0.81), (8, 0.82), (12, 0.83)]
    assert [s for s, _ in first["step/loss"]] == list(range(1, 13))
    # resumed from epoch 1's checkpoint: epochs 2 and 3 again, without duplicate points
    history = [{"epoch": 1, "loss": 0.5}]
    _run_epochs([TensorBoardLogger(str(tmp_path), 0.0, 32)], epochs=3, steps=4, start_epoch=1, history=history)
    again = scalars()
    assert again["epoch/val_accuracy"] == [(4, 0.81), (8, 0.82), (12, 0.83)]
    assert [s for s, _ in again["step/loss"]] == list(range(1, 13))
