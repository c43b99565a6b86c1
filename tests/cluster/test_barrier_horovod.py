"""The stack works: one barrier stage on real executors, Horovod over Gloo in every task."""
import pytest

from sparkdl.core.errors import LaunchError
from sparkdl.training.launch.driver import run_on_ranks


def _allreduce_sum(ctx):
    import os

    import horovod.torch as hvd
    import torch

    total = hvd.allreduce(torch.tensor([float(ctx.rank + 1)]), op=hvd.Sum, name="smoke")
    return {"rank": hvd.rank(), "size": hvd.size(), "sum": float(total[0]), "pid": os.getpid(),
            "gloo": hvd.gloo_enabled(), "device": ctx.device}


def test_two_ranks_allreduce_over_gloo(spark_cluster):
    results = run_on_ranks(spark_cluster, _allreduce_sum, num_ranks=2)
    assert [r["rank"] for r in results] == [0, 1]
    assert all(r["size"] == 2 and r["sum"] == 3.0 and r["gloo"] for r in results)
    assert results[0]["pid"] != results[1]["pid"], "ranks must be separate executor processes"
    assert all(r["device"] == "cpu" for r in results)


def test_second_launch_in_the_same_workers_reinitialises(spark_cluster):
    assert [r["sum"] for r in run_on_ranks(spark_cluster, _allreduce_sum, num_ranks=2)] == [3.0, 3.0]


def test_more_ranks_than_slots_fails_before_launch_saying_how_many(spark_cluster):
    with pytest.raises(LaunchError, match="cluster has 2"):
        run_on_ranks(spark_cluster, _allreduce_sum, num_ranks=3)
