"""Training in one barrier stage on real executors (Horovod, and torch.distributed where
a test takes the ``backend`` parameter), and the run it writes back."""
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from sparkdl.core.errors import TrainingError
from sparkdl.core.lake import COMMIT_MARKER, Lake
from sparkdl.core.models import load_model
from sparkdl.preparation.materialize import Manifest
from sparkdl.testing.faults import FaultSpec
from sparkdl.workflow import train


def _validation_arrays(manifest):
    table = pq.read_table(manifest.paths["validation"])
    x = np.stack(table.column("features").to_numpy(zero_copy_only=False)).astype(np.float32)
    return torch.from_numpy(x), torch.tensor(table.column("label").to_pylist())


def test_two_ranks_reach_the_accuracy_target(backend_run):
    m = backend_run.metrics
    assert m.train["ranks"] == 2 and m.train["devices"] == ["cpu", "cpu"]
    assert m.validation["accuracy"] >= 0.84
    assert [h["epoch"] for h in m.history] == [1, 2, 3, 4]
    for h in m.history:
        assert {"epoch", "loss", "val_loss", "val_accuracy", "samples_per_sec", "seconds"} <= set(h)
        assert h["samples_per_sec"] > 0 and h["val_rows"] == 3169
        # the loop's own profile: waiting for batches, forward and backward, the step
        assert 0 < h["data_s"] + h["compute_s"] + h["step_s"] <= h["seconds"]


def test_ranks_end_with_identical_parameters(backend_run):
    # the check is made by train() from every rank's parameter digest; it is recorded only if it passed
    assert backend_run.metrics.train["identical_parameters"] is True


def test_run_directory_is_complete_and_reloads_to_the_same_predictions(backend_run, adult_lake):
    _, manifest = adult_lake
    run = backend_run.path
    for name in ("model/weights.pt", "model/spec.json", "preprocessing", "checkpoints", "tensorboard", "manifest.json",
                 "metrics.json", "config.yaml", "metrics.png", "summary.txt", COMMIT_MARKER):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"history", "train", "attempts"} <= set(metrics)
    assert {"ranks", "samples_per_sec", "epochs"} <= set(metrics["train"])
    stages = metrics["stages"]
    assert set(stages) == {"launch", "train", "write_back"} and all(v > 0 for v in stages.values())
    # launch ends at rank 0's first step: after the stage starts, before training ends
    assert 0 < metrics["train"]["time_to_first_step_s"] == stages["launch"] < metrics["train"]["seconds"]
    assert "stages: launch" in (run / "summary.txt").read_text()
    assert Manifest.load(run / "manifest.json") == manifest
    assert Lake(str(run.parent.parent)).find_run(backend_run.run_id) == run

    # TensorBoard: one point per epoch for each epoch metric, and step points between them
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard")).Reload()
    steps = metrics["train"]["steps_per_epoch"]
    for tag in ("epoch/loss", "epoch/val_accuracy", "epoch/lr", "epoch/samples_per_sec"):
        assert [e.step for e in events.Scalars(tag)] == [steps * h["epoch"] for h in metrics["history"]], tag
    assert [round(e.value, 4) for e in events.Scalars("epoch/val_accuracy")] == \
        [round(h["val_accuracy"], 4) for h in metrics["history"]]
    assert len(events.Scalars("step/loss")) >= len(metrics["history"])

    model, spec = load_model(run / "model")
    x, y = _validation_arrays(manifest)
    with torch.no_grad():
        logits = model(x)
    correct = int((logits.argmax(1) == y).sum())
    assert correct == round(metrics["validation"]["accuracy"] * len(y))  # the same rows right, exactly
    # the last checkpoint holds the same weights as the exported model
    last = torch.load(sorted((run / "checkpoints").glob("epoch-*.pt"))[-1], weights_only=True)
    fresh, _ = load_model(run / "model")
    fresh.load_state_dict(last["model"])
    with torch.no_grad():
        assert torch.equal(fresh(x), logits)


def _write_uneven_dataset(root: Path, base: Manifest) -> Manifest:
    """Row groups of 3000 and 1000 rows (dealt whole, i % 2, they would split 3/1), in a
    manifest without an index (as datasets prepared before indexes have)."""
    src = pq.read_table(base.paths["train"])
    val = pq.read_table(base.paths["validation"])
    train_dir, val_dir = root / "train", root / "validation"
    train_dir.mkdir(parents=True), val_dir.mkdir(parents=True)
    pq.write_table(src.slice(0, 3000), train_dir / "part-0.parquet", row_group_size=3000)
    pq.write_table(src.slice(3000, 1000), train_dir / "part-1.parquet", row_group_size=1000)
    pq.write_table(val.slice(0, 600), val_dir / "part-0.parquet", row_group_size=600)
    pq.write_table(val.slice(600, 200), val_dir / "part-1.parquet", row_group_size=200)
    paths = dict(base.paths, train=str(train_dir), validation=str(val_dir))
    return dataclasses.replace(base, paths=paths, row_groups={"train": 2, "validation": 2},
                               splits={"train": 4000, "validation": 800}, index=None)


def test_uneven_row_groups_give_equal_rows_to_every_rank_and_every_row_each_epoch(spark_cluster, adult_config, adult_lake, tmp_path):
    lake, manifest = adult_lake
    uneven = _write_uneven_dataset(tmp_path / "uneven", manifest)
    cfg = adult_config.with_values({"train.epochs": 2, "train.ranks": 2, "train.batch_size": 100,
                                    "train.launch.progress_timeout_s": 60})
    result = train(cfg, str(tmp_path / "lake"), spark=spark_cluster, manifest=uneven)
    t = result.metrics.train
    assert t["rows_per_rank"] == [2000, 2000] and t["coverage"] == 1.0
    assert t["steps_per_epoch"] == 20  # 4000 rows / (2 ranks x batch 100)
    assert [h["steps"] for h in result.metrics.history] == [20, 20]
    assert [h["rows_per_rank"] for h in result.metrics.history] == [[2000, 2000]] * 2
    assert result.metrics.history[-1]["val_rows"] == 800


def test_a_rank_that_raises_is_reported_with_its_rank_quickly(spark_cluster, adult_config, adult_lake, tmp_path):
    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 2, "train.ranks": 2})
    t0 = time.monotonic()
    with pytest.raises(TrainingError) as e:
        train(cfg, str(tmp_path / "lake"), spark=spark_cluster, manifest=manifest,
              callbacks=[FaultSpec(rank=1, epoch=1, step=7, mode="raise")])
    elapsed = time.monotonic() - t0
    assert e.value.rank == 1
    assert "InjectedFault" in str(e.value) and "rank 1 epoch 1 step 7" in str(e.value)
    assert "loop.py" in e.value.traceback_tail  # the rank's own traceback, not a JVM stack
    assert elapsed < 60
    # nothing half-written looks like a run
    assert Lake(str(tmp_path / "lake")).list_runs() == []


def test_fine_tuning_starts_from_an_earlier_run_with_frozen_layers(spark_cluster, adult_config, adult_lake,
                                                                     backend, backend_run):
    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 1, "train.ranks": 2, "train.backend": backend,
                                    "train.fine_tune.init_from": backend_run.run_id,
                                    "train.fine_tune.freeze": ["0."], "train.optimizer.lr": 1e-4})
    tuned = train(cfg, str(lake), spark=spark_cluster, manifest=manifest)
    before = torch.load(backend_run.path / "model" / "weights.pt", weights_only=True)
    after = torch.load(tuned.path / "model" / "weights.pt", weights_only=True)
    assert torch.equal(before["0.weight"], after["0.weight"])  # frozen: untouched
    assert not torch.equal(before["3.weight"], after["3.weight"])  # trained on
    assert tuned.metrics.validation["accuracy"] >= 0.84  # started from a trained model


def test_compression_accumulation_and_bf16_train_well(spark_cluster, adult_config, adult_lake, backend, tmp_path):
    lake, manifest = adult_lake
    timeline = tmp_path / "timeline.json"  # train.env reaches hvd.init: Horovod's profiler writes here
    cfg = adult_config.with_values({"train.epochs": 2, "train.ranks": 2, "train.allreduce.compression": "fp16",
                                    "train.allreduce.backward_passes_per_step": 2, "train.backend": backend,
                                    "train.mixed_precision": "bf16", "train.batch_size": 64,
                                    "train.launch.env": {"HOROVOD_TIMELINE": str(timeline)}})
    result = train(cfg, str(tmp_path / "lake"), spark=spark_cluster, manifest=manifest)
    assert result.metrics.train["steps_per_epoch"] % 2 == 0
    assert ("ALLREDUCE" in timeline.read_text()) if backend == "horovod" else not timeline.exists()
    assert result.metrics.validation["accuracy"] >= 0.84
    assert result.metrics.train["identical_parameters"] is True


def test_a_user_model_factory_trains(spark_cluster, adult_config, adult_lake, tmp_path):
    lake, manifest = adult_lake
    cfg = dataclasses.replace(adult_config.with_values({"train.epochs": 2, "train.ranks": 2,
                                                        "train.optimizer.lr": 0.01}),
                              model=dataclasses.replace(adult_config.model, kind="custom", factory="torch.nn:Linear"))
    result = train(cfg, str(tmp_path / "lake"), spark=spark_cluster, manifest=manifest)
    model, spec = load_model(result.path / "model")
    assert isinstance(model, torch.nn.Linear) and spec["factory"] == "torch.nn:Linear"
    assert result.metrics.validation["accuracy"] >= 0.82  # logistic regression on the same features


def test_fsdp_shards_the_model_and_writes_it_back_whole(spark_cluster, adult_config, adult_lake, tmp_path):
    """train.strategy: fsdp (torch.distributed's fully_shard over Gloo): each rank holds half
    of every parameter while training and checkpoints its own half; rank 1 SIGKILLed in
    epoch 2 resumes from the shards; the model is gathered whole."""
    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 3, "train.ranks": 2, "train.backend": "torch",
                                    "train.strategy": "fsdp"})
    result = train(cfg, str(tmp_path / "lake"), spark=spark_cluster, manifest=manifest,
                   callbacks=[FaultSpec(rank=1, epoch=2, step=20, mode="kill")])
    assert result.metrics.attempts[1]["resumed_from_epoch"] == 1
    assert result.metrics.validation["accuracy"] >= 0.84
    assert result.metrics.history[-1]["val_rows"] == 3169  # every validation row once, despite lockstep batches
    model, _ = load_model(result.path / "model")
    x, y = _validation_arrays(manifest)
    with torch.no_grad():
        correct = int((model(x).argmax(1) == y).sum())
    assert correct == round(result.metrics.validation["accuracy"] * len(y))
    checkpoints = result.path / "checkpoints"
    assert torch.load(checkpoints / "epoch-0003.pt", weights_only=True)["shards"] == 2
    halves = [torch.load(checkpoints / f"epoch-0003.shard-0{k}.pt", weights_only=True)["model"] for k in (0, 1)]
    for name, whole in model.state_dict().items():  # each rank's half of every parameter, nothing gathered
        assert halves[0][name].shape[0] + halves[1][name].shape[0] == whole.shape[0], name
