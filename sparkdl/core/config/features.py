"""How rows become tensors: the ``features`` and ``materialize`` sections."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Literal, Optional

from sparkdl.core.config.checks import check


@dataclass(frozen=True)
class EmbeddingConfig:
    """How embedded categorical columns are indexed: by frequency on the training split
    (values seen fewer than ``min_count`` times, and unseen ones, share index 0), or, past
    ``max_vocabulary`` distinct values, hashed into ``hash_buckets``. ``dim`` unset: the
    rule min(50, round(1.6 x size^0.56))."""

    #: Values seen fewer times in training share the unknown index.
    min_count: int = 1
    #: Most frequent values kept per column; past this a column is hashed.
    max_vocabulary: int = 100_000
    #: Buckets of a hashed column.
    hash_buckets: int = 262_144
    #: Embedding width; unset: from each column's cardinality.
    dim: Optional[int] = None

    def __post_init__(self):
        check(self.min_count >= 1, "features.embedding.min_count", "must be >= 1")
        check(self.max_vocabulary >= 1, "features.embedding.max_vocabulary", "must be >= 1")
        check(2 <= self.hash_buckets <= 2 ** 24, "features.embedding.hash_buckets", "must be in [2, 16777216]")
        check(self.dim is None or self.dim >= 1, "features.embedding.dim", "must be >= 1")


@dataclass(frozen=True)
class ColumnEncoding:
    """One categorical column's encoding, overriding ``features.categorical_encoding``."""

    #: ``onehot`` or ``embedding`` for this column; unset: ``categorical_encoding``.
    encoding: Optional[Literal["onehot", "embedding"]] = None
    #: Embedding by hashing into this many buckets instead of a vocabulary.
    hash_buckets: Optional[int] = None
    #: This column's embedding width; unset: from its cardinality.
    dim: Optional[int] = None


@dataclass(frozen=True)
class FeaturesConfig:
    """The Spark ML feature pipeline."""

    #: How numeric columns are scaled, fitted on the training split.
    scaler: Literal["standard", "minmax", "none"] = "standard"
    #: What a missing numeric value becomes, from the training split.
    impute: Literal["mean", "median"] = "mean"
    #: Categorical columns: one-hot encoded, or learned as embeddings (per column: ``columns``).
    categorical_encoding: Literal["onehot", "embedding"] = "onehot"
    #: Per categorical column: its own ``encoding``, ``hash_buckets`` and ``dim``.
    columns: Dict[str, ColumnEncoding] = field(default_factory=dict)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    #: A one-hot column with more distinct training values than this is a ConfigError.
    onehot_max_cardinality: int = 1000

    def column_setting(self, column: str, key: str):
        """``features.columns.<column>.<key>`` when the column sets it, else None."""
        own = self.columns.get(column)
        return getattr(own, key) if own is not None and getattr(own, key) else None

    def encoding(self, column: str) -> str:
        return self.column_setting(column, "encoding") or self.categorical_encoding
    #: Regression: train on the label standardized with the training split's mean and
    #: standard deviation (undone in every prediction), or on the label as it is.
    target_scaling: Literal["standard", "none"] = "standard"


@dataclass(frozen=True)
class MaterializeConfig:
    """Train/validation(/test) split and Parquet layout for training."""

    #: The share of training rows held out to validate each epoch (a seeded hash of the row);
    #: unused when ``schema.validation_indicator`` marks them.
    validation_fraction: float = 0.1
    #: A seeded test split carved beside validation when the data has no ``data.test``,
    #: so metrics reported after early stopping come from rows that chose nothing.
    test_fraction: float = 0.0
    #: The seed of the splits.
    seed: int = 42
    #: The ranks the dataset is laid out for: each split gets at least ``max_ranks x
    #: row_groups_per_rank`` equal row groups (any number of ranks reads it evenly: ranks are
    #: dealt row ranges, docs/data.md).
    max_ranks: int = 4
    #: Row groups per rank, so reads stay even and a reader can shuffle between them.
    row_groups_per_rank: int = 4
    #: The most rows in one Parquet file (one row group) of a split: a bigger split gets more
    #: row groups, each small enough to decode and shuffle in a rank's memory.
    max_rows_per_row_group: int = 262144
    #: The most bytes (uncompressed) in one row group: wide rows (images) get fewer rows each.
    max_bytes_per_row_group: int = 64 * 2**20
    #: Keep the training split's distribution per feature in the manifest, what drift checks
    #: compare new rows with (a few Spark passes over a sample of at most 200,000 rows):
    #: ``auto`` does when the job has ``drift`` or ``promote`` settings.
    profile: Literal["auto", "on", "off"] = "auto"

    def __post_init__(self):
        check(0.0 < self.validation_fraction < 1.0, "materialize.validation_fraction", "must be in (0, 1)")
        check(0.0 <= self.test_fraction < 1.0, "materialize.test_fraction", "must be in [0, 1)")
        check(self.validation_fraction + self.test_fraction < 0.9, "materialize.test_fraction",
               "validation_fraction + test_fraction must leave at least 10% of the rows to train on")
        check(self.max_ranks >= 1, "materialize.max_ranks", "must be >= 1")
        check(self.row_groups_per_rank >= 1, "materialize.row_groups_per_rank", "must be >= 1")
        check(self.max_rows_per_row_group >= 1, "materialize.max_rows_per_row_group", "must be >= 1")
        check(self.max_bytes_per_row_group >= 2**16, "materialize.max_bytes_per_row_group", "must be >= 64 KiB (65536)")
