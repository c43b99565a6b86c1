"""A search's study in the lake: the job as given is its first trial, a trial cut off
(Ctrl-C, a dead driver) is queued again and does not count as finished, and a study is
refused to another config or space, or to a second driver."""
import pytest
from optuna.trial import TrialState

from sparkdl.core.config.loading import load_config
from sparkdl.core.errors import ConfigError, LakeError
from sparkdl.tuning.search import _finished, _open_study, _requeue, _study_lock, requeued
from sparkdl.tuning.space import parse_space
from tests.conftest import REPO

SPACE = {"params": {"train.optimizer.lr": {"low": 0.0003, "high": 0.01, "log": True},
                    "model.hidden": {"choices": [[64], [256, 128]]}}}


@pytest.fixture()
def cfg():
    return load_config(REPO / "conf" / "adult.yaml")


def test_the_first_trial_is_the_job_as_given_and_a_cut_off_trial_runs_again(cfg, tmp_path):
    space = parse_space(SPACE, cfg)
    study = _open_study(cfg, space, "s", tmp_path)
    first = study.ask()
    assert space.values(first) == {"train.optimizer.lr": 0.001, "model.hidden": [256, 128]}
    assert first.user_attrs["untuned"]
    study.tell(first, 0.85)
    cut = study.ask()  # running when the driver died
    point = space.values(cut)
    assert _finished(study) == 1

    again = _open_study(cfg, space, "s", tmp_path)  # the next driver
    running = again.get_trials(states=(TrialState.RUNNING,))
    assert [t.number for t in running] == [cut.number]
    _requeue(again, cut.number, running[0].params, running[0].user_attrs)
    assert requeued(again) == {cut.number} and _finished(again) == 1  # failed, but not for good
    rerun = again.ask()
    assert space.values(rerun) == point and rerun.user_attrs["requeued_from"] == cut.number
    again.tell(rerun, 0.86)
    assert _finished(again) == 2


def test_a_study_belongs_to_one_config_and_space(cfg, tmp_path):
    _open_study(cfg, parse_space(SPACE, cfg), "s", tmp_path)
    with pytest.raises(ConfigError, match="started with another config or space"):
        _open_study(cfg.with_values({"train.epochs": 3}), parse_space(SPACE, cfg), "s", tmp_path)
    with pytest.raises(ConfigError, match="another --study name"):
        _open_study(cfg, parse_space({"params": {"model.dropout": {"low": 0.0, "high": 0.2}}}, cfg), "s", tmp_path)


def test_a_second_driver_is_refused_the_study(tmp_path):
    with _study_lock(tmp_path / "s"):
        with pytest.raises(LakeError, match=r"running in another driver \(\S+ pid \d+\)"):
            with _study_lock(tmp_path / "s"):
                pass
    with _study_lock(tmp_path / "s"):  # released
        pass
