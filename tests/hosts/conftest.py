"""The multi-host tier: hosts in network namespaces on one machine (``testbed.py``).

Where namespaces cannot be made (not root), the tier is skipped with the reason; under
``CI`` that is a failure, so a CI machine that lost the privilege cannot pass silently.
"""
import os

import pytest

from tests.hosts.testbed import Testbed, TestbedUnavailable, check_permitted


@pytest.fixture(scope="session")
def hosts_permitted():
    try:
        check_permitted()
    except TestbedUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs the multi-host tier, but: {e}", pytrace=False)
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def bed(hosts_permitted):
    """One testbed per test module, torn down whatever happens."""
    with Testbed() as testbed:
        yield testbed
