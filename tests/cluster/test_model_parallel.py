"""Models split across ranks in the barrier stage: pipeline stages (1F1B, interleaved),
pipeline x data parallel on a 2 x 2 mesh, and tensor-parallel layers, each against the
data-parallel runs of the same job (Horovod's and DDP's, ``backend_run``).

The tolerance: the runs differ in global batch (a data-parallel run of 2 ranks steps on
256 rows, a 2-stage pipeline on 128) and in their dropout draws, and over 4 epochs on
Adult such runs land within 0.005 of each other in validation AUC and 0.01 in accuracy;
the bounds below are twice that.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from sparkdl.core.models import load_model
from sparkdl.serving.score import score
from sparkdl.testing.faults import FaultSpec
from sparkdl.training.rank.checkpoints import list_checkpoints
from sparkdl.workflow import train

REPO = Path(__file__).resolve().parents[2]


def _job(adult_config, **values):
    return adult_config.with_values({"train.epochs": 4, "train.ranks": 2, "train.backend": "torch", **values})


@pytest.fixture(scope="module")
def pipeline_run(spark_cluster, adult_config, adult_lake, tmp_path_factory):
    """Two 1F1B stages; rank 1 (the last stage) is SIGKILLed in epoch 3 and the run resumes
    from the stages' checkpoint shards of epoch 2."""
    lake, manifest = adult_lake
    cfg = _job(adult_config, **{"train.strategy": "pipeline", "train.pipeline.schedule": "1f1b"})
    return train(cfg, str(tmp_path_factory.mktemp("pipeline-lake")), spark=spark_cluster, manifest=manifest,
                 callbacks=[FaultSpec(rank=1, epoch=3, step=20, mode="kill")])


def _scored_accuracy(spark, run, adult_config, out: Path) -> float:
    score(spark, run.path, adult_config.data.test, str(out))
    preds = pq.read_table(out, columns=["class", "prediction"]).to_pandas()
    return float((preds["class"].str.rstrip(".") == preds["prediction"]).mean())


def test_pipeline_resumes_from_stage_shards_and_matches_data_parallel(spark_cluster, pipeline_run, backend_run,
                                                                      adult_config, adult_lake, tmp_path):
    m = pipeline_run.metrics
    assert [h["epoch"] for h in m.history] == [1, 2, 3, 4] and [h["attempt"] for h in m.history] == [1, 1, 2, 2]
    assert m.attempts[1]["resumed_from_epoch"] == 2
    # each stage's part in a shard of its own, beside the epoch's file that counts them
    checkpoints = pipeline_run.path / "checkpoints"
    epoch, path = list_checkpoints(checkpoints)[0]
    assert torch.load(path, weights_only=True)["shards"] == 2 and epoch == 4
    assert m.train["identical_parameters"] is True
    shards = [torch.load(checkpoints / f"epoch-0004.shard-0{k}.pt", weights_only=True) for k in (0, 1)]
    model, _ = load_model(pipeline_run.path / "model")  # written back whole, under the network's own names
    assert sorted(shards[0]["model"]) + sorted(shards[1]["model"]) == sorted(model.state_dict())
    assert set(shards[0]["model"]).isdisjoint(shards[1]["model"])

    ours, theirs = m.validation, backend_run.metrics.validation
    assert ours["accuracy"] >= 0.84 and abs(ours["auc"] - theirs["auc"]) <= 0.01
    assert abs(ours["accuracy"] - theirs["accuracy"]) <= 0.02
    # sparkdl score cannot tell: the same predictions path, the same accuracy on Adult's test file
    mine = _scored_accuracy(spark_cluster, pipeline_run, adult_config, tmp_path / "pipeline")
    other = _scored_accuracy(spark_cluster, backend_run, adult_config, tmp_path / "data-parallel")
    assert mine >= 0.84 and abs(mine - other) <= 0.02


def test_interleaved_and_tensor_parallel_train(spark_cluster, adult_config, adult_lake, tmp_path):
    """Interleaved 1F1B over 2 chunks per rank (4 stages of a deeper MLP), and the MLP's
    layers split column- then row-wise across 2 ranks; both written back whole."""
    lake, manifest = adult_lake
    runs = {
        "interleaved": _job(adult_config, **{"train.epochs": 2, "model.hidden": [128, 64, 32],
                                             "train.strategy": "pipeline", "train.pipeline.schedule": "interleaved"}),
        "tensor": _job(adult_config, **{"train.epochs": 2, "train.strategy": "tensor"}),
    }
    for name, cfg in runs.items():
        result = train(cfg, str(tmp_path / name), spark=spark_cluster, manifest=manifest)
        assert result.metrics.validation["accuracy"] >= 0.84, name
        model, _ = load_model(result.path / "model")
        width = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        hidden = cfg.model.hidden
        # every hidden layer whole, not a stage's or a rank's part of it
        assert [width[f"{3 * i}.weight"][0] for i in range(len(hidden))] == list(hidden), (name, width)


def test_a_2x2_mesh_of_pipeline_stages_and_replicas(adult_config, adult_lake, tmp_path):
    """4 ranks as 2 replicas of a 2-stage pipeline (its own 2 x 2-core local-cluster, through
    the command line): the replicas read half the data each and end identical."""
    lake, _ = adult_lake
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "sparkdl.cli", "train", str(REPO / "conf" / "adult.yaml"), "--lake", str(lake),
         "--set", "spark.master=local-cluster[2,2,1536]", "--set", "train.ranks=4", "--set", "train.backend=torch",
         "--set", "train.strategy=pipeline", "--set", "train.epochs=4", "--set", "tracking.mlflow=off",
         "--set", "progress.display=lines"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "4 ranks (2 replicas of 2 pipeline stages, 1f1b, 4 micro-batches)" in out.stderr
    assert re.search(r"epoch 1/4: step \d+/\d+ .* samples/s, loss \d", out.stderr)  # from the last stage
    run = Path(dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)["run_path"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["ranks"] == 4 and metrics["validation"]["accuracy"] >= 0.84
    assert 100 <= metrics["history"][0]["steps"] <= 29392 // 2 // 128  # each replica reads about half the rows
    assert metrics["train"]["identical_parameters"] is True  # each stage's replicas, compared stage by stage
