"""Raw mappings (parsed YAML, ``key=value`` overrides) to the config's dataclasses.

The converter walks the dataclasses by their type hints (Literal, Optional, List, Dict,
Tuple, nested dataclasses) and checks each value strictly: YAML's ``true`` is not an
integer and ``"3"`` is not a number. Each dataclass's ``__post_init__`` then checks
ranges and cross-field rules. Errors name the key path.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Dict, List, Literal, Tuple

from sparkdl.core.errors import ConfigError


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is typing.Union:
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (list, List):
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if origin in (tuple, Tuple):
        return "a list of " + ", ".join(type_name(a) for a in typing.get_args(tp))
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
        raise ConfigError(path, f"expected {type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(path, f"expected {type_name(tp)}, got {value!r}")
        return value
    if origin in (list, List):
        if not isinstance(value, list):
            raise ConfigError(path, f"expected {type_name(tp)}, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, Tuple):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(path, f"expected {type_name(tp)}, got {value!r}")
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
        return build(tp, value, path)
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


def build(cls: type, raw: Any, path: str) -> Any:
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
            raise ConfigError(sub, f"required value missing (expected {type_name(hints[name])})")
    return cls(**kwargs)  # __post_init__ checks name their full key paths


def split_key(dotted: str, root: type) -> List[str]:
    """Split 'a.b.c' along the config's structure: below a mapping field (spark.conf,
    data.options) the rest is one key, since Spark's own keys contain dots."""
    parts, out, tp = dotted.split("."), [], root
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


def set_value(raw: Dict[str, Any], dotted: str, value: Any, root: type) -> None:
    """Set ``dotted`` (e.g. ``train.optimizer.lr``) in a raw config mapping."""
    keys = split_key(dotted, root)
    node = raw
    for k in keys[:-1]:
        if node.get(k) is None:  # an optional section left unset: setting a key below it sets it
            node[k] = {}
        node = node[k]
        if not isinstance(node, dict):
            raise ConfigError(dotted, f"'{k}' is not a mapping, cannot set a key below it")
    node[keys[-1]] = value
