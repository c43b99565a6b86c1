"""What every rank of a run gets: the training spec, built from the job, its dataset and
the run's directory, and checked against the backend before anything starts."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

from sparkdl.core.config import JobConfig, TrainConfig
from sparkdl.core.config.backends import RULES
from sparkdl.core.errors import ConfigError
from sparkdl.core.models import model_spec
from sparkdl.core.parquet_index import DatasetIndex
from sparkdl.core.rundir import RunDir
from sparkdl.preparation.materialize import Manifest
from sparkdl.training.rank.callbacks import Callback
from sparkdl.training.rank.dealing import steps_per_epoch
from sparkdl.training.rank.loop import TrainSpec, too_few_rows
from sparkdl.training.rank.progress import StepProgress, TensorBoardLogger

log = logging.getLogger(__name__)


def train_spec(cfg: JobConfig, manifest: Manifest, stage: RunDir, init_from: Optional[str],
               data: Tuple[DatasetIndex, DatasetIndex], callbacks: Sequence[Callback] = ()) -> TrainSpec:
    """The spec every rank trains from (pickled into the barrier stage); ``data``: the
    training and validation splits' indexes (:func:`dataset_data`)."""
    return TrainSpec(train_data=data[0], validation_data=data[1],
                     model_spec=model_spec(cfg.model, manifest.feature_width, len(manifest.classes), manifest.task,
                                           manifest.target, embedding_tables(cfg.train, manifest)),
                     train=cfg.train, checkpoint_dir=str(stage.checkpoints), model_dir=str(stage.model),
                     init_from=init_from, callbacks=tuple(callbacks) + rank_callbacks(cfg, stage), loss=cfg.loss,
                     class_weights=class_weights(cfg, manifest),
                     image_shape=tuple(manifest.image["shape"]) if manifest.image else None,
                     indices=manifest.columns.get("indices"))


def dataset_data(t: TrainConfig, manifest: Manifest, replicas: int) -> Tuple[DatasetIndex, DatasetIndex]:
    """The training and validation splits' indexes; a training split too small for one
    step of every replica, or a validation split with fewer rows than replicas, is a
    ConfigError here, before anything starts."""
    train, validation = dataset_index(manifest, "train"), dataset_index(manifest, "validation")
    k = t.allreduce.backward_passes_per_step
    if steps_per_epoch(train.rows, replicas, t.batch_size, k) == 0:
        raise ConfigError("train.batch_size", too_few_rows(train.rows, replicas, t.batch_size, k))
    if validation.rows < replicas:  # a sharded model's validation is a collective every replica joins with rows
        raise ConfigError("train.ranks", f"the validation split has {validation.rows} rows, fewer than the "
                                         f"{replicas} data-parallel replicas: every replica validates at least one "
                                         "row; use fewer ranks or prepare with a larger materialize.validation_fraction")
    return train, validation


def dataset_index(manifest: Manifest, split: str) -> DatasetIndex:
    """A split's row-group index: the manifest's, or for a dataset prepared before
    manifests kept one, read from its footers here, once for every rank."""
    index = manifest.index_of(split)
    if index is None:
        log.info("dataset %s has no row-group index in its manifest (prepared by an earlier sparkdl): reading "
                 "the %s split's footers once on the driver", manifest.dataset_id, split)
        index = DatasetIndex.from_footers(manifest.paths[split])
    return index


def embedding_tables(t: TrainConfig, manifest: Manifest) -> List[Dict[str, Any]]:
    """The manifest's embedding tables, each marked sparse or not, checked against the
    backend before anything starts."""
    tables = [{**e, "sparse": t.sparse_table(e["size"])} for e in manifest.embeddings]
    RULES[t.backend].check_tables(t, [e["name"] for e in tables if e["sparse"]])
    return tables


def rank_callbacks(cfg: JobConfig, stage: RunDir) -> Tuple[Callback, ...]:
    """The callbacks every run gets from its config: step progress when it is shown, and
    TensorBoard event files in the run."""
    p, t = cfg.progress, cfg.train
    out: Tuple[Callback, ...] = ()
    if p.interval_s > 0 and p.display != "off":
        out += (StepProgress(p.interval_s, t.batch_size),)
    if t.tensorboard:
        out += (TensorBoardLogger(str(stage.tensorboard), p.interval_s or 10.0, t.batch_size),)
    return out


def class_weights(cfg: JobConfig, manifest: Manifest) -> Optional[Tuple[float, ...]]:
    """The loss's per-class weights: as configured, or ``balanced`` from the training
    split's class counts (n / (classes x count), so every class weighs the same in total)."""
    weights = cfg.train.class_weights
    if weights is None:
        return None
    if weights != "balanced":
        return tuple(float(w) for w in weights)
    counts = manifest.label["counts"]
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise ConfigError("train.class_weights", f"classes {empty} have no rows in the training split, so "
                                                 "'balanced' cannot weigh them: give explicit weights or fix the data")
    total, k = sum(counts.values()), len(counts)
    return tuple(total / (k * counts[c]) for c in manifest.classes)
