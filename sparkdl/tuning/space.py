"""A search space file: which config keys a search varies, over what, toward which metric::

    metric: val_accuracy        # default: the job's validation accuracy (val_rmse for regression)
    pruner: median              # median | halving | none
    params:
      train.optimizer.lr: {low: 0.0003, high: 0.01, log: true}
      model.hidden: {choices: [[64], [128, 64], [256, 128]]}
      train.batch_size: {choices: [64, 128, 256]}
      model.dropout: {low: 0.0, high: 0.3}
      train.epochs: {low: 2, high: 6}          # whole numbers: an integer range

Every key must be one the job's config has, and every value the range can take must be
valid there: the space is checked against the job before anything runs, and an error
names the space's key and the config's rule.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import yaml

from sparkdl.core.config import JobConfig
from sparkdl.core.errors import ConfigError
from sparkdl.core.task_metrics import REGRESSION, metric_direction, metric_names

#: Sections whose keys change the prepared dataset: a space that varies one prepares per trial.
DATA_SECTIONS = ("data", "schema", "features", "materialize")


@dataclass(frozen=True)
class Dimension:
    """One key's range: ``choices``, or ``low``..``high`` (``log`` scale; ``step`` apart)."""

    key: str
    kind: Literal["float", "int", "choice"]
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    choices: List[Any] = field(default_factory=list)

    def suggest(self, trial) -> Any:
        """This dimension's value for an Optuna trial."""
        if self.kind == "choice":
            return json.loads(trial.suggest_categorical(self.key, [json.dumps(c) for c in self.choices]))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def from_params(self, params: Dict[str, Any]) -> Any:
        """The config value of a finished trial's stored parameter."""
        value = params[self.key]
        return json.loads(value) if self.kind == "choice" else value

    def stored(self, value: Any) -> Any:
        """A config value as the trial stores it (for enqueueing a known point)."""
        return json.dumps(value) if self.kind == "choice" else value

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return value is not None and self.low <= value <= self.high

    def corners(self) -> List[Any]:
        """The values checked against the job before the search: every choice, both ends."""
        if self.kind == "choice":
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.kind == "int" else [self.low, self.high]


@dataclass(frozen=True)
class SearchSpace:
    dimensions: List[Dimension]
    metric: str
    direction: Literal["maximize", "minimize"]
    pruner: Literal["median", "halving", "none"] = "median"
    #: Median pruning: trials that finish before any is pruned.
    startup_trials: int = 4
    seed: int = 0
    source: str = "space"

    @property
    def keys(self) -> List[str]:
        return [d.key for d in self.dimensions]

    @property
    def changes_data(self) -> bool:
        """True when a trial would prepare a dataset of its own."""
        return any(k.split(".", 1)[0] in DATA_SECTIONS for k in self.keys)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True, default=str).encode()).hexdigest()

    def values(self, trial) -> Dict[str, Any]:
        return {d.key: d.suggest(trial) for d in self.dimensions}

    def make_pruner(self):
        import optuna

        if self.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials, n_warmup_steps=1)
        if self.pruner == "halving":
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
        return optuna.pruners.NopPruner()


def _error(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(key, message, source)


def _dimension(key: str, raw: Any, source: str) -> Dimension:
    where = f"params.{key}"
    if not isinstance(raw, dict):
        raise _error(source, where, f"expected {{low, high}} or {{choices: [...]}}, got {raw!r}")
    unknown = sorted(set(raw) - {"low", "high", "log", "step", "choices"})
    if unknown:
        raise _error(source, where, f"unknown field(s) {unknown}: use low, high, log, step or choices")
    if "choices" in raw:
        if set(raw) != {"choices"} or not isinstance(raw["choices"], list) or not raw["choices"]:
            raise _error(source, where, "choices is a non-empty list, alone (no low/high)")
        return Dimension(key, "choice", choices=list(raw["choices"]))
    if "low" not in raw or "high" not in raw:
        raise _error(source, where, "a range needs low and high (or give choices)")
    low, high = raw["low"], raw["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        raise _error(source, where, f"low and high are finite numbers, got {low!r} and {high!r}")
    if not low < high:
        raise _error(source, where, f"low ({low}) must be below high ({high})")
    log = bool(raw.get("log", False))
    if log and low <= 0:
        raise _error(source, f"{where}.low", f"a log scale needs low > 0, got {low}")
    step = raw.get("step")
    if step is not None and (log or not isinstance(step, (int, float)) or step <= 0):
        raise _error(source, f"{where}.step", "step is a positive number, and cannot go with log")
    kind = "int" if all(isinstance(v, int) for v in (low, high)) and (step is None or isinstance(step, int)) \
        else "float"
    return Dimension(key, kind, float(low), float(high), log, step)


def parse_space(raw: Any, cfg: JobConfig, source: str = "space") -> SearchSpace:
    """A space from its mapping, checked against ``cfg``: keys exist, every corner of every
    range gives a valid config, the metric is one the job reports."""
    if not isinstance(raw, dict):
        raise _error(source, "top level", f"expected a mapping, got {raw!r}")
    unknown = sorted(set(raw) - {"params", "metric", "direction", "pruner", "startup_trials", "seed"})
    if unknown:
        raise _error(source, unknown[0], "unknown key: use params, metric, direction, pruner, startup_trials, seed")
    params = raw.get("params")
    if not isinstance(params, dict) or not params:
        raise _error(source, "params", "give at least one config key to search, e.g. "
                                       "{train.optimizer.lr: {low: 0.0003, high: 0.01, log: true}}")
    dims = []
    for key, spec in params.items():
        dims.append(_dimension(str(key), spec, source))
    for d in dims:  # every value the range can take must make a valid job
        for value in d.corners():
            try:
                cfg.with_values({d.key: value})
            except ConfigError as e:
                raise _error(source, f"params.{d.key}", f"the value {value!r} makes the job invalid: {e}") from None
    task = cfg.schema.task
    names = ["val_" + m for m in metric_names(task, len(cfg.schema.classes))]
    metric = raw.get("metric") or ("val_rmse" if task == REGRESSION else "val_accuracy")
    if metric not in names:
        raise _error(source, "metric", f"'{metric}' is not a metric this {task} job reports; use one of {names}")
    direction = raw.get("direction") or ("maximize" if metric_direction(metric) == "max" else "minimize")
    if direction not in ("maximize", "minimize"):
        raise _error(source, "direction", f"'{direction}' is not maximize or minimize")
    pruner = raw.get("pruner", "median")
    if pruner not in ("median", "halving", "none"):
        raise _error(source, "pruner", f"'{pruner}' is not median, halving or none")
    startup = raw.get("startup_trials", 4)
    if not isinstance(startup, int) or startup < 0:
        raise _error(source, "startup_trials", f"must be a whole number >= 0, got {startup!r}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int):
        raise _error(source, "seed", f"must be a whole number, got {seed!r}")
    return SearchSpace(dims, metric, direction, pruner, startup, seed, source)


def load_space(path: "str | Path", cfg: JobConfig) -> SearchSpace:
    p = Path(path)
    if not p.is_file():
        raise ConfigError("--space", f"{path} does not exist: give a search space YAML file")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError("top level", f"not valid YAML: {e}", str(p)) from None
    return parse_space(raw, cfg, str(p))
