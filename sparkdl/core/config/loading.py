"""YAML to the typed job configuration: files, ``key.path=value`` overrides, relative
paths, and the keys that moved or were removed."""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from sparkdl.core.config.convert import build, set_value
from sparkdl.core.config.job import JobConfig
from sparkdl.core.errors import ConfigError

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


_WORDS = {"on", "off", "yes", "no", "y", "n"}
_OVERRIDE_RE = re.compile(r"^([A-Za-z_][\w.]*)=(.*)$")


def apply_overrides(raw: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw config mapping."""
    for item in overrides:
        m = _OVERRIDE_RE.match(item)
        if not m:
            raise ConfigError(f"--set {item!r}", "an override must look like key.path=value, e.g. train.epochs=3")
        try:  # YAML 1.1 reads on/off/yes/no as booleans; in an override they are words (tracking.mlflow=on)
            text = m.group(2)
            value = text if text.strip().lower() in _WORDS else yaml.safe_load(text)
        except yaml.YAMLError as e:
            why = getattr(e, "problem", None) or e
            raise ConfigError(m.group(1), f"the value {m.group(2)!r} is not valid YAML ({why})") from None
        set_value(raw, m.group(1), value, JobConfig)
    return raw


def move_deprecated_keys(raw: Dict[str, Any], source: Optional[str] = None) -> None:
    """Move 0.1's flat ``train`` keys to their groups and drop removed ones, warning once
    per key with its new name or why it went."""
    where = f" in {source}" if source else ""
    for old, why in REMOVED.items():
        section, key = old.split(".", 1)
        if isinstance(raw.get(section), dict) and raw[section].pop(key, None) is not None:
            warnings.warn(f"config key '{old}'{where} is ignored: {why}; delete it", FutureWarning, stacklevel=3)
    train = raw.get("train")
    if not isinstance(train, dict):
        return
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
        return build(JobConfig, raw, "")
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
