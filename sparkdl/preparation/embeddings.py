"""Categorical columns learned as embeddings: their indexing, fitted on the training split
and reapplied unchanged at scoring.

An embedded column with at most ``features.embedding.max_vocabulary`` distinct training
values is indexed by frequency (1 = the most frequent value; values seen fewer than
``min_count`` times, and values never seen, share index 0). A larger column is hashed
into ``hash_buckets`` (CRC-32 of the value's text), so its table stays bounded however
many values arrive later. Missing values are the value ``(missing)``, as in the one-hot
path. The indices land in one int32 array column ``categories`` (one entry per embedded
column, in plan order) beside the dense ``features``; the plan, vocabularies included, is
``embeddings.json`` in the preprocessing directory.

The cardinalities are counted first (one approximate distinct-count pass over the
training split), so a one-hot column too wide to materialize is refused before the
feature pipeline or any write runs.
"""
from __future__ import annotations

import json
import logging
import zlib
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Optional

from sparkdl.core.columns import MISSING
from sparkdl.core.config import FeaturesConfig, SchemaConfig
from sparkdl.core.errors import ConfigError
from sparkdl.core.rundir import PLAN_FILE

log = logging.getLogger(__name__)

_PLANS: Dict[str, "EmbeddingPlan"] = {}  # per Python worker: plan file -> plan


def default_dim(size: int) -> int:
    """Embedding width for a table of ``size`` rows: min(50, round(1.6 x size^0.56))."""
    return max(1, min(50, round(1.6 * size ** 0.56)))


@dataclass(frozen=True)
class EmbeddedColumn:
    name: str
    kind: str  # "index", "hash", or "vector" (a sparse vector: its indices are the rows)
    size: int  # rows of its embedding table (a bag's padding index, one more row)
    dim: int
    cardinality: int  # distinct values in the training split (approximate)
    vocabulary: List[str] = field(default_factory=list)  # index i + 1 holds vocabulary[i]
    items: int = 0  # 0: one index per row; k: a bag of up to k (multivalued)
    weighted: bool = False  # a sparse vector's bag: its values weigh its rows (at the end of features)

    @property
    def slots(self) -> int:
        """Its entries in the ``categories`` column."""
        return max(1, self.items)

    def summary(self) -> Dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "vocabulary"}
        if not self.items:  # a one-index column's record, as before bags existed
            del out["items"], out["weighted"]
        return out

    @cached_property
    def vocabulary_array(self):
        """The vocabulary as an Arrow array (position i: index i + 1)."""
        import pyarrow as pa

        return pa.array(self.vocabulary, pa.string())

    @cached_property
    def lookup(self) -> Dict[str, int]:
        """value → index (built once per column object; plans are cached per worker)."""
        return {v: i + 1 for i, v in enumerate(self.vocabulary)}


@dataclass(frozen=True)
class EmbeddingPlan:
    columns: List[EmbeddedColumn]

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / PLAN_FILE
        path.write_text(json.dumps([asdict(c) for c in self.columns]))
        return path

    @classmethod
    def load(cls, path: "Path | str") -> "EmbeddingPlan":
        key = str(path)
        if key not in _PLANS:
            _PLANS[key] = cls([EmbeddedColumn(**c) for c in json.loads(Path(path).read_text())])
        return _PLANS[key]

    def specs(self) -> List[Dict[str, Any]]:
        """``{name, size, dim, items, weighted}`` per column: what the model's tables need."""
        return [{"name": c.name, "size": c.size, "dim": c.dim,
                 **({"items": c.items, "weighted": c.weighted} if c.items else {})} for c in self.columns]

    @property
    def width(self) -> int:
        """Entries per row of the ``categories`` column."""
        return sum(c.slots for c in self.columns)

    @property
    def weights(self) -> int:
        """Values per row the weighted bags append to ``features``."""
        return sum(c.items for c in self.columns if c.weighted)


def as_text(col: str):
    from pyspark.sql import functions as F

    return F.coalesce(F.col(f"`{col}`").cast("string"), F.lit(MISSING))


def cardinalities(df, columns: List[str]) -> Dict[str, int]:
    """Approximate distinct values per column (HyperLogLog, 5% error), in one pass. The
    counts only choose one-hot, index or hash against limits; 1% error took 5x as long."""
    from pyspark.sql import functions as F

    if not columns:
        return {}
    row = df.agg(*[F.approx_count_distinct(as_text(c), 0.05).alias(c) for c in columns]).collect()[0]
    return {c: int(row[c]) for c in columns}


def vocabularies_of(df, names: List[str], min_count: int, limit: int) -> Dict[str, List[str]]:
    """Each column's values seen at least ``min_count`` times, most frequent first (ties by
    value), at most ``limit`` of them: one Spark job for every column together."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not names:
        return {}
    pairs = F.explode(F.array(*[F.struct(F.lit(i).alias("c"), as_text(n).alias("v")) for i, n in enumerate(names)]))
    counted = (df.select(pairs.alias("p")).select("p.c", "p.v").groupBy("c", "v").count()
               .where(F.col("count") >= min_count))
    rank = F.row_number().over(Window.partitionBy("c").orderBy(F.col("count").desc(), F.col("v")))
    rows = sorted(tuple(r) for r in counted.withColumn("r", rank).where(F.col("r") <= limit).select("c", "r", "v")
                  .collect())
    out: Dict[str, List[str]] = {n: [] for n in names}
    for c, _, v in rows:
        out[names[c]].append(v)
    return out


def plan_categoricals(train_df, schema: SchemaConfig, cfg: FeaturesConfig) -> EmbeddingPlan:
    """Count every categorical column, refuse one-hot columns that are too wide, and index
    or hash the embedded ones."""
    counts = cardinalities(train_df, list(schema.categorical))
    for name in schema.categorical:
        if cfg.encoding(name) == "onehot" and counts[name] > cfg.onehot_max_cardinality:
            raise ConfigError(f"features.columns.{name}.encoding",
                              f"column '{name}' has about {counts[name]:,} distinct values in the training split, "
                              f"more than features.onehot_max_cardinality={cfg.onehot_max_cardinality:,} for one-hot "
                              f"encoding: learn it as an embedding (features.columns.{name}.encoding: embedding, "
                              "hashed into features.embedding.hash_buckets when it is larger than "
                              "features.embedding.max_vocabulary) or raise the limit")
    embedded = [n for n in schema.categorical if cfg.encoding(n) == "embedding"]
    hashed = {n: cfg.column_setting(n, "hash_buckets") for n in embedded}
    indexed = [n for n in embedded if hashed[n] is None and counts[n] <= cfg.embedding.max_vocabulary]
    vocabularies = vocabularies_of(train_df, indexed, cfg.embedding.min_count, cfg.embedding.max_vocabulary)
    columns = [_embedded(name, counts[name], vocabularies.get(name), hashed[name], cfg) for name in embedded]
    columns += [_bag(train_df, name, schema.column(name).items, cfg) for name in schema.bags]
    for name in schema.sparse:
        spec = schema.column(name)
        dim = cfg.column_setting(name, "dim") or cfg.embedding.dim or default_dim(spec.size)
        columns.append(EmbeddedColumn(name, "vector", spec.size, dim, spec.size, [], spec.max_items, True))
        log.info("sparse vector %s: %d values, up to %d non-zero, table %d x %d", name, spec.size,
                 spec.max_items, spec.size, dim)
    return EmbeddingPlan(columns)


def _embedded(name: str, count: int, vocabulary: Optional[List[str]], buckets: Optional[int], cfg: FeaturesConfig,
              items: int = 0) -> EmbeddedColumn:
    """A column's table: its vocabulary's (index 0 the unknown value), or ``buckets`` hashed."""
    if vocabulary is not None:
        kind, size = "index", len(vocabulary) + 1
    else:
        vocabulary, kind, size = [], "hash", buckets or cfg.embedding.hash_buckets
    dim = cfg.column_setting(name, "dim") or cfg.embedding.dim or default_dim(size)
    log.info("embedding %s%s: %s, %d distinct values, table %d x %d", name, f" (a bag of {items})" if items else "",
             kind, count, size, dim)
    return EmbeddedColumn(name, kind, size, dim, count, vocabulary, items)


def _bag(train_df, name: str, items: int, cfg: FeaturesConfig) -> EmbeddedColumn:
    """A bag column's table, counted over its items (one Spark job, two when it is indexed)."""
    from pyspark.sql import functions as F

    flat = train_df.select(F.explode(F.col(f"`{name}`").cast("array<string>")).alias(name))
    count = cardinalities(flat, [name])[name]
    buckets = cfg.column_setting(name, "hash_buckets")
    vocabulary = None
    if buckets is None and count <= cfg.embedding.max_vocabulary:
        vocabulary = vocabularies_of(flat, [name], cfg.embedding.min_count, cfg.embedding.max_vocabulary)[name]
    return _embedded(name, count, vocabulary, buckets, cfg, items)


def index_values(values: List[Optional[str]], column: EmbeddedColumn):
    """One column's values → int32 indices (unknown and rare values: 0)."""
    import numpy as np

    texts = [MISSING if v is None else v for v in values]
    if column.kind == "hash":
        return np.fromiter((zlib.crc32(t.encode("utf-8")) % column.size for t in texts), np.int32, len(texts))
    lookup = column.lookup
    return np.fromiter((lookup.get(t, 0) for t in texts), np.int32, len(texts))


def index_array(arr, column: EmbeddedColumn):
    """One column's values as an Arrow string array → int32 indices, as :func:`index_values`
    gives them: a vocabulary looked up in Arrow (no Python call per value); hashing per value."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.kind == "hash":
        return index_values(arr.to_pylist(), column)
    texts = pc.fill_null(arr.cast(pa.string()), MISSING)
    found = pc.index_in(texts, value_set=column.vocabulary_array)
    return np.asarray(pc.fill_null(pc.add(found, 1), 0).to_numpy(zero_copy_only=False), np.int32)


def load_plan(preprocessing: "Path | str") -> Optional[EmbeddingPlan]:
    path = Path(preprocessing) / PLAN_FILE
    return EmbeddingPlan.load(path) if path.is_file() else None
