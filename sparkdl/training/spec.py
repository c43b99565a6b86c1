"""What every rank of a run gets: the training spec, built from the job, its dataset and
the run's directory, and checked against the backend before anything starts."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from sparkdl.core.config import JobConfig, TrainConfig
from sparkdl.core.config.backends import RULES
from sparkdl.core.errors import ConfigError
from sparkdl.core.models import model_spec
from sparkdl.core.rundir import RunDir
from sparkdl.preparation.materialize import Manifest
from sparkdl.training.rank.callbacks import Callback
from sparkdl.training.rank.loop import TrainSpec
from sparkdl.training.rank.progress import StepProgress, TensorBoardLogger


def train_spec(cfg: JobConfig, manifest: Manifest, stage: RunDir, init_from: Optional[str],
               callbacks: Sequence[Callback] = ()) -> TrainSpec:
    """The spec every rank trains from (pickled into the barrier stage)."""
    return TrainSpec(train_path=manifest.paths["train"], validation_path=manifest.paths["validation"],
                     model_spec=model_spec(cfg.model, manifest.feature_width, len(manifest.classes), manifest.task,
                                           manifest.target, embedding_tables(cfg.train, manifest)),
                     train=cfg.train, checkpoint_dir=str(stage.checkpoints), model_dir=str(stage.model),
                     init_from=init_from, callbacks=tuple(callbacks) + rank_callbacks(cfg, stage), loss=cfg.loss,
                     class_weights=class_weights(cfg, manifest),
                     image_shape=tuple(manifest.image["shape"]) if manifest.image else None,
                     indices=manifest.columns.get("indices"))


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
