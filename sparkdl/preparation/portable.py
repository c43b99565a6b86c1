"""A run's fitted preprocessing as plain numbers, applied to pandas rows without Spark.

The MLflow model (:mod:`sparkdl.tracking.pyfunc`) scores raw rows wherever it is loaded: in a
notebook, in ``mlflow.pyfunc.spark_udf`` on executors (where no Spark session can be
opened), or in a model server. :func:`export` reads what the Spark ML ``PipelineModel``
learned (imputation values, scaler statistics, category labels) into ``portable.json``;
:class:`PortableFeatures` reproduces the pipeline's arithmetic in numpy, in the same
order and in float64 before the float32 cast, so its features equal Spark's (a test
compares the two on real data).

Rows are validated as ingest does: text trimmed of spaces, the declared null values
missing, each value parsed as its column's type. A missing value (``None``, NaN or a null
value) is imputed; a value that does not parse, or an infinite number, makes the row bad:
it gets a reason and no features, and is never scored.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pyarrow as pa

from sparkdl.core.columns import MISSING
from sparkdl.core.rundir import PORTABLE_FILE
from sparkdl.core.types import FLOAT32_MAX
from sparkdl.preparation.assembly import row_inputs
from sparkdl.preparation.embeddings import EmbeddedColumn, EmbeddingPlan
from sparkdl.preparation.multivalued import ManyColumn, VectorScaling, as_arrow, many_columns, reasons_of, scaled

_TRUE = {"t", "true", "y", "yes", "1"}
_FALSE = {"f", "false", "n", "no", "0"}


@dataclass(frozen=True)
class PortableFeatures:
    """What the fitted pipeline computes, as numbers (see the module docstring)."""

    types: Dict[str, str]  # every input column the network reads -> declared type
    numeric: List[str]
    surrogates: List[float]  # Imputer's value per numeric column
    scaler: str  # standard, minmax or none
    shift: List[float] = field(default_factory=list)  # standard: mean; minmax: original min
    scale: List[float] = field(default_factory=list)  # standard: 1/std (0 where std is 0); minmax: 1/range
    onehot: Dict[str, List[str]] = field(default_factory=dict)  # column -> StringIndexer labels, in vector order
    embeddings: List[Dict[str, Any]] = field(default_factory=list)  # the embedding plan's columns
    null_values: List[str] = field(default_factory=list)
    non_finite: str = "quarantine"
    many: List[Dict[str, Any]] = field(default_factory=list)  # the many-valued features (ManyColumn)
    vectors: List[Dict[str, Any]] = field(default_factory=list)  # schema.vectors' scalings (VectorScaling)

    def save(self, directory: Path) -> Path:
        path = Path(directory) / PORTABLE_FILE
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, path: "Path | str") -> "PortableFeatures":
        return cls(**json.loads(Path(path).read_text()))

    @property
    def width(self) -> int:
        """The features' width: the pipeline's, the vectors', the sparse vectors' value slots."""
        many = [ManyColumn(**m) for m in self.many]
        return len(self.numeric) + sum(len(labels) for labels in self.onehot.values()) \
            + sum(m.size for m in many if m.role == "vectors") + sum(m.max_items for m in many if m.role == "sparse")

    def transform(self, rows) -> Tuple[np.ndarray, Optional[np.ndarray], List[Optional[str]]]:
        """pandas rows → (float32 features, int32 embedding indices or None, a reason per
        row: None for a good row). Bad rows' features are zeros and must not be scored."""
        missing = [n for n in self.types if n not in rows.columns]
        if missing:
            raise KeyError(f"the rows have no column(s) {missing}, which the model reads (it has {list(rows.columns)})")
        n = len(rows)
        reasons: List[Optional[str]] = [None] * n
        many = [ManyColumn(**m) for m in self.many]
        kinds = {m.name: m.type for m in many}
        values = {name: self._parse(name, rows[name].tolist(), reasons) for name in self.types if name not in kinds}
        arrays = {m.name: as_arrow(rows[m.name].tolist(), m.type, m.name, reasons) for m in many}
        for i, why in enumerate(reasons_of(arrays, many, n)):
            reasons[i] = reasons[i] or why
        numeric = np.empty((n, len(self.numeric)), np.float64)
        for j, name in enumerate(self.numeric):
            col = np.array([self.surrogates[j] if v is None else float(v) for v in values[name]], np.float64)
            numeric[:, j] = self._scaled(col, j)
        parts = [numeric]
        for name, labels in self.onehot.items():
            index = {label: i for i, label in enumerate(labels)}
            block = np.zeros((n, len(labels)), np.float64)
            for i, v in enumerate(values[name]):
                k = index.get(_text(v, self.types[name]))
                if k is not None:  # an unseen category is all zeros, as Spark's dropped last slot
                    block[i, k] = 1.0
            parts.append(block)
        plan = EmbeddingPlan([EmbeddedColumn(**c) for c in self.embeddings])
        for c in plan.columns:
            if c.name not in arrays:  # a categorical's value as the vocabulary saw it
                arrays[c.name] = pa.array([_text(v, self.types[c.name]) for v in values[c.name]], pa.string())
        extra, indices = row_inputs(arrays, plan, [VectorScaling(**v) for v in self.vectors], n)
        features = np.concatenate(parts, axis=1).astype(np.float32)
        features = np.concatenate([features, extra], axis=1)
        bad = np.array([r is not None for r in reasons], bool)
        features[bad] = 0.0
        return features, indices, reasons

    def _scaled(self, col: np.ndarray, j: int) -> np.ndarray:
        return scaled(col, self.shift[j], self.scale[j], self.scaler) if self.shift else col

    def _parse(self, name: str, column: List[Any], reasons: List[Optional[str]]) -> List[Any]:
        """One column's values, typed (None when missing); a bad value sets the row's reason."""
        kind, out = self.types[name], []
        nulls = set(self.null_values)
        for i, v in enumerate(column):
            if isinstance(v, str):
                v = v.strip(" ")
                if v in nulls:
                    v = None
            elif _is_missing(v):
                v = None
            if v is None or kind == "string":
                out.append(None if v is None else str(v))
                continue
            parsed, why = _as_type(v, kind)
            if why is None and kind in ("double", "float") and not math.isfinite(parsed):
                if self.non_finite == "missing":
                    parsed = None
                else:
                    why = "is not a finite number"
            if why is None and parsed is not None and kind in ("double", "float") and name in self.numeric \
                    and abs(parsed) > FLOAT32_MAX:
                why = f"is beyond float32's range (|x| <= {FLOAT32_MAX:.4g})"
            if why is not None:
                if reasons[i] is None:
                    reasons[i] = f"column '{name}': '{v}' {why}"
                parsed = None
            out.append(parsed)
        return out


def _is_missing(v: Any) -> bool:
    """pandas' missing values (None, NaN of any float width, NA, NaT), in any column."""
    import pandas as pd

    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and math.isnan(v))


def _text(v: Any, kind: str) -> str:
    """A categorical value as the StringIndexer saw it: Spark's text of the typed value."""
    if v is None:
        return MISSING
    if kind == "boolean":
        return "true" if v else "false"
    return str(v)


def _as_type(v: Any, kind: str) -> Tuple[Any, Optional[str]]:
    """(value, None), or (None, why) when ``v`` is not a ``kind``."""
    if kind == "boolean":
        if isinstance(v, (bool, np.bool_)):
            return bool(v), None
        text = str(v).strip().lower()
        return (True, None) if text in _TRUE else (False, None) if text in _FALSE else (None, "is not a boolean")
    if kind in ("int", "long"):
        if isinstance(v, (bool, np.bool_)):
            return None, f"is not a {kind}"
        if isinstance(v, (int, np.integer)):
            return int(v), None
        if isinstance(v, (float, np.floating)):
            return (int(v), None) if float(v).is_integer() else (None, f"is not a {kind}")
        try:
            return int(str(v)), None
        except ValueError:
            return None, f"is not a {kind}"
    if isinstance(v, str) and "_" in v:  # Python reads 1_000; Spark does not
        return None, f"is not a {kind}"
    try:  # double, float
        return float(v), None
    except (TypeError, ValueError):
        return None, f"is not a {kind}"


def export(pipeline, schema, features_cfg, data_cfg, plan=None, scaling=()) -> PortableFeatures:
    """Read the fitted ``PipelineModel`` (built by :func:`sparkdl.preparation.features.build_pipeline`)
    into a :class:`PortableFeatures`. Runs on the driver, with Spark."""
    from pyspark.ml.feature import ImputerModel, MinMaxScalerModel, StandardScalerModel, StringIndexerModel

    from sparkdl.preparation.features import onehot_columns

    stages = {type(s): s for s in pipeline.stages}
    numeric = list(schema.numeric)
    surrogates: List[float] = []
    shift: List[float] = []
    scale: List[float] = []
    if numeric:
        row = stages[ImputerModel].surrogateDF.collect()[0]
        surrogates = [float(row[c]) for c in stages[ImputerModel].getInputCols()]
    if StandardScalerModel in stages:
        m = stages[StandardScalerModel]
        shift = list(m.mean.toArray()) if m.getWithMean() else [0.0] * len(numeric)
        scale = [0.0 if s == 0 else 1.0 / s for s in m.std.toArray()] if m.getWithStd() else [1.0] * len(numeric)
    elif MinMaxScalerModel in stages:
        m = stages[MinMaxScalerModel]
        lo, hi = m.originalMin.toArray(), m.originalMax.toArray()
        shift = list(lo)
        scale = [(m.getMax() - m.getMin()) / (b - a) if b != a else 0.0 for a, b in zip(lo, hi)]
    onehot = onehot_columns(schema, features_cfg)
    labels = stages[StringIndexerModel].labelsArray if onehot else []
    types = {c.name: c.type for c in schema.columns if c.name in schema.inputs}
    return PortableFeatures(
        types=types, numeric=numeric, surrogates=surrogates, scaler=features_cfg.scaler if numeric else "none",
        shift=[float(x) for x in shift], scale=[float(x) for x in scale],
        onehot={c: list(lab) for c, lab in zip(onehot, labels)},
        embeddings=[asdict(c) for c in plan.columns] if plan else [],
        null_values=list(data_cfg.null_values), non_finite=data_cfg.non_finite,
        many=[asdict(m) for m in many_columns(schema)], vectors=[asdict(v) for v in scaling])
