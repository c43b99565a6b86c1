"""Columns that hold many values per row: Spark ML vectors (dense or sparse), arrays of
numbers of a fixed length, and bags of ids. The one place their rules live: what makes a
value bad (the quarantine's reasons), and how a batch of them becomes the network's
input, for ingest and the Spark scorers (in Arrow UDFs on the executors) and for the
MLflow model (on pandas rows) alike.

- A **vector** (``schema.vectors``: ``vector``, ``array<float|double>``) is ``size``
  numbers appended to the dense ``features`` as they are. A missing one, one of another
  length, one with a null or a non-finite value is a bad row.
- A **sparse vector** (``schema.sparse``) stays sparse: its non-zero entries, at most
  ``max_items``, become that many slots of the ``categories`` index column (the entry's
  index; empty slots hold the padding index ``size``) and as many slots at the end of
  ``features`` (the entry's value; empty slots 0). The network sums the rows of an
  ``EmbeddingBag`` weighted by the values: a linear layer on the sparse input. A missing
  one is all zeros.
- A **bag** (``schema.bags``: ``array<string|int|long>``) is ``max_items`` slots of
  ``categories``: each item's index in the column's vocabulary (or its hash bucket),
  padded with the table's size; the network averages the items' embeddings. A missing
  bag is empty; a null item or more than ``max_items`` items is a bad row.

Spark hands a ``VectorUDT`` to Python as the struct below; :func:`plain_vectors` turns it
into that plain struct so SQL can carry it (``to_json``, Parquet) and Arrow reads it the same
way everywhere.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from sparkdl.core.rundir import VECTORS_FILE
from sparkdl.core.types import BAGS, FLOAT32_MAX

if TYPE_CHECKING:
    from sparkdl.core.config import SchemaConfig

#: A ``VectorUDT`` as Spark stores it: type 0 sparse (size, indices, values), 1 dense (values).
PLAIN_VECTOR = "struct<type:tinyint,size:int,indices:array<int>,values:array<double>>"
_SPARSE, _DENSE = 0, 1


def _plain(arr):
    import pyarrow as pa

    fields = [arr.field(i) for i in range(4)]
    kinds = [pa.int8(), pa.int32(), pa.list_(pa.int32()), pa.list_(pa.float64())]
    return pa.StructArray.from_arrays([f.cast(k) for f, k in zip(fields, kinds)],
                                      names=["type", "size", "indices", "values"], mask=arr.is_null())


def _plain_batches(batches, names: Sequence[str]):
    import pyarrow as pa

    for batch in batches:
        have = batch.schema.names
        yield pa.RecordBatch.from_arrays([_plain(c) if n in names else c for n, c in zip(have, batch.columns)],
                                         names=have)


def plain_vectors(df, names: Sequence[str]):
    """``df`` with its ``VectorUDT`` columns among ``names`` as plain structs
    (:data:`PLAIN_VECTOR`), its other columns as they are. A pass of Arrow batches through
    Python (``mapInArrow``): Spark's Arrow UDFs do not take a ``VectorUDT`` from a
    columnar scan."""
    from functools import partial

    from pyspark.sql.types import StructField, StructType, _parse_datatype_string

    vectors = [n for n, t in df.dtypes if n in names and t == "vector"]
    if not vectors:
        return df
    plain = _parse_datatype_string(PLAIN_VECTOR)
    schema = StructType([StructField(f.name, plain if f.name in vectors else f.dataType, f.nullable, f.metadata)
                         for f in df.schema.fields])
    return df.mapInArrow(partial(_plain_batches, names=tuple(vectors)), schema)


# ---------------------------------------------------------------- one column, as Arrow

def list_parts(arr) -> Tuple[np.ndarray, np.ndarray, Any]:
    """A list array → (per-row lengths, per-row null mask, the flat values of its rows)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    offsets = arr.offsets.to_numpy()
    lengths = np.diff(offsets)
    lengths[nulls] = 0
    return lengths, nulls, arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def _vector_parts(arr):
    """A plain-vector struct array → (null mask, dense mask, declared sizes, value lengths,
    flat values, flat indices of the sparse rows)."""
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    nulls = arr.is_null().to_numpy(zero_copy_only=False)
    dense = (arr.field("type").fill_null(_DENSE).to_numpy(zero_copy_only=False) == _DENSE) & ~nulls
    lengths, _, values = list_parts(arr.field("values"))
    lengths[nulls] = 0
    sizes = np.where(dense, lengths, arr.field("size").fill_null(0).to_numpy(zero_copy_only=False))
    idx_lengths, _, indices = list_parts(arr.field("indices"))
    idx_lengths[nulls | dense] = 0
    return nulls, dense, sizes, lengths, values, indices, idx_lengths


def _entries(arr, kind: str, size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every value of a vector or number-array column as (row, position, value), with each
    row's null flag: the form every rule below reads."""
    n = len(arr)
    if kind == "vector":
        nulls, dense, _, lengths, values, indices, idx_lengths = _vector_parts(arr)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        rows = np.repeat(np.arange(n), lengths)
        positions = np.arange(int(lengths.sum())) - starts
        if idx_lengths.any():  # sparse rows: their positions are their indices
            positions[~dense[rows]] = np.asarray(indices.to_numpy(zero_copy_only=False), np.int64)
    else:
        lengths, nulls, values = list_parts(arr)
        rows = np.repeat(np.arange(n), lengths)
        positions = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    numbers = np.asarray(values.to_numpy(zero_copy_only=False), np.float64) if len(values) else np.zeros(0)
    return rows, positions, numbers, nulls


def _reason_for(reasons: List[Optional[str]], rows: np.ndarray, text) -> None:
    for r in np.unique(rows):
        if reasons[r] is None:
            reasons[r] = text(int(r))


def column_reasons(arr, name: str, kind: str, role: str, size: Optional[int], max_items: Optional[int],
                   reasons: List[Optional[str]]) -> None:
    """Set ``reasons[i]`` for each bad row of one many-valued column (``role``: vectors,
    sparse or bags); a row that already has a reason keeps it."""
    where = f"column '{name}'"
    if kind in BAGS:
        lengths, _, values = list_parts(arr)
        if values.null_count:
            rows = np.repeat(np.arange(len(arr)), lengths)[values.is_null().to_numpy(zero_copy_only=False)]
            _reason_for(reasons, rows, lambda r: f"{where}: holds a null item")
        _reason_for(reasons, np.flatnonzero(lengths > max_items),
                    lambda r: f"{where}: holds {int(lengths[r])} items, more than its max_items {max_items}")
        return
    if kind == "vector":
        nulls, _, sizes, *_ = _vector_parts(arr)
        wrong = np.flatnonzero(~nulls & (sizes != size))
        _reason_for(reasons, wrong, lambda r: f"{where}: a vector of {int(sizes[r])} values, not its declared "
                                              f"size {size}")
    else:
        lengths, nulls, values = list_parts(arr)
        if values.null_count:
            rows = np.repeat(np.arange(len(arr)), lengths)[values.is_null().to_numpy(zero_copy_only=False)]
            _reason_for(reasons, rows, lambda r: f"{where}: holds a null value")
        _reason_for(reasons, np.flatnonzero(~nulls & (lengths != size)),
                    lambda r: f"{where}: holds {int(lengths[r])} values, not its declared size {size}")
    rows, positions, numbers, nulls = _entries(arr, kind, size)
    if role == "vectors":
        _reason_for(reasons, np.flatnonzero(nulls), lambda r: f"{where}: is missing (a vector has no imputation)")
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(numbers)
        _reason_for(reasons, rows[bad], lambda r: f"{where}: holds a value that is not a finite number")
        _reason_for(reasons, rows[~bad & (np.abs(numbers) > FLOAT32_MAX)],
                    lambda r: f"{where}: holds a value beyond float32's range (|x| <= {FLOAT32_MAX:.4g})")
    _reason_for(reasons, rows[(positions < 0) | (positions >= size)],
                lambda r: f"{where}: holds an index outside its size {size}")
    if kind == "vector" and len(rows) > 1:  # a sparse vector's index given twice: no one value to read
        order = np.lexsort((positions, rows))
        r, p = rows[order], positions[order]
        twice = (r[1:] == r[:-1]) & (p[1:] == p[:-1])
        _reason_for(reasons, r[1:][twice], lambda r: f"{where}: holds an index twice")
    if role == "sparse":
        counts = np.bincount(rows[numbers != 0], minlength=len(arr))
        _reason_for(reasons, np.flatnonzero(counts > max_items),
                    lambda r: f"{where}: holds {int(counts[r])} non-zero values, more than its max_items {max_items}")


@dataclass(frozen=True)
class ManyColumn:
    """A many-valued feature: its declared type, its role (vectors, sparse or bags) and limits."""

    name: str
    type: str
    role: str
    size: Optional[int] = None
    max_items: Optional[int] = None


def many_columns(schema: "SchemaConfig") -> List[ManyColumn]:
    """``schema``'s many-valued features, in the order their checks run."""
    out = []
    for role in ("vectors", "sparse", "bags"):
        for name in getattr(schema, role):
            spec = schema.column(name)
            out.append(ManyColumn(name, spec.type, role, spec.size, spec.items))
    return out


def reasons_of(columns: Dict[str, Any], many: Sequence[ManyColumn], n: int) -> List[Optional[str]]:
    """A reason per row (None: good) from the ``many`` features; ``columns`` maps each one
    to its Arrow array."""
    reasons: List[Optional[str]] = [None] * n
    for m in many:
        column_reasons(columns[m.name], m.name, m.type, m.role, m.size, m.max_items, reasons)
    return reasons


def reason_column(schema: "SchemaConfig", columns: Dict[str, Any]):
    """A Spark column: each row's first bad many-valued feature, or null (an Arrow UDF over
    ``columns``, a Spark column per name in ``schema.many``)."""
    import pyarrow as pa
    from pyspark.sql import functions as F
    from pyspark.sql.functions import arrow_udf

    many = many_columns(schema)

    def reasons(s):
        return pa.array(reasons_of({m.name: s.field(m.name) for m in many}, many, len(s)), pa.string())

    return arrow_udf(reasons, "string")(F.struct(*[columns[m.name].alias(m.name) for m in many]))


# ---------------------------------------------------------------- the network's input

def dense_block(arr, kind: str, size: int, dtype=np.float32) -> np.ndarray:
    """A vector or number-array column (checked) → ``(rows, size)`` numbers."""
    rows, positions, numbers, _ = _entries(arr, kind, size)
    ok = (positions >= 0) & (positions < size)  # a bad row scores nothing: it need not fit
    out = np.zeros((len(arr), size), dtype)
    out[rows[ok], positions[ok]] = numbers[ok]
    return out


def scaled(x, shift, scale, scaler: str):
    """Spark ML's scalers' arithmetic, for numbers and vectors alike: StandardScalerModel
    (x - mean) * (1 / std), 0 where std is 0 (``scale`` 0); MinMaxScalerModel
    (x - min) * (1 / range), 0.5 where the range is 0 (``scale`` 0); ``none``: x."""
    if scaler == "standard":
        return (x - shift) * scale
    if scaler == "minmax":
        return np.where(np.asarray(scale) != 0, (x - shift) * scale, 0.5)
    return x


@dataclass(frozen=True)
class VectorScaling:
    """A vector column's per-value shift and scale, fitted on the training split as
    ``features.scaler`` fits numeric columns (``none``: empty lists, values as they are)."""

    name: str
    type: str
    size: int
    scaler: str = "none"
    shift: List[float] = field(default_factory=list)
    scale: List[float] = field(default_factory=list)

    def block(self, arr) -> np.ndarray:
        """The column's Arrow array (checked) → its scaled ``(rows, size)`` float32 values."""
        if self.scaler == "none":
            return dense_block(arr, self.type, self.size)
        values = dense_block(arr, self.type, self.size, np.float64)
        return scaled(values, np.asarray(self.shift), np.asarray(self.scale), self.scaler).astype(np.float32)


def _moments_batches(batches, columns: Sequence[Tuple[str, str, int]]):
    """One partition's moments per vector column (rows, mean, sum of squared deviations, min
    and max per value), its batches merged as they come: one row per partition reaches the
    driver, however many batches it had."""
    import pyarrow as pa

    merged = {name: _moments_of(np.zeros((0, size))) for name, _, size in columns}
    for batch in batches:  # merged as arrays; made Python lists once, for the row sent
        have = batch.schema.names
        for name, kind, size in columns:
            x = dense_block(batch.column(have.index(name)), kind, size, np.float64)
            n, mean, m2, lo, hi = merge_moments([merged[name], _moments_of(x)], size)
            merged[name] = {"n": n, "mean": mean, "m2": m2, "lo": lo, "hi": hi}
    yield pa.RecordBatch.from_pylist([{"moments": [_as_moments(**merged[name]) for name, _, _ in columns]}],
                                     schema=_moments_schema(len(columns)))


def _moments_of(x: np.ndarray) -> Dict[str, Any]:
    """One block's moments, as arrays."""
    n, size = x.shape
    if not n:
        return {"n": 0, "mean": np.zeros(size), "m2": np.zeros(size), "lo": np.zeros(size), "hi": np.zeros(size)}
    mean = x.mean(0)
    return {"n": n, "mean": mean, "m2": ((x - mean) ** 2).sum(0), "lo": x.min(0), "hi": x.max(0)}


def _as_moments(n, mean, m2, lo, hi) -> Dict[str, Any]:
    return {"n": int(n), "mean": np.asarray(mean).tolist(), "m2": np.asarray(m2).tolist(),
            "lo": np.asarray(lo).tolist(), "hi": np.asarray(hi).tolist()}


def _moments_schema(k: int):
    import pyarrow as pa

    entry = pa.struct([("n", pa.int64()), ("mean", pa.list_(pa.float64())), ("m2", pa.list_(pa.float64())),
                       ("lo", pa.list_(pa.float64())), ("hi", pa.list_(pa.float64()))])
    return pa.schema([("moments", pa.list_(entry))])


_MOMENTS_DDL = "moments array<struct<n:bigint,mean:array<double>,m2:array<double>,lo:array<double>,hi:array<double>>>"


def fit_scaling(train_df, schema: "SchemaConfig", scaler: str) -> List[VectorScaling]:
    """Each ``schema.vectors`` column's scaling over the training split (its rows checked):
    one pass of Arrow batches, the batches' moments merged on the driver (Chan et al.), with
    the sample standard deviation Spark's StandardScaler uses."""
    from functools import partial

    from pyspark.sql import functions as F

    columns = tuple((n, schema.column(n).type, schema.column(n).size) for n in schema.vectors)
    if not columns or scaler == "none":
        return [VectorScaling(n, kind, size) for n, kind, size in columns]
    parts = (train_df.select(*[F.col(f"`{n}`") for n, _, _ in columns])
             .mapInArrow(partial(_moments_batches, columns=columns), _MOMENTS_DDL).collect())
    out = []
    for j, (name, kind, size) in enumerate(columns):
        n, mean, m2, lo, hi = merge_moments([row["moments"][j] for row in parts], size)
        if scaler == "standard":
            std = np.sqrt(m2 / max(n - 1, 1))
            shift, scale = mean, np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 0.0)
        else:
            width = hi - lo
            shift, scale = lo, np.where(width > 0, 1.0 / np.where(width > 0, width, 1.0), 0.0)
        out.append(VectorScaling(name, kind, size, scaler, [float(v) for v in shift], [float(v) for v in scale]))
    return out


def merge_moments(parts: Sequence[Dict[str, Any]], size: int):
    """Batches' moments (``n``, ``mean``, ``m2``, ``lo``, ``hi`` per value) → the whole
    split's ``(n, mean, m2, lo, hi)``: Chan et al.'s pairwise update, stable in one pass."""
    n, mean, m2 = 0, np.zeros(size), np.zeros(size)
    lo, hi = np.full(size, np.inf), np.full(size, -np.inf)
    for b in parts:
        if not b["n"]:
            continue
        delta = np.asarray(b["mean"]) - mean
        total = n + b["n"]
        mean = mean + delta * b["n"] / total
        m2 = m2 + np.asarray(b["m2"]) + delta ** 2 * n * b["n"] / total
        lo, hi, n = np.minimum(lo, b["lo"]), np.maximum(hi, b["hi"]), total
    return n, mean, m2, lo, hi


def save_scaling(scaling: Sequence[VectorScaling], directory: Path) -> None:
    if scaling:
        (Path(directory) / VECTORS_FILE).write_text(json.dumps([asdict(v) for v in scaling]))


def load_scaling(directory: "Path | str") -> List[VectorScaling]:
    """A run's vector scalings (none for a run without vector columns)."""
    path = Path(directory) / VECTORS_FILE
    return [VectorScaling(**v) for v in json.loads(path.read_text())] if path.is_file() else []


def slots(rows: np.ndarray, n: int) -> np.ndarray:
    """Each entry's place within its row (rows sorted): 0, 1, 2... per row."""
    starts = np.searchsorted(rows, np.arange(n))
    return np.arange(len(rows)) - starts[rows]


def sparse_slots(arr, size: int, items: int) -> Tuple[np.ndarray, np.ndarray]:
    """A sparse-vector column (checked) → its non-zero entries as ``(rows, items)`` int32
    indices (padding: ``size``) and float32 values (padding: 0)."""
    rows, positions, numbers, _ = _entries(arr, "vector", size)
    keep = (numbers != 0) & (positions >= 0) & (positions < size)
    rows, positions, numbers = rows[keep], positions[keep], numbers[keep]
    slot = slots(rows, len(arr))
    fits = slot < items  # a bad row (more entries than slots) scores nothing: it need not fit
    indices = np.full((len(arr), items), size, np.int32)
    weights = np.zeros((len(arr), items), np.float32)
    indices[rows[fits], slot[fits]] = positions[fits]
    weights[rows[fits], slot[fits]] = numbers[fits]
    return indices, weights


# ---------------------------------------------------------------- pandas rows (the MLflow model)

_LISTS = (list, tuple, np.ndarray)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _vector_value(v: Any) -> Optional[Dict[str, Any]]:
    """A vector as pandas holds it (a pyspark vector, a dict of the plain struct, a list or
    array of numbers) → the plain struct as a dict; None when missing. Anything else
    raises ``TypeError``; a value that is not a number, ``ValueError``."""
    if _missing(v):
        return None
    if hasattr(v, "indices") and hasattr(v, "size"):  # pyspark.ml.linalg.SparseVector
        return {"type": _SPARSE, "size": int(v.size), "indices": [int(i) for i in v.indices],
                "values": [float(x) for x in v.values]}
    if hasattr(v, "toArray"):  # pyspark.ml.linalg.DenseVector
        v = v.toArray()
    if isinstance(v, dict):  # as pandas reads a vector column from Parquet or Arrow
        kind = _DENSE if v.get("type") is None else int(v["type"])
        values = [float(x) for x in _items(v.get("values"))]
        if kind == _DENSE:
            return {"type": _DENSE, "size": None, "indices": None, "values": values}
        indices = [int(i) for i in _items(v.get("indices"))]
        if len(indices) != len(values):
            raise ValueError(f"a sparse vector of {len(indices)} indices and {len(values)} values")
        return {"type": _SPARSE, "size": int(v["size"]), "indices": indices, "values": values}
    if not isinstance(v, _LISTS):
        raise TypeError(type(v).__name__)
    return {"type": _DENSE, "size": None, "indices": None, "values": [float(x) for x in np.asarray(v).ravel()]}


def _items(v: Any) -> List[Any]:
    if v is None:
        return []
    if not isinstance(v, _LISTS):
        raise TypeError(type(v).__name__)
    return list(v)


def _list_value(v: Any) -> Optional[List[Any]]:
    """A list of items as pandas holds it; None when missing. A null item stays None (a
    NaN number stays NaN: not finite). Anything but a list raises ``TypeError``."""
    if _missing(v):
        return None
    if not isinstance(v, _LISTS):
        raise TypeError(type(v).__name__)
    return [None if x is None else x for x in list(v)]


def _converted(values: List[Any], convert, name: str, kind: str, reasons: List[Optional[str]]) -> List[Any]:
    out = []
    for i, v in enumerate(values):
        try:
            out.append(convert(v))
        except TypeError as e:
            out.append(None)
            reasons[i] = reasons[i] or f"column '{name}': holds a {e}, not {kind}: give a list, an array or a vector"
        except ValueError as e:
            out.append(None)
            reasons[i] = reasons[i] or f"column '{name}': not {kind} ({e})"
    return out


def as_arrow(values: List[Any], kind: str, name: str = "", reasons: Optional[List[Optional[str]]] = None):
    """One column of pandas values → the Arrow array ingest would have made of it (bags as
    text, as the vocabulary was counted). A value of no such shape (text, a scalar) is
    missing here and gets its reason in ``reasons``."""
    import pyarrow as pa

    reasons = [None] * len(values) if reasons is None else reasons
    if kind == "vector":
        kinds = pa.struct([("type", pa.int8()), ("size", pa.int32()), ("indices", pa.list_(pa.int32())),
                           ("values", pa.list_(pa.float64()))])
        return pa.array(_converted(values, _vector_value, name, kind, reasons), kinds)
    lists = _converted(values, _list_value, name, kind, reasons)
    if kind in BAGS:
        item = str if kind == "array<string>" else _integer_text
        return pa.array([None if v is None else [None if _missing(x) else item(x) for x in v] for v in lists],
                        pa.list_(pa.string()))
    # numbers; text that is not one is a null value
    return pa.array([None if v is None else [_number(x) for x in v] for v in lists], pa.list_(pa.float64()))


def _integer_text(x: Any) -> str:
    """An id of an ``array<int|long>`` bag as Spark writes it as text: ``7``, not ``7.0``."""
    if isinstance(x, (float, np.floating)) and float(x).is_integer():
        return str(int(x))
    return str(x)


def _number(x: Any) -> Optional[float]:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None
