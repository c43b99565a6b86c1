"""A user's DataFrame as a sparkdl schema: each column's declared type and role inferred
from its Spark type, and the one projection (decimals as doubles, categorical numbers as
text) that both fitting and scoring apply to it.

A vector column is dense numbers, or with ``sparseCols`` a sparse vector; an array of
numbers (``array<float|double>``) is dense numbers; an array of strings or integers is a bag
of ids. Inference needs no Spark job beyond these: a classifier's class list (one
aggregation), a vector or array column's size when it has no ML attributes (one row), and
the most items a bag or a sparse vector holds (one aggregation for them all).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from sparkdl.core.config.checks import NAME_RE
from sparkdl.core.config.data import MAX_DENSE_SIZE
from sparkdl.core.errors import ParamError

log = logging.getLogger(__name__)

#: Spark types a feature column may have, and what sparkdl declares each as.
DECLARED_AS = {"tinyint": "int", "smallint": "int", "int": "int", "bigint": "long", "float": "float",
               "double": "double", "boolean": "boolean", "string": "string"}
VECTOR = "vector"
#: Arrays of numbers (dense values) and of ids (bags), and what sparkdl declares each as.
NUMBER_ARRAYS = {"array<float>": "array<float>", "array<double>": "array<double>"}
ID_ARRAYS = {"array<string>": "array<string>", "array<tinyint>": "array<int>", "array<smallint>": "array<int>",
             "array<int>": "array<int>", "array<bigint>": "array<long>"}
#: The most distinct labels a classifier takes from a DataFrame.
MAX_CLASSES = 1000
#: Where scoring keeps a column it cast for the network, to give it back as it was.
ORIGINAL = "_sparkdl_original_"


@dataclass(frozen=True)
class FrameLayout:
    """What a DataFrame's columns are to the job: declared columns (in order) with types
    and roles, the sizes of vector and number-array columns, the most items of bags and
    sparse vectors."""

    columns: Dict[str, str]                       # declared name -> declared type
    numeric: List[str]
    categorical: List[str]
    label: str
    validation_indicator: Optional[str] = None
    vectors: Dict[str, int] = field(default_factory=dict)  # dense vector or number-array column -> size
    sparse: Dict[str, int] = field(default_factory=dict)  # sparse vector column -> size
    bags: List[str] = field(default_factory=list)
    max_items: Dict[str, int] = field(default_factory=dict)  # bag or sparse vector -> most items
    #: A column of encoded image bytes (the only feature then), and the images' (c, h, w).
    image: Optional[str] = None
    image_shape: Optional[List[int]] = None

    def project(self, df, with_label: bool = True):
        """``df``'s declared columns as the job reads them, plus its other columns when
        scoring (``with_label=False``) so they pass through."""
        from pyspark.sql import functions as F

        types = dict(df.dtypes)
        made: Dict[str, object] = {}
        for name, size in self.vectors.items():
            if name not in self.columns:  # a layout saved by sparkdl <= 0.2: vectors as <name>_<i> numbers
                from pyspark.ml.functions import vector_to_array

                array = vector_to_array(F.col(f"`{name}`"))
                made.update({f"{name}_{i}": array[i] for i in range(size)})
        for name, declared in self.columns.items():
            if name in made or name not in types:
                continue
            if not with_label and name in (self.label, self.validation_indicator):
                continue
            source = types[name]
            if declared == "string" and source != "string":
                made[name] = F.col(f"`{name}`").cast("string")
            elif source.startswith("decimal"):
                made[name] = F.col(f"`{name}`").cast("double")
            elif source.startswith("array<decimal"):
                made[name] = F.col(f"`{name}`").cast("array<double>")
        if with_label:
            return df.select(*[made.get(n, F.col(f"`{n}`")).alias(n) for n in self.columns])
        kept = {ORIGINAL + n: F.col(f"`{n}`") for n in made if n in types}  # given back by :meth:`restore`
        return df.withColumns({**kept, **made}) if made else df

    @staticmethod
    def restore(scored, columns: List[str]):
        """``scored``'s ``columns``, each as the user gave it (a column :meth:`project`
        cast for the network comes back as it was), in that order."""
        from pyspark.sql import functions as F

        have = set(scored.columns)
        return scored.select(*[F.col(f"`{ORIGINAL + c}`").alias(c) if ORIGINAL + c in have else F.col(f"`{c}`")
                               for c in columns])

    def schema_columns(self) -> List[Dict[str, object]]:
        """``schema.columns`` of the job: each column's name and type, with its size and most items."""
        out: List[Dict[str, object]] = []
        for name, declared in self.columns.items():
            entry: Dict[str, object] = {"name": name, "type": declared}
            size = self.vectors.get(name, self.sparse.get(name))
            if size is not None:
                entry["size"] = size
            if name in self.max_items:
                entry["max_items"] = self.max_items[name]
            out.append(entry)
        return out


def _check_name(param: str, name: str, owner: str) -> None:
    if not NAME_RE.match(name):
        raise ParamError(param, f"column '{name}' has a name sparkdl cannot declare (letters, digits, '_', '-', '.'): "
                                "rename it with withColumnRenamed", owner)


def _label_type(spark_type: str, task: str) -> Optional[str]:
    """How a label of ``spark_type`` is declared for ``task``; None when it cannot be."""
    number = "double" if spark_type.startswith("decimal") else DECLARED_AS.get(spark_type)
    if task == "classification":
        return "string" if number is not None else None  # classes are the values' text
    return number if number not in (None, "string", "boolean") else None


def infer_layout(df, label: str, features: List[str], categorical: List[str], indicator: Optional[str],
                 task: str, owner: str, image_shape: Optional[List[int]] = None,
                 sparse: List[str] = ()) -> FrameLayout:
    """The layout of ``df`` for a ``task`` predicting ``label`` from ``features`` (every
    other column when empty). ``categorical``: number columns to treat as categories. A
    binary column is encoded images (``image_shape``, or the first image's). Every problem
    is a :class:`ParamError` naming the Param, found before any Spark job (an image column
    without ``image_shape`` reads one row)."""
    types = dict(df.dtypes)
    have = list(df.columns)
    if label not in types:
        raise ParamError("labelCol", f"the DataFrame has no column '{label}' (it has {have}): set labelCol", owner)
    label_type = _label_type(types[label], task)
    if label_type is None:
        fix = ("a regression label is a number: cast it, or classify it with DeepClassifier"
               if task == "regression" else "classes are numbers, strings or booleans: cast it")
        raise ParamError("labelCol", f"column '{label}' is {types[label]}; {fix}", owner)
    if indicator is not None:
        if indicator not in types:
            raise ParamError("validationIndicatorCol", f"the DataFrame has no column '{indicator}' (it has {have})",
                             owner)
        if types[indicator] != "boolean":
            raise ParamError("validationIndicatorCol", f"column '{indicator}' is {types[indicator]}; it must be "
                                                       "boolean (true: a validation row): cast it", owner)
    chosen = list(features) or [c for c in have if c not in (label, indicator)]
    missing = [c for c in chosen if c not in types]
    if missing:
        raise ParamError("featuresCols", f"the DataFrame has no column(s) {missing} (it has {have})", owner)
    for key, names in (("featuresCols", chosen), ("categoricalCols", categorical)):
        clash = [c for c in names if c in (label, indicator)]
        if clash:
            raise ParamError(key, f"{clash} cannot be a feature: it is the label or the validation indicator", owner)
    strays = [c for c in categorical if c not in chosen]
    if strays:
        raise ParamError("categoricalCols", f"{strays} are not among the features {chosen}", owner)
    not_vectors = [c for c in sparse if c not in chosen or types[c] != VECTOR]
    if not_vectors:
        raise ParamError("sparseCols", f"{not_vectors} are not vector columns among the features {chosen}", owner)
    columns: Dict[str, str] = {}
    numeric, categories, vectors, sparse_sizes, bags = [], [], {}, {}, []
    for name in chosen:
        _check_name("featuresCols", name, owner)
        spark_type = types[name]
        if spark_type == VECTOR or spark_type in NUMBER_ARRAYS or spark_type.startswith("array<decimal"):
            if name in categorical:
                raise ParamError("categoricalCols", f"'{name}' holds many numbers: it cannot be a category", owner)
            columns[name] = VECTOR if spark_type == VECTOR else NUMBER_ARRAYS.get(spark_type, "array<double>")
            size = _vector_size(df, name)
            if spark_type == VECTOR and name not in sparse and size > MAX_DENSE_SIZE:
                log.info("vector column %s: %d values, kept sparse (wider than %d dense numbers)", name, size,
                         MAX_DENSE_SIZE)
                sparse = list(sparse) + [name]
            (sparse_sizes if name in sparse else vectors)[name] = size
            continue
        if spark_type in ID_ARRAYS:
            columns[name] = ID_ARRAYS[spark_type]
            bags.append(name)
            continue
        if spark_type == "binary":
            return _image_layout(df, name, chosen, label, indicator, task, image_shape, owner)
        declared = "double" if spark_type.startswith("decimal") else DECLARED_AS.get(spark_type)
        if declared is None:
            raise ParamError("featuresCols", f"column '{name}' is {spark_type}, which sparkdl cannot use as a feature: "
                                             "cast it to a number or a string, or leave it out of featuresCols", owner)
        if declared == "string" or name in categorical:
            columns[name] = "string"
            categories.append(name)
        else:
            columns[name] = declared
            numeric.append(name)
    _check_name("labelCol", label, owner)
    columns[label] = label_type
    if indicator is not None:
        _check_name("validationIndicatorCol", indicator, owner)
        columns[indicator] = "boolean"
    most = most_items(df, bags, list(sparse_sizes))
    return FrameLayout(columns, numeric, categories, label, indicator, vectors, sparse_sizes, bags, most)


def most_items(df, bags: List[str], sparse: List[str]) -> Dict[str, int]:
    """The most items any row holds, per bag and sparse vector column (at least 1): one
    aggregation over the rows (a vector's non-zero entries read from its plain form)."""
    from pyspark.sql import functions as F

    from sparkdl.preparation.multivalued import plain_vectors

    if not bags and not sparse:
        return {}
    plain = plain_vectors(df.select(*[F.col(f"`{n}`") for n in bags + sparse]), sparse)
    nonzero = {n: F.when(F.col(f"`{n}`.type") == 0, F.size(F.col(f"`{n}`.indices")))
               .otherwise(F.size(F.filter(F.col(f"`{n}`.values"), lambda x: x != 0))) for n in sparse}
    sizes = {n: F.size(F.col(f"`{n}`")) for n in bags}
    row = plain.agg(*[F.max(v).alias(n) for n, v in {**sizes, **nonzero}.items()]).first()
    return {n: max(1, int(row[n] or 0)) for n in bags + sparse}


def _image_layout(df, column: str, chosen: List[str], label: str, indicator: Optional[str], task: str,
                  shape: Optional[List[int]], owner: str) -> FrameLayout:
    """An image job's layout: the bytes column is the whole input."""
    from sparkdl.ml.images import FILE_COLUMN, image_shape

    if chosen != [column]:
        raise ParamError("featuresCols", f"'{column}' holds images, which are a network's whole input: set "
                                         f"featuresCols=['{column}'] (it has {chosen})", owner)
    if task != "classification":
        raise ParamError("featuresCols", f"'{column}' holds images: sparkdl classifies images (DeepClassifier)", owner)
    if indicator is not None:
        raise ParamError("validationIndicatorCol", "image jobs split by a seeded hash of each image's file: "
                                                   "leave it unset and use validationFraction", owner)
    _check_name("labelCol", label, owner)
    if label == FILE_COLUMN:
        raise ParamError("labelCol", f"rename the label: '{FILE_COLUMN}' names the staged image files", owner)
    return FrameLayout({FILE_COLUMN: "string", label: "string"}, [], [], label, image=column,
                       image_shape=image_shape(df, column, shape, owner))


def _vector_size(df, name: str) -> int:
    """A vector or number-array column's size: from its ML attributes (VectorAssembler's,
    HashingTF's), else its first row."""
    from pyspark.sql import functions as F

    from sparkdl.preparation.multivalued import plain_vectors

    attrs = (df.schema[name].metadata or {}).get("ml_attr", {})
    if "num_attrs" in attrs:
        return int(attrs["num_attrs"])
    col = F.col(f"`{name}`")
    size = F.size(col)
    if dict(df.dtypes)[name] == VECTOR:
        field = F.col(f"`{name}`").getField
        size = F.when(field("type") == 0, field("size")).otherwise(F.size(field("values")))
    row = plain_vectors(df.select(col), [name]).where(col.isNotNull()).select(size).first()
    if row is None:
        raise ParamError("featuresCols", f"column '{name}' has no values to size it by")
    log.info("column %s: %d values (from its first row; it has no ML attributes)", name, row[0])
    return int(row[0])


def class_values(df, label: str, owner: str) -> List[str]:
    """A classifier's classes: the label's distinct values as text, in numeric order where
    they are all numbers. One aggregation; fewer than two or more than MAX_CLASSES is an error."""
    from pyspark.sql import functions as F

    text = F.trim(F.col(f"`{label}`").cast("string"))
    values = [r[0] for r in df.select(text).where(text.isNotNull()).distinct().limit(MAX_CLASSES + 1).collect()]
    if len(values) < 2:
        raise ParamError("labelCol", f"column '{label}' has {len(values)} distinct value(s) {values}: a classifier "
                                     "needs at least two classes; check the rows you fit on", owner)
    if len(values) > MAX_CLASSES:
        raise ParamError("labelCol", f"column '{label}' has more than {MAX_CLASSES} distinct values: predict a "
                                     "number with DeepRegressor instead", owner)
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)
