"""The network's input from a batch of rows: the dense features the pipeline made, the
vectors' values and the sparse vectors' weights appended to them, and the ``categories``
index column (embedded categoricals, bags, sparse vectors' indices, in plan order). The
Spark path (:func:`assemble`, on the executors) and the MLflow model
(:class:`~sparkdl.preparation.portable.PortableFeatures`) both call :func:`row_inputs`.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from sparkdl.core.columns import FEATURES, INDICES
from sparkdl.core.config import SchemaConfig
from sparkdl.preparation.embeddings import EmbeddedColumn, EmbeddingPlan, as_text, index_array
from sparkdl.preparation.multivalued import VectorScaling, list_parts, slots, sparse_slots


def bag_slots(arr, column: "EmbeddedColumn") -> np.ndarray:
    """A bag column as text (checked) → ``(rows, items)`` int32 indices (padding: the table's size)."""
    lengths, _, values = list_parts(arr)
    rows = np.repeat(np.arange(len(arr)), lengths)
    out = np.full((len(arr), column.items), column.size, np.int32)
    if len(rows):
        slot = slots(rows, len(arr))
        fits = slot < column.items  # a bad row (too many items) scores nothing: it need not fit
        out[rows[fits], slot[fits]] = index_array(values, column)[fits]
    return out


def row_inputs(columns: Dict[str, Any], plan: Optional[EmbeddingPlan], vectors: Sequence[VectorScaling], n: int):
    """A batch's embedded and many-valued columns (Arrow arrays: scalars as text, bags as
    text arrays, vectors as plain structs or number arrays) → (float32 values to append to
    the features: the vectors' scaled, then the weighted bags'; int32 ``categories`` or None)."""
    dense = [v.block(columns[v.name]) for v in vectors]
    if plan is None or not plan.columns:
        return (np.concatenate(dense, axis=1) if dense else np.zeros((n, 0), np.float32)), None
    slots, weights = [], []
    for c in plan.columns:
        if c.kind == "vector":
            kinds, values = sparse_slots(columns[c.name], c.size, c.items)
            slots.append(kinds)
            weights.append(values)
        elif c.items:
            slots.append(bag_slots(columns[c.name], c))
        else:
            slots.append(index_array(columns[c.name], c)[:, None])
    extra = dense + weights
    return (np.concatenate(extra, axis=1) if extra else np.zeros((n, 0), np.float32)), np.concatenate(slots, axis=1)


def _assemble_batches(batches: Iterator, plan_path: Optional[str], keep: List[str],
                      vectors: Sequence[VectorScaling]) -> Iterator:
    import pyarrow as pa

    from sparkdl.core.arrow import feature_matrix

    plan = EmbeddingPlan.load(plan_path) if plan_path else None
    names = [c.name for c in plan.columns] if plan else []
    for batch in batches:
        have = batch.schema.names
        inputs = {n: batch.column(have.index(f"_emb_{n}")) for n in names + [v.name for v in vectors]}
        extra, indices = row_inputs(inputs, plan, vectors, batch.num_rows)
        out = [batch.column(have.index(k)) for k in keep]
        if extra.shape[1]:
            at = keep.index(FEATURES)
            base = feature_matrix(out[at], FEATURES, "the rows being prepared")
            joined = np.concatenate([base, extra], axis=1)
            out[at] = pa.FixedSizeListArray.from_arrays(pa.array(joined.ravel()), joined.shape[1]).cast(
                pa.list_(pa.float32()))
        if indices is not None:
            out.append(pa.FixedSizeListArray.from_arrays(pa.array(indices.ravel()), indices.shape[1])
                       .cast(pa.list_(pa.int32())))
        yield pa.RecordBatch.from_arrays(out, names=keep + ([INDICES] if indices is not None else []))


def input_columns(schema: SchemaConfig, plan: Optional[EmbeddingPlan]) -> List:
    """The embedded and many-valued columns as :func:`assemble` reads them (``_emb_<name>``):
    scalars as text, bags as arrays of text, vectors as they are."""
    from pyspark.sql import functions as F

    out = []
    for c in plan.columns if plan else []:
        if c.kind == "vector":
            out.append(F.col(f"`{c.name}`").alias(f"_emb_{c.name}"))
        elif c.items:
            out.append(F.col(f"`{c.name}`").cast("array<string>").alias(f"_emb_{c.name}"))
        else:
            out.append(as_text(c.name).alias(f"_emb_{c.name}"))
    return out + [F.col(f"`{n}`").alias(f"_emb_{n}") for n in schema.vectors]


def assemble(df, schema: SchemaConfig, plan: Optional[EmbeddingPlan], plan_path: Optional[str], keep: List[str],
             scaling: Sequence[VectorScaling]):
    """``keep`` columns of ``df`` (``features`` among them) with the vectors (scaled by
    ``scaling``) and the weighted bags' values appended to ``features``, plus ``categories``
    when there is a plan: the :func:`input_columns` of ``df``, on the executors."""
    from pyspark.sql.types import ArrayType, IntegerType, StructField, StructType

    vectors = tuple(scaling)
    if [v.name for v in vectors] != list(schema.vectors):
        raise ValueError(f"the vector scalings {[v.name for v in vectors]} are not schema.vectors {schema.vectors}: "
                         "the preprocessing was not fitted with this schema")
    fields = [df.schema[k] for k in keep]
    if plan is not None and plan.columns:
        fields.append(StructField(INDICES, ArrayType(IntegerType())))
    return df.mapInArrow(partial(_assemble_batches, plan_path=plan_path, keep=list(keep), vectors=vectors),
                         StructType(fields))
