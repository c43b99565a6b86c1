"""The job's configuration: typed, frozen dataclasses loaded from YAML and validated.

Every mistake (an unknown key, a wrong type, a missing required value, a value out of
range) is a :class:`ConfigError` naming the key path, raised before Spark starts.
"""
from __future__ import annotations

import dataclasses
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type, or out of range."""

    def __init__(self, path: str, message: str, source: Optional[str] = None):
        self.path = path
        where = f" in {source}" if source else ""
        super().__init__(f"config key '{path}'{where}: {message}")


def _check(cond: bool, path: str, message: str) -> None:
    if not cond:
        raise ConfigError(path, message)


COLUMN_TYPES = ("int", "long", "double", "float", "string", "boolean")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class SparkConfig:
    """Where Spark runs when sparkdl starts it (ignored under spark-submit or in a notebook)."""

    master: str = "local-cluster[2,1,1024]"
    app_name: str = "sparkdl"
    conf: Dict[str, str] = field(default_factory=dict)
    executor_start_timeout_s: float = 120.0

    def __post_init__(self):
        _check(self.executor_start_timeout_s > 0, "spark.executor_start_timeout_s", "must be > 0 seconds")


@dataclass(frozen=True)
class ColumnSpec:
    """One input column and its declared type."""

    name: str
    type: Literal["int", "long", "double", "float", "string", "boolean"]


@dataclass(frozen=True)
class SchemaConfig:
    """Declared schema of the raw data: never inferred."""

    columns: List[ColumnSpec]
    label: str
    classes: List[str]
    categorical: List[str] = field(default_factory=list)
    numeric: List[str] = field(default_factory=list)
    keys: List[str] = field(default_factory=list)

    def __post_init__(self):
        names = [c.name for c in self.columns]
        _check(len(names) > 0, "schema.columns", "declare at least one column")
        for i, n in enumerate(names):
            _check(bool(_NAME_RE.match(n)), f"schema.columns[{i}].name",
                   f"'{n}' is not a usable column name (letters, digits, '_', '-', '.')")
        dup = sorted({n for n in names if names.count(n) > 1})
        _check(not dup, "schema.columns", f"duplicate column names {dup}")
        types = {c.name: c.type for c in self.columns}
        for key, group in (("categorical", self.categorical), ("numeric", self.numeric), ("keys", self.keys)):
            for i, n in enumerate(group):
                _check(n in types, f"schema.{key}[{i}]", f"'{n}' is not among schema.columns {names}")
        for i, n in enumerate(self.numeric):
            _check(types[n] in ("int", "long", "double", "float", "boolean"), f"schema.numeric[{i}]",
                   f"'{n}' is declared as {types[n]}; numeric features need int, long, double, float or boolean")
        both = sorted(set(self.categorical) & set(self.numeric))
        _check(not both, "schema", f"columns {both} are both categorical and numeric; pick one")
        _check(self.label in types, "schema.label", f"'{self.label}' is not among schema.columns {names}")
        _check(self.label not in self.categorical and self.label not in self.numeric, "schema.label",
               f"'{self.label}' is the label; remove it from schema.categorical/numeric")
        _check(len(self.classes) >= 2, "schema.classes", "declare at least two classes")
        _check(len(set(self.classes)) == len(self.classes), "schema.classes", "classes must be distinct")
        _check(bool(self.categorical or self.numeric), "schema",
               "declare at least one feature in schema.categorical or schema.numeric")

    def type_of(self, name: str) -> str:
        return next(c.type for c in self.columns if c.name == name)

    @property
    def features(self) -> List[str]:
        return list(self.numeric) + list(self.categorical)


@dataclass(frozen=True)
class DataConfig:
    """Where the raw data lives and how to read it."""

    train: str
    format: Literal["csv", "parquet", "json", "jdbc", "synthetic"] = "csv"
    test: Optional[str] = None
    options: Dict[str, str] = field(default_factory=dict)
    null_values: List[str] = field(default_factory=lambda: ["?", ""])
    max_bad_fraction: float = 0.01

    def __post_init__(self):
        _check(0.0 <= self.max_bad_fraction <= 1.0, "data.max_bad_fraction", "must be between 0 and 1")
        if self.format == "jdbc":
            _check("url" in self.options, "data.options.url", "jdbc sources need options.url (and dbtable or query)")
        if self.format == "synthetic":
            _check(set(self.options) <= {"rows", "seed", "partitions"} and "rows" in self.options, "data.options",
                   "synthetic data takes options rows (required), seed and partitions")


@dataclass(frozen=True)
class FeaturesConfig:
    """The Spark ML feature pipeline."""

    scaler: Literal["standard", "minmax", "none"] = "standard"
    impute: Literal["mean", "median"] = "mean"


@dataclass(frozen=True)
class MaterializeConfig:
    """Train/validation split and Parquet layout for training."""

    validation_fraction: float = 0.1
    seed: int = 42
    max_ranks: int = 4
    row_groups_per_rank: int = 4
    max_rows_per_row_group: int = 262144

    def __post_init__(self):
        _check(0.0 < self.validation_fraction < 1.0, "materialize.validation_fraction", "must be in (0, 1)")
        _check(self.max_ranks >= 1, "materialize.max_ranks", "must be >= 1")
        _check(self.row_groups_per_rank >= 1, "materialize.row_groups_per_rank", "must be >= 1")
        _check(self.max_rows_per_row_group >= 1, "materialize.max_rows_per_row_group", "must be >= 1")


@dataclass(frozen=True)
class ModelConfig:
    """Which network to train: a built-in one or a user factory 'module:function'."""

    kind: Literal["mlp", "cnn", "custom"] = "mlp"
    hidden: List[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.1
    image_shape: Optional[Tuple[int, int, int]] = None
    factory: Optional[str] = None
    factory_args: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        _check(all(h > 0 for h in self.hidden), "model.hidden", "layer widths must be > 0")
        _check(0.0 <= self.dropout < 1.0, "model.dropout", "must be in [0, 1)")
        if self.kind == "custom":
            _check(bool(self.factory) and ":" in (self.factory or ""), "model.factory",
                   "kind 'custom' needs factory: 'package.module:function'")
        if self.kind == "cnn":
            _check(self.image_shape is not None, "model.image_shape",
                   "kind 'cnn' needs image_shape: [channels, height, width]")


@dataclass(frozen=True)
class TrainConfig:
    """Distributed training: ranks, optimisation, and the options of the loop."""

    ranks: Optional[int] = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 0.0
    lr_scaling: Literal["linear", "sqrt", "none"] = "linear"
    compression: Literal["none", "fp16"] = "none"
    backward_passes_per_step: int = 1
    mixed_precision: Literal["none", "bf16", "fp16"] = "none"
    shuffle_buffer: int = 10000
    prefetch_batches: int = 4
    seed: int = 0
    init_from: Optional[str] = None
    freeze: List[str] = field(default_factory=list)
    start_timeout_s: float = 120.0
    rendezvous_timeout_s: float = 60.0
    progress_timeout_s: float = 600.0
    max_attempts: int = 3
    #: Extra environment for every rank, set before ``hvd.init()``: Horovod's tuning knobs
    #: (HOROVOD_CYCLE_TIME, HOROVOD_FUSION_THRESHOLD) or its profiler (HOROVOD_TIMELINE).
    env: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        _check(self.ranks is None or self.ranks >= 1, "train.ranks", "must be >= 1 (or omitted: all slots)")
        _check(self.epochs >= 1, "train.epochs", "must be >= 1")
        _check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        _check(self.lr > 0, "train.lr", "must be > 0")
        _check(self.weight_decay >= 0, "train.weight_decay", "must be >= 0")
        _check(self.backward_passes_per_step >= 1, "train.backward_passes_per_step", "must be >= 1")
        _check(self.shuffle_buffer >= 0, "train.shuffle_buffer", "must be >= 0 (0 turns shuffling off)")
        _check(self.prefetch_batches >= 0, "train.prefetch_batches", "must be >= 0")
        for key in ("start_timeout_s", "rendezvous_timeout_s", "progress_timeout_s"):
            _check(getattr(self, key) > 0, f"train.{key}", "must be > 0 seconds")
        _check(self.max_attempts >= 1, "train.max_attempts", "must be >= 1")
        for name in self.env:
            _check(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None, f"train.env.{name}",
                   "is not an environment variable name (letters, digits, underscores)")


@dataclass(frozen=True)
class JobConfig:
    """A whole ETL-plus-train job."""

    data: DataConfig
    schema: SchemaConfig
    name: str = "job"
    spark: SparkConfig = field(default_factory=SparkConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    materialize: MaterializeConfig = field(default_factory=MaterializeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        _check(bool(re.match(r"^[A-Za-z0-9_.\-]+$", self.name)), "name",
               "use letters, digits, '_', '-', '.' (it names run directories)")
        if self.train.ranks is not None:
            _check(self.train.ranks <= self.materialize.max_ranks, "train.ranks",
                   f"{self.train.ranks} ranks > materialize.max_ranks={self.materialize.max_ranks}; "
                   "raise max_ranks so every rank gets several row groups")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------- loading


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, List):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin in (tuple, Tuple):
        return "a list of " + ", ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (dict, Dict):
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null", Any: "any value"}.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Convert a YAML value to ``tp``, raising ConfigError with ``path`` on mismatch."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError:
                pass
        raise ConfigError(path, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(path, f"expected {_type_name(tp)}, got {value!r}")
        return value
    if origin in (list, List):
        if not isinstance(value, list):
            raise ConfigError(path, f"expected {_type_name(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, Tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(path, f"expected {_type_name(tp)}, got {value!r}")
        return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {value!r}")
        _, vt = typing.get_args(tp)
        if vt is str:  # Spark-style options: accept scalars, store their string form
            out = {}
            for k, v in value.items():
                if isinstance(v, (dict, list)) or v is None:
                    raise ConfigError(f"{path}.{k}", f"expected a string or number, got {v!r}")
                out[str(k)] = str(v).lower() if isinstance(v, bool) else str(v)
            return out
        return {str(k): _convert(v, vt, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        return value
    raise ConfigError(path, f"unsupported type {tp}")  # pragma: no cover - a bug in this module


#: Keys that sparkdl no longer reads, and what to do about them.
_REMOVED = {
    "train.reader": "sparkdl reads every dataset with pyarrow since it stopped depending on Petastorm "
                    "(Petastorm cannot be installed beside Spark >= 4.1); delete this key",
}


def _build(cls: type, raw: Any, path: str) -> Any:
    where = path or "top level"
    if not isinstance(raw, dict):
        raise ConfigError(where, f"expected a mapping, got {raw!r}")
    for key in raw:
        full = f"{path}.{key}" if path else str(key)
        if full in _REMOVED:
            raise ConfigError(full, f"this key was removed: {_REMOVED[full]}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        prefix = f"{path}." if path else ""
        raise ConfigError(prefix + str(unknown[0]), f"unknown key; expected one of {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in raw:
            kwargs[name] = _convert(raw[name], hints[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(sub, f"required value missing (expected {_type_name(hints[name])})")
    return cls(**kwargs)  # __post_init__ checks name their full key paths


_OVERRIDE_RE = re.compile(r"^([A-Za-z_][\w.]*)=(.*)$")


def _split_override_key(dotted: str) -> List[str]:
    """Split 'a.b.c' along the config's structure: below a mapping field (spark.conf,
    data.options) the rest is one key, since Spark's own keys contain dots."""
    parts, out, tp = dotted.split("."), [], JobConfig
    while parts:
        out.append(parts.pop(0))
        hints = typing.get_type_hints(tp) if dataclasses.is_dataclass(tp) else {}
        tp = hints.get(out[-1])
        if typing.get_origin(tp) in (dict, Dict) and parts:
            out.append(".".join(parts))
            break
        if not dataclasses.is_dataclass(tp):
            out.extend(parts)
            break
    return out


def apply_overrides(raw: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw config mapping."""
    for item in overrides:
        m = _OVERRIDE_RE.match(item)
        if not m:
            raise ConfigError(item, "an override must look like key.path=value, e.g. train.epochs=3")
        keys, value = _split_override_key(m.group(1)), yaml.safe_load(m.group(2))
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(m.group(1), f"'{k}' is not a mapping, cannot set a key below it")
        node[keys[-1]] = value
    return raw


def parse_config(raw: Dict[str, Any], source: Optional[str] = None) -> JobConfig:
    """Build a validated JobConfig from a mapping."""
    try:
        return _build(JobConfig, raw, "")
    except ConfigError as e:
        if source and source not in str(e):
            raise ConfigError(e.path, str(e).split(": ", 1)[1], source) from None
        raise


def load_config(path: "str | os.PathLike[str]", overrides: Optional[List[str]] = None) -> JobConfig:
    """Load and validate a job config from YAML (relative data paths resolve against the file)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("(file)", f"config file {str(p)!r} not found", None)
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError("(file)", f"not valid YAML: {e}", str(p)) from None
    if not isinstance(raw, dict):
        raise ConfigError("(file)", "the top level must be a mapping", str(p))
    raw = apply_overrides(raw, overrides or [])
    data = raw.get("data")
    if isinstance(data, dict) and data.get("format", "csv") not in ("jdbc", "synthetic"):
        for key in ("train", "test"):
            val = data.get(key)
            if isinstance(val, str) and _is_relative_local(val):
                data[key] = str((p.parent / val).resolve())
    return parse_config(raw, str(p))


def _is_relative_local(path: str) -> bool:
    return not (path.startswith("/") or "://" in path or path.startswith("embedded:"))
