"""The one check every config section uses, and the pattern names follow."""
from __future__ import annotations

import re

from sparkdl.core.errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def check(cond: bool, path: str, message: str) -> None:
    """Raise a :class:`ConfigError` at ``path`` unless ``cond``."""
    if not cond:
        raise ConfigError(path, message)
