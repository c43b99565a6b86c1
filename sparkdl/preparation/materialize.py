"""Materialize: ingest → features → a training-ready Parquet dataset with its manifest.

The split is a seeded hash of each record's raw text, so it is deterministic whatever
the partitioning (and identical records never straddle train and validation). When
``materialize.test_fraction`` is set (and there is no ``data.test``), a test split is
carved from the next hash range beside validation. Each
split is written as Parquet that Petastorm's ``make_batch_reader`` reads, in row groups
of equal size (:func:`row_group_rows`), and the manifest keeps every file's row groups
(the index the ranks deal rows from). The ``manifest.json`` is what training and scoring
read; nothing re-derives it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional

import numpy as np

from sparkdl.core.columns import FEATURES, INDICES, LABEL, RAW
from sparkdl.core.config import JobConfig
from sparkdl.core.errors import DatasetTooSmallError
from sparkdl.core.lake import Lake, new_id, staged_dir, utc_now
from sparkdl.core.parquet_index import DatasetIndex
from sparkdl.core.records import VersionedRecord
from sparkdl.core.rundir import MANIFEST
from sparkdl.core.stopwatch import StageClock
from sparkdl.preparation import features as feats
from sparkdl.preparation.embeddings import plan_categoricals
from sparkdl.preparation.ingest import check_source, ingest, release
from sparkdl.preparation.portable import export
from sparkdl.preparation.profile import profile_rows

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
_HASH_BUCKETS = 1_000_000
#: How full of ``max_rows_per_row_group`` a file is aimed at: a round-robin repartition puts a
#: few rows more in some partitions than the mean.
_FILL = 0.98


@dataclass(frozen=True)
class Manifest(VersionedRecord):
    """Everything about a materialized dataset that training and scoring need."""

    name: str
    dataset_id: str
    created: str
    rows: Dict[str, int]
    splits: Dict[str, int]
    row_groups: Dict[str, int]
    feature_width: int
    feature_names: List[str]
    label: Dict[str, Any]
    schema_hash: str
    paths: Dict[str, str]
    quarantine: Dict[str, Any] = field(default_factory=dict)
    test_rows: Optional[Dict[str, int]] = None
    #: Where the test split came from: ``data.test``, ``materialize.test_fraction`` or None.
    test_source: Optional[str] = None
    #: Categorical columns learned as embeddings: name, kind (index, hash), table size, width
    #: and training cardinality each, in the order of the ``categories`` index column.
    embeddings: List[Dict[str, Any]] = field(default_factory=list)
    #: Images: how files were decoded, and the pixels' shape (channels, height, width);
    #: ``features`` then holds uint8 bytes, channels first (``channels x height x width``).
    image: Optional[Dict[str, Any]] = None
    columns: Dict[str, str] = field(default_factory=lambda: {"features": FEATURES, "label": LABEL,
                                                             "dtype": "float32"})
    #: The training split's distribution per declared feature (:mod:`sparkdl.preparation.profile`),
    #: what drift checks compare new rows with; None for images and datasets prepared before it.
    profile: Optional[Dict[str, Any]] = None
    #: Each split's data files and the rows of each of their row groups
    #: (:class:`~sparkdl.core.parquet_index.DatasetIndex`), so ranks read no footer to plan;
    #: None for datasets prepared before it (the driver reads their footers once).
    index: Optional[Dict[str, Any]] = None
    version: int = MANIFEST_VERSION

    VERSION: ClassVar[int] = MANIFEST_VERSION
    KIND: ClassVar[str] = "manifest"
    REWRITE_HINT: ClassVar[str] = "prepare the dataset again with this sparkdl"

    @classmethod
    def load(cls, path: "Path | str") -> "Manifest":
        """The manifest at ``path``: its file, or the dataset directory holding it."""
        p = Path(path)
        return super().load(p / MANIFEST if p.is_dir() else p)

    def index_of(self, split: str) -> Optional[DatasetIndex]:
        """``split``'s row-group index, or None when the manifest predates indexes."""
        if not self.index or split not in self.index:
            return None
        return DatasetIndex.from_dict(self.paths[split], self.index[split])

    @property
    def classes(self) -> List[str]:
        return list(self.label["classes"])

    @property
    def task(self) -> str:
        return self.label.get("task", "classification")

    @property
    def target(self) -> Optional[Dict[str, float]]:
        """The regression label's standardization (mean, std), when training uses one."""
        return self.label.get("target")


def schema_hash(cfg: JobConfig, names: List[str]) -> str:
    """Identifies the input schema, feature settings and resulting feature layout."""
    blob = json.dumps({"schema": dataclasses.asdict(cfg.schema), "features": dataclasses.asdict(cfg.features),
                       "feature_names": names}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def split_bucket(seed: int):
    """Seeded hash of the raw record text in [0, 1e6): which split a record falls in."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(F.col(RAW), F.lit(seed)), F.lit(_HASH_BUCKETS))


def split_conditions(m, indicator: Optional[str] = None) -> Dict[str, Any]:
    """Each split's condition on an accepted row: train / validation (/ test when
    ``m.test_fraction``) by hash range; with an ``indicator`` column, validation is its true
    rows and the hash carves test from the rest."""
    from pyspark.sql import functions as F

    bucket = split_bucket(m.seed)
    if indicator is not None:
        validation, start = F.col(f"`{indicator}`"), 0
    else:
        start = int(round(m.validation_fraction * _HASH_BUCKETS))
        validation = bucket < F.lit(start)
    t_end = start + int(round(m.test_fraction * _HASH_BUCKETS))
    out = {"train": ~validation & (bucket >= F.lit(t_end)), "validation": validation}
    if m.test_fraction > 0:
        out["test"] = ~validation & (bucket < F.lit(t_end))
    return out


def split_frames(accepted, m, indicator: Optional[str] = None) -> Dict[str, Any]:
    """The accepted rows of each split (:func:`split_conditions`)."""
    return {name: accepted.where(cond) for name, cond in split_conditions(m, indicator).items()}


def split_counts(accepted, m, indicator: Optional[str] = None) -> Dict[str, int]:
    """Rows in each split, in one pass over the (cached) accepted rows: what the layout is cut by."""
    from pyspark.sql import functions as F

    conds = split_conditions(m, indicator)
    row = accepted.agg(*[F.sum(F.when(c, 1).otherwise(0)).alias(k) for k, c in conds.items()]).collect()[0]
    return {k: int(row[k] or 0) for k in conds}


def label_summary(spark, cfg: JobConfig, train_path: Path) -> Dict[str, Any]:
    """The manifest's label record: task and classes, with the training split's class
    counts, or for regression the label's mean and standard deviation there (the target
    standardization when ``features.target_scaling`` is ``standard``)."""
    from pyspark.sql import functions as F

    schema = cfg.schema
    train = spark.read.parquet(str(train_path))
    out: Dict[str, Any] = {"name": schema.label, "task": schema.task, "classes": list(schema.classes),
                           "index": {c: i for i, c in enumerate(schema.classes)}}
    if schema.task == "regression":
        row = train.agg(F.avg(LABEL).alias("mean"), F.stddev_pop(LABEL).alias("std"),
                        F.min(LABEL).alias("min"), F.max(LABEL).alias("max")).collect()[0]
        out["stats"] = {k: float(row[k]) for k in ("mean", "std", "min", "max")}
        if cfg.features.target_scaling == "standard":
            out["target"] = {"mean": float(row["mean"]), "std": float(row["std"]) or 1.0}
    else:
        counts = {r[LABEL]: r["count"] for r in train.groupBy(LABEL).count().collect()}
        out["counts"] = {c: int(counts.get(i, 0)) for i, c in enumerate(schema.classes)}
    return out


def row_group_rows(rows: int, m, row_bytes: int) -> int:
    """Rows per row group for a split of ``rows`` rows of about ``row_bytes`` bytes: the split
    in ``max_ranks x row_groups_per_rank`` equal groups, smaller where that passes
    ``max_rows_per_row_group`` or ``max_bytes_per_row_group`` (equal groups keep reads even;
    the reader's row ranges keep ranks even whatever the layout)."""
    return max(1, min(row_cap(m, row_bytes), math.ceil(rows / (m.max_ranks * m.row_groups_per_rank))))


def row_cap(m, row_bytes: int) -> int:
    """The most rows one row group may hold: ``max_rows_per_row_group``, fewer where their
    bytes would pass ``max_bytes_per_row_group``."""
    return max(1, min(m.max_rows_per_row_group, m.max_bytes_per_row_group // max(row_bytes, 1)))


def write_split(df, path: Path, rows: int, per_group: int, cap: int) -> DatasetIndex:
    """Write one split of ``rows`` rows as Parquet files of about ``per_group`` rows, one row
    group each (a round-robin repartition deals rows evenly; ``cap``, the most rows a file
    may hold, only guards against a partition past it); its row-group index."""
    files = max(1, math.ceil(rows / per_group))
    if rows / files > _FILL * cap:  # room for the repartition's unevenness below the cap, so no file splits
        files = math.ceil(rows / (_FILL * cap))
    df.repartition(files).write.mode("overwrite").option("maxRecordsPerFile", cap).parquet(str(path))
    return DatasetIndex.from_footers(str(path))


def materialize(spark, cfg: JobConfig, lake: Lake, clock: Optional[StageClock] = None) -> Manifest:
    """Run ingest → features → write for ``cfg``; publish the dataset in ``lake`` atomically.
    ``clock`` (optional) gets the ingest, features and materialize stage times."""
    clock = clock or StageClock()
    t0 = time.monotonic()
    dataset_id = new_id()
    final = lake.dataset_root(cfg.name) / dataset_id
    m = cfg.materialize
    with staged_dir(final) as stage:
        with clock.stage("ingest"):
            if cfg.data.test:  # a missing test source is found now, not after the training data's work
                check_source(spark, cfg.data, cfg.schema, cfg.data.test, "test")
            accepted, report = ingest(spark, cfg.data, cfg.schema, cfg.data.train,
                                      str(stage / "quarantine" / "train"))
        splits = split_frames(accepted, m, cfg.schema.validation_indicator)
        with clock.stage("features"):
            plan = plan_categoricals(splits["train"], cfg.schema, cfg.features)  # refuses too-wide one-hot first
            fitted = feats.fit(splits["train"], cfg.schema, cfg.features, cfg.data.image)
            fitted.save(stage / "preprocessing")
            plan_path = str(plan.save(stage / "preprocessing")) if plan.columns else None
            if fitted.model is not None:  # the same numbers for scorers without Spark (the MLflow model)
                export(fitted.model, cfg.schema, cfg.features, cfg.data, plan, fitted.vectors).save(
                    stage / "preprocessing")
        profile = None
        if cfg.keeps_profile and not cfg.data.image:
            with clock.stage("profile"):
                profile = profile_rows(splits["train"], cfg.schema.numeric, cfg.schema.categorical, m.seed)

        layouts: Dict[str, DatasetIndex] = {}
        test_report = None
        with clock.stage("materialize"):
            t1 = time.monotonic()
            counts = split_counts(accepted, m, cfg.schema.validation_indicator)
            log.info("counted the splits' rows in %.1fs: %s", time.monotonic() - t1, counts)
        for split in ("train", "validation"):
            if counts[split] < m.max_ranks:
                raise DatasetTooSmallError(
                    f"the {split} split has {counts[split]} rows, fewer than materialize.max_ranks={m.max_ranks}; "
                    "every rank needs data. Add data, lower max_ranks, or change validation_fraction.")
        if cfg.data.test:
            with clock.stage("ingest"):
                test_df, test_report = ingest(spark, cfg.data, cfg.schema, cfg.data.test,
                                              str(stage / "quarantine" / "test"), key="test")
            splits["test"], counts["test"] = test_df, test_report.accepted
        row_bytes = (int(np.prod(cfg.data.image.shape)) if cfg.data.image
                     else 4 * fitted.width + 4 * plan.width) + 16
        for split, df in splits.items():
            t2 = time.monotonic()
            with clock.stage("materialize"):
                keep = [cfg.path_column] if cfg.path_column else []
                frame = feats.to_training_frame(fitted.model, df, cfg.schema, keep, embeddings=plan,
                                                plan_path=plan_path, scaling=fitted.vectors)
                per_group = row_group_rows(counts[split], m, row_bytes)
                layouts[split] = write_split(frame, stage / split, counts[split], per_group, row_cap(m, row_bytes))
            rows = layouts[split].rows
            log.info("materialized %s: %d rows in %d row groups of about %d rows, %.1fs (%.0f rows/s)", split, rows,
                     len(layouts[split].groups()), per_group, time.monotonic() - t2,
                     rows / max(time.monotonic() - t2, 1e-9))
        release(accepted)
        if cfg.data.test:
            release(splits["test"])
        with clock.stage("materialize"):
            label = label_summary(spark, cfg, stage / "train")
        quarantine = {"train": report.to_dict()}
        if test_report is not None:
            quarantine["test"] = test_report.to_dict()
        for split, record in quarantine.items():  # where the bad rows are once the dataset is published
            if record["quarantine_path"]:
                record["quarantine_path"] = str(final / "quarantine" / split)
        manifest = Manifest(
            name=cfg.name, dataset_id=dataset_id,
            created=utc_now(),
            rows={"input": report.input, "accepted": report.accepted, "quarantined": report.quarantined},
            splits={k: v.rows for k, v in layouts.items()},
            row_groups={k: len(v.groups()) for k, v in layouts.items()},
            feature_width=fitted.width, feature_names=fitted.names,
            label=label,
            schema_hash=schema_hash(cfg, fitted.names),
            paths={**{k: str(final / k) for k in layouts}, "preprocessing": str(final / "preprocessing"),
                   "quarantine": str(final / "quarantine"), "dataset": str(final)},
            quarantine=quarantine,
            test_rows=({"input": test_report.input, "accepted": test_report.accepted,
                        "quarantined": test_report.quarantined} if test_report else None),
            test_source=("data.test" if cfg.data.test else "materialize.test_fraction" if "test" in layouts
                         else None),
            image=({**dataclasses.asdict(cfg.data.image), "shape": list(cfg.data.image.shape)}
                   if cfg.data.image else None),
            columns={"features": FEATURES, "label": LABEL,
                     "dtype": "uint8" if cfg.data.image else "float32",
                     **({"indices": INDICES} if plan.columns else {})},
            embeddings=[c.summary() for c in plan.columns],
            profile=profile,
            index={k: v.to_dict() for k, v in layouts.items()},
        )
        manifest.save(stage / MANIFEST)
    lake.publish_dataset(cfg.name, dataset_id)
    log.info("prepared dataset %s in %.1fs: %s", dataset_id, time.monotonic() - t0, final / MANIFEST)
    return manifest

