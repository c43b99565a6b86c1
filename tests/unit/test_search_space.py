"""Search spaces are checked against the job before anything runs (each error names the
space's key), give the config values a trial sets, and the driver's per-epoch verdict
stops every rank after the same epoch."""
import threading
import time

import optuna
import pytest

from sparkdl.core.config.loading import load_config
from sparkdl.core.errors import ConfigError
from sparkdl.training.rank.callbacks import LoopState
from sparkdl.training.verdicts import AwaitVerdict, write_verdict
from sparkdl.tuning.space import load_space, parse_space
from tests.conftest import REPO


@pytest.fixture(scope="module")
def cfg():
    return load_config(REPO / "conf" / "adult.yaml")


@pytest.mark.parametrize("raw, key, words", [
    ({}, "params", "at least one config key"),
    ({"params": {"train.nope": {"low": 1, "high": 2}}}, "params.train.nope", "unknown key"),
    ({"params": {"model.dropout": {"low": 0.0, "high": 1.5}}}, "params.model.dropout",
     "the value 1.5 makes the job invalid: config key 'model.dropout': must be in [0, 1)"),
    ({"params": {"train.optimizer.lr": {"low": 0, "high": 0.1, "log": True}}}, "params.train.optimizer.lr.low",
     "a log scale needs low > 0"),
    ({"params": {"train.epochs": {"low": 5, "high": 2}}}, "params.train.epochs", "low (5) must be below high (2)"),
    ({"params": {"model.hidden": {"choices": []}}}, "params.model.hidden", "non-empty list"),
    ({"params": {"model.hidden": {"choices": [[64], [0]]}}}, "params.model.hidden", "layer widths must be > 0"),
    ({"params": {"train.epochs": {"low": 2, "high": 4, "lo": 1}}}, "params.train.epochs", "unknown field(s) ['lo']"),
    ({"params": {"train.epochs": {"low": 2, "high": 4}}, "metric": "val_rmse"}, "metric",
     "not a metric this classification job reports"),
    ({"params": {"train.epochs": {"low": 2, "high": 4}}, "pruner": "hyperband"}, "pruner", "median, halving or none"),
])
def test_a_bad_space_is_named_before_anything_runs(cfg, raw, key, words):
    with pytest.raises(ConfigError) as err:
        parse_space(raw, cfg, "space.yaml")
    assert err.value.path == key and "in space.yaml" in str(err.value) and words in str(err.value)


def test_the_shipped_space_gives_valid_jobs_with_every_kind_of_value(cfg):
    space = load_space(REPO / "conf" / "spaces" / "adult.yaml", cfg)
    assert (space.metric, space.direction, space.pruner, space.changes_data) == ("val_accuracy", "maximize",
                                                                                "median", False)
    trial = optuna.trial.FixedTrial({"train.optimizer.lr": 0.002, "model.hidden": "[128, 64]",
                                     "model.dropout": 0.2, "train.batch_size": "256",
                                     "train.optimizer.weight_decay": "0.0001"})
    values = space.values(trial)
    assert values["model.hidden"] == [128, 64] and values["train.batch_size"] == 256
    job = cfg.with_values(values)
    assert (job.model.hidden, job.train.optimizer.lr, job.train.optimizer.weight_decay) == ([128, 64], 0.002, 0.0001)
    lr = next(d for d in space.dimensions if d.key == "train.optimizer.lr")
    assert lr.contains(cfg.train.optimizer.lr) and not lr.contains(0.1)


def test_a_space_over_feature_settings_prepares_per_trial(cfg):
    space = parse_space({"params": {"features.scaler": {"choices": ["standard", "minmax"]}}}, cfg)
    assert space.changes_data


def test_every_rank_stops_after_the_epoch_the_driver_said(tmp_path):
    verdicts = tmp_path / "verdicts"
    callback = AwaitVerdict(str(verdicts), wait_s=5)
    state = LoopState(rank=0, size=1, attempt=1, epochs=5, startup=None, epoch=1)
    threading.Timer(0.2, write_verdict, (verdicts, 1, False)).start()
    t0 = time.monotonic()
    callback.on_epoch_reported(state)  # waits for the driver's answer
    assert state.stop_reason is None and time.monotonic() - t0 >= 0.15
    write_verdict(verdicts, 2, True, "pruned by the search after epoch 2")
    state.epoch = 2
    callback.on_epoch_reported(state)
    assert state.stop_reason == "pruned by the search after epoch 2"
    assert state.extras["stopped_by_driver"] == {"epoch": 2, "reason": "pruned by the search after epoch 2"}
    resumed = LoopState(rank=0, size=1, attempt=2, epochs=5, startup=None, epoch=2)
    callback.on_train_start(resumed)  # a run resumed after that epoch stops again, not trains on
    assert resumed.stop_reason == "pruned by the search after epoch 2"


def test_without_an_answer_in_time_training_goes_on_and_says_so(tmp_path):
    logged = []
    state = LoopState(rank=0, size=1, attempt=1, epochs=5, startup=None, epoch=1,
                      report=lambda *a, **k: logged.append(k))
    AwaitVerdict(str(tmp_path), wait_s=0.2).on_epoch_reported(state)
    assert state.stop_reason is None and "no verdict from the driver" in logged[0]["message"]
