"""The configuration reference page, generated from the config classes: their docstrings,
their fields' types and defaults, and the ``#:`` comment above each field. A test checks
that ``docs/configuration.md`` equals a fresh generation, so the page cannot drift.

    python -m sparkdl.core.config.reference > docs/configuration.md
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from typing import Any, Dict, List, Optional, Tuple

from sparkdl.core.config.convert import type_name
from sparkdl.core.config.job import JobConfig

_FIELD = re.compile(r"^    (\w+): ")


def field_comments(cls: type) -> Dict[str, str]:
    """Each field's ``#:`` comment lines, joined; fields without one are left out."""
    out: Dict[str, str] = {}
    pending: List[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        m = _FIELD.match(line)
        if m and pending:
            out[m.group(1)] = " ".join(pending)
        pending = []
    return out


def _dataclass_of(tp: Any) -> Optional[type]:
    """The config class a field holds (directly or Optional), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Union and len(args) == 1 and dataclasses.is_dataclass(args[0]):
        return args[0]
    return None


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (dict, list, tuple)) and not value:
        return "empty"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def sections(cls: type = JobConfig, prefix: str = "") -> List[Tuple[str, type, List[Tuple[str, str, str, str]]]]:
    """(key path, class, rows of (key, type, default, description)) for ``cls`` and every
    config class below it, depth first."""
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    rows, nested = [], []
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        inner = _dataclass_of(tp)
        if inner is not None:
            nested.append((f"{key}.", inner))
            continue
        rows.append((key, type_name(tp), _default(f), comments.get(f.name, "")))
        args = typing.get_args(tp)
        if typing.get_origin(tp) in (list, List) and dataclasses.is_dataclass(args[0]):
            nested.append((f"{key}[].", args[0]))  # each item of the list
        elif typing.get_origin(tp) in (dict, Dict) and dataclasses.is_dataclass(args[1]):
            nested.append((f"{key}.<name>.", args[1]))  # each entry of the mapping
    out = [(prefix.rstrip(".") or "(top level)", cls, rows)]
    for inner_prefix, inner in nested:
        out += sections(inner, inner_prefix)
    return out


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the config classes (`sparkdl/core/config/`) by",
        "`python -m sparkdl.core.config.reference > docs/configuration.md`; a test fails when",
        "this page differs from a fresh generation. A job is one YAML file with these keys;",
        "anything else is a `ConfigError` naming the key path, raised before Spark starts.",
        "Relative data paths resolve against the config file; `embedded:NAME` names the",
        "example data shipped in the package. `--set key.path=value` overrides any key.",
        "",
    ]
    for path, cls, rows in sections():
        if not rows:
            continue
        doc = inspect.cleandoc(cls.__doc__ or "")
        lines += [f"## `{path}`", "", doc.replace("\n", " "), "",
                  "| key | type | default | what it does |", "| --- | --- | --- | --- |"]
        lines += [f"| `{k}` | {_cell(t)} | {_cell(d)} | {_cell(c)} |" for k, t, d, c in rows]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def undocumented() -> List[str]:
    """Keys with no ``#:`` comment (the test requires none)."""
    return [k for _, _, rows in sections() for k, _, _, c in rows if not c]


if __name__ == "__main__":
    print(render(), end="")
