"""A prepared dataset as Ray Data datasets, for a Ray Train loop of your own.

``sparkdl train --launcher ray`` runs sparkdl's own loop in Ray Train's workers and reads
the dataset with sparkdl's reader. A Ray Train user who writes the loop reads the same
dataset here: one ``ray.data.Dataset`` a split, from ``read_parquet`` on the split's
materialized files, with the manifest's columns (the ``features`` vector of
``feature_width`` float32 values, the ``label``, and for embedding jobs the
``categories`` indices), then shards it over the workers with ``datasets=`` as usual.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

from sparkdl.core.columns import INDICES
from sparkdl.core.lake import Lake
from sparkdl.preparation.materialize import Manifest

SPLITS = ("train", "validation", "test")


def dataset_columns(manifest: Manifest) -> Tuple[str, ...]:
    """The columns a trainer reads from ``manifest``'s splits."""
    columns = (manifest.columns["features"], manifest.columns["label"])
    return (*columns, INDICES) if manifest.embeddings else columns


def ray_datasets(lake: str, job: str, splits: Sequence[str] = SPLITS) -> Dict[str, "ray.data.Dataset"]:  # noqa: F821
    """The current prepared dataset of ``job`` in ``lake``: {split: Ray dataset} for each
    of ``splits`` the dataset has (a job without a test split has none)."""
    import ray.data

    manifest = Manifest.load(Lake(lake).current_dataset(job))
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"splits {unknown}: a prepared dataset has {', '.join(SPLITS)}")
    columns = list(dataset_columns(manifest))
    return {split: ray.data.read_parquet(manifest.paths[split], columns=columns)
            for split in splits if split in manifest.paths and manifest.splits.get(split)}
