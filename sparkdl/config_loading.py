"""YAML → the typed job configuration: conversion with errors that name the key path,
``key.path=value`` overrides, and the keys that moved or were removed.

The converter walks :mod:`sparkdl.config`'s dataclasses by their type hints (Literal,
Optional, List, Dict, Tuple, nested dataclasses) and checks each value strictly: YAML's
``true`` is not an integer and ``"3"`` is not a number. Each dataclass's
``__post_init__`` then checks ranges and cross-field rules.
"""
from __future__ import annotations

import dataclasses
import os
import re
import typing
import warnings
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Tuple

import yaml

from sparkdl.config import ConfigError, JobConfig

#: Flat ``train`` keys of sparkdl 0.1 and where they live now. They are still read, with a
#: FutureWarning naming the new key, until sparkdl 0.3.
MOVED = {
    "train.optimizer": "train.optimizer.name",  # when given as a string
    "train.lr": "train.optimizer.lr",
    "train.weight_decay": "train.optimizer.weight_decay",
    "train.lr_scaling": "train.optimizer.lr_scaling",
    "train.compression": "train.allreduce.compression",
    "train.backward_passes_per_step": "train.allreduce.backward_passes_per_step",
    "train.shuffle_buffer": "train.loader.shuffle_buffer",
    "train.prefetch_batches": "train.loader.prefetch_batches",
    "train.init_from": "train.fine_tune.init_from",
    "train.freeze": "train.fine_tune.freeze",
    "train.start_timeout_s": "train.launch.start_timeout_s",
    "train.rendezvous_timeout_s": "train.launch.rendezvous_timeout_s",
    "train.progress_timeout_s": "train.launch.progress_timeout_s",
    "train.env": "train.launch.env",
    "train.max_attempts": "train.failure.max_attempts",
}
#: Keys sparkdl no longer reads: ignored with a FutureWarning saying why (runs written by
#: 0.1 carry them in their config.yaml, and must still score).
REMOVED = {
    "train.reader": "sparkdl reads every dataset with pyarrow (Petastorm cannot be installed beside Spark "
                    ">= 4.1; the rows and their order are the same)",
}


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
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own error names the deeper key
            return _convert(value, options[0], path)
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


def _build(cls: type, raw: Any, path: str) -> Any:
    where = path or "top level"
    if not isinstance(raw, dict):
        raise ConfigError(where, f"expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{path}." if path else ""
    for key in raw:
        if not isinstance(key, str) or not key:
            raise ConfigError(prefix + repr(key), f"keys must be non-empty names, got {key!r}; "
                                                  f"expected one of {sorted(fields)}")
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(prefix + unknown[0], f"unknown key; expected one of {sorted(fields)}")
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


def set_value(raw: Dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` (e.g. ``train.optimizer.lr``) in a raw config mapping."""
    keys = _split_override_key(dotted)
    node = raw
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(dotted, f"'{k}' is not a mapping, cannot set a key below it")
    node[keys[-1]] = value


def apply_overrides(raw: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw config mapping."""
    for item in overrides:
        m = _OVERRIDE_RE.match(item)
        if not m:
            raise ConfigError(f"--set {item!r}", "an override must look like key.path=value, e.g. train.epochs=3")
        try:
            value = yaml.safe_load(m.group(2))
        except yaml.YAMLError as e:
            why = getattr(e, "problem", None) or e
            raise ConfigError(m.group(1), f"the value {m.group(2)!r} is not valid YAML ({why})") from None
        set_value(raw, m.group(1), value)
    return raw


def move_deprecated_keys(raw: Dict[str, Any], source: Optional[str] = None) -> None:
    """Move 0.1's flat ``train`` keys to their groups and drop removed ones, warning once
    per key with its new name or why it went."""
    train = raw.get("train")
    if not isinstance(train, dict):
        return
    where = f" in {source}" if source else ""
    for old, why in REMOVED.items():
        if train.pop(old.split(".", 1)[1], None) is not None:
            warnings.warn(f"config key '{old}'{where} is ignored: {why}; delete it", FutureWarning, stacklevel=3)
    for old, new in MOVED.items():
        key = old.split(".", 1)[1]
        if key not in train or (key == "optimizer" and not isinstance(train[key], str)):
            continue
        value = train.pop(key)
        group, leaf = new.split(".")[1:]
        target = train.setdefault(group, {})
        if not isinstance(target, dict) or leaf in target:
            raise ConfigError(old, f"both '{old}' and '{new}' are set; keep only '{new}'", source)
        target[leaf] = value
        warnings.warn(f"config key '{old}'{where} is deprecated and will be removed in sparkdl 0.3: "
                      f"use '{new}'", FutureWarning, stacklevel=3)


def parse_config(raw: Dict[str, Any], source: Optional[str] = None) -> JobConfig:
    """Build a validated JobConfig from a mapping."""
    try:
        move_deprecated_keys(raw, source)
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
    if isinstance(data, dict) and data.get("format", "csv") not in ("jdbc", "synthetic", "table"):
        for key in ("train", "test"):
            val = data.get(key)
            if isinstance(val, str) and _is_relative_local(val):
                data[key] = str((p.parent / val).resolve())
        image = data.get("image")
        if isinstance(image, dict) and isinstance(image.get("labels"), str) and _is_relative_local(image["labels"]):
            image["labels"] = str((p.parent / image["labels"]).resolve())
    return parse_config(raw, str(p))


def _is_relative_local(path: str) -> bool:
    return not (path.startswith("/") or "://" in path or path.startswith("embedded:"))
