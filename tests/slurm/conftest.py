"""The Slurm tier: a real one-node Slurm cluster (``slurm_cluster.py``) started for the
tier and stopped after. Where Slurm is not installed (or not as root) the tier is skipped
with the reason; under ``CI`` that is a failure, since ``make setup`` installs it there."""
import pytest

from tests.slurm.slurm_cluster import SlurmCluster, SlurmUnavailable, check_installed
from tests.tiers import unavailable


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    try:
        check_installed()
    except SlurmUnavailable as e:
        unavailable("Slurm", str(e))
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster
