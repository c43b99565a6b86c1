"""The one rule for a test tier that cannot run here (a daemon, a privilege or an
environment missing): skipped with the reason, except under ``CI``, where ``make setup``
provides everything and a skip would let a broken machine pass silently."""
import os

import pytest


def unavailable(tier: str, reason: str, module_level: bool = False) -> None:
    """Skip (or, under ``CI``, fail) the caller's tests because ``tier`` cannot run: ``reason``."""
    if os.environ.get("CI"):
        pytest.fail(f"CI runs the {tier} tier, but: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)
