"""The gate's bounds and the drift measure, as arithmetic: directions, relative bounds,
the first champion, PSI and unseen categories, and the config rules behind them."""
import math

import pytest

from sparkdl.core.config import DriftConfig, MetricGate
from sparkdl.core.config.loading import load_config
from sparkdl.core.errors import ConfigError
from sparkdl.promotion.drift import measure, psi
from sparkdl.promotion.gate import judge


def test_bounds_follow_each_metrics_direction():
    rules = {"auc": MetricGate(min=0.88, max_worse=0.002), "log_loss": MetricGate(max_worse_pct=1.0)}
    champion = {"auc": 0.900, "log_loss": 0.300}
    ok, reason, checks = judge(rules, {"auc": 0.899, "log_loss": 0.302}, champion)
    assert ok and reason.startswith("promoted (no worse than the champion)") and len(checks) == 3
    ok, reason, _ = judge(rules, {"auc": 0.897, "log_loss": 0.300}, champion)
    assert not ok and "auc 0.8970 (bound: at most 0.002 below the champion's 0.9000)" in reason
    ok, reason, _ = judge(rules, {"auc": 0.95, "log_loss": 0.3031}, champion)  # 1.03 % worse: lower is better
    assert not ok and "log_loss" in reason and "above" in reason


def test_the_first_champion_meets_the_absolute_bounds_only():
    rules = {"rmse": MetricGate(max=60000, max_worse=0)}
    assert judge(rules, {"rmse": 59000.0}, None)[0]
    ok, reason, _ = judge(rules, {"rmse": 61000.0}, None)
    assert not ok and "rmse 61,000 (bound: <= 60,000)" in reason


def test_gate_and_drift_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="promote.metrics.rmse.*not a held-out metric"):
        load_config("conf/adult.yaml", ["promote.model=adult", 'promote.metrics={"rmse": {"max": 1}}'])
    with pytest.raises(ConfigError, match="promote.metrics.auc.max.*larger auc is better"):
        load_config("conf/adult.yaml", ["promote.model=adult", 'promote.metrics={"auc": {"max": 1}}'])
    with pytest.raises(ConfigError, match="promote.metrics'.*set promote.model"):
        load_config("conf/adult.yaml", ['promote.metrics={"auc": {"min": 0.9}}'])
    with pytest.raises(ConfigError, match="drift.against.*set promote.model"):
        load_config("conf/adult.yaml", ["drift.against=champion"])
    with pytest.raises(ConfigError, match="drift.columns\\[0\\].*not a feature"):
        load_config("conf/adult.yaml", ["drift.against=champion:adult", "drift.columns=[class]"])
    with pytest.raises(ConfigError, match="drift.psi_fail.*>= drift.psi_warn"):
        load_config("conf/adult.yaml", ["drift.psi_warn=0.3", "drift.psi_fail=0.2"])
    cfg = load_config("conf/adult.yaml", ["tracking.mlflow=on", "promote.model=adult"])
    assert cfg.tracking.mlflow == "on"  # a word, not YAML 1.1's boolean


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0
    expected = [0.25, 0.25, 0.25, 0.25]
    assert psi(expected, [0.4, 0.3, 0.2, 0.1]) == pytest.approx(
        sum((a - e) * math.log(a / e) for e, a in zip(expected, [0.4, 0.3, 0.2, 0.1])))
    assert psi(expected, [0, 0, 0, 1.0]) > psi(expected, [0.1, 0.2, 0.3, 0.4]) > 0.1


def test_measure_levels_numeric_psi_and_unseen_categories():
    profile = {"numeric": {"age": {"edges": [30.0, 50.0], "shares": [0.3, 0.4, 0.3], "null_share": 0.0}},
               "categorical": {"sex": {"shares": {"Male": 0.6, "Female": 0.4}, "other_share": 0.0,
                                       "null_share": 0.0, "complete": True}}}
    counts = {"rows": 1000, "numeric": {"age": [0, 100, 900, 0]},
              "categorical": {"sex": {"counts": [560, 380], "rest": 60, "null": 0}}}
    by = {f.column: f for f in measure(profile, counts, DriftConfig(unseen_fail=0.05))}
    assert by["age"].level == "fail" and by["age"].psi > 0.25 and by["age"].bins[-2] == "> 50"
    assert by["sex"].unseen_share == pytest.approx(0.06) and by["sex"].level == "fail"
    assert "(unseen)" in by["sex"].bins
    incomplete = {**profile["categorical"]["sex"], "complete": False}
    (sex,) = measure({"categorical": {"sex": incomplete}}, counts, DriftConfig())
    assert sex.unseen_share is None  # the profile kept the top categories only: new ones cannot be told apart
