"""Less communication per step, on real Spark ranks: every compression method and local
SGD trains, and a run whose rank was killed resumes from its checkpoint to the same
per-epoch history, number for number, as the run that was never interrupted."""
import pytest

from sparkdl.testing.faults import FaultSpec
from sparkdl.workflow import train

METHODS = {
    "torch-powersgd": {"train.backend": "torch", "train.allreduce.compression": "powersgd",
                       "train.allreduce.powersgd": {"rank": 2, "start_step": 20}},
    "torch-topk": {"train.backend": "torch", "train.allreduce.compression": "topk",
                   "train.allreduce.topk": {"ratio": 0.05}},
    "torch-bf16": {"train.backend": "torch", "train.allreduce.compression": "bf16"},
    # with early stopping's state (best epoch, its weights) carried across the resume too
    "torch-local_sgd": {"train.backend": "torch", "train.local_sgd": {"period": 4, "warmup_steps": 20},
                        "train.early_stopping": {"patience": 2}},
    "horovod-local_sgd": {"train.backend": "horovod", "train.local_sgd": {"period": 4, "warmup_steps": 20},
                          "train.early_stopping": {"patience": 2}},
    "horovod-fp16": {"train.backend": "horovod", "train.allreduce.compression": "fp16"},
}


def _numbers(history):
    return [(h["epoch"], h["loss"], h["val_loss"], h["val_accuracy"]) for h in history]


@pytest.mark.parametrize("method", list(METHODS))
def test_a_killed_rank_resumes_to_the_uninterrupted_history(method, spark_cluster, adult_config, adult_lake,
                                                             tmp_path):
    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 3, "train.ranks": 2, **METHODS[method]})
    straight = train(cfg, str(tmp_path / "straight"), spark=spark_cluster, manifest=manifest).metrics
    resumed = train(cfg, str(tmp_path / "resumed"), spark=spark_cluster, manifest=manifest,
                    callbacks=[FaultSpec(rank=1, epoch=2, step=30, mode="kill")]).metrics
    assert [h["attempt"] for h in resumed.history] == [1, 2, 2]
    assert resumed.attempts[1]["resumed_from_epoch"] == 1
    assert _numbers(resumed.history) == _numbers(straight.history)
    assert straight.validation["accuracy"] >= 0.83, straight.validation
