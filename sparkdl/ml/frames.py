"""A user's DataFrame as a sparkdl schema: each column's declared type and role inferred
from its Spark type, and the one projection (vectors expanded, decimals as doubles,
categorical numbers as text) that both fitting and scoring apply to it.

Inference needs no Spark job; only a classifier's class list is read from the data (one
aggregation), and a vector column without ML attributes has its size read from one row.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from sparkdl.core.config.checks import NAME_RE
from sparkdl.core.errors import ParamError

log = logging.getLogger(__name__)

#: Spark types a feature column may have, and what sparkdl declares each as.
DECLARED_AS = {"tinyint": "int", "smallint": "int", "int": "int", "bigint": "long", "float": "float",
               "double": "double", "boolean": "boolean", "string": "string"}
VECTOR = "vector"
#: The most distinct labels a classifier takes from a DataFrame.
MAX_CLASSES = 1000
#: Where scoring keeps a column it cast for the network, to give it back as it was.
ORIGINAL = "_sparkdl_original_"


@dataclass(frozen=True)
class FrameLayout:
    """What a DataFrame's columns are to the job: declared columns (in order) with types,
    roles, and the vector columns expanded into ``<name>_<i>`` numbers."""

    columns: Dict[str, str]                       # declared name -> declared type
    numeric: List[str]
    categorical: List[str]
    label: str
    validation_indicator: Optional[str] = None
    vectors: Dict[str, int] = field(default_factory=dict)  # vector column -> size
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
                 task: str, owner: str, image_shape: Optional[List[int]] = None) -> FrameLayout:
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
    columns: Dict[str, str] = {}
    numeric, categories, vectors = [], [], {}
    for name in chosen:
        _check_name("featuresCols", name, owner)
        spark_type = types[name]
        if spark_type == VECTOR:
            if name in categorical:
                raise ParamError("categoricalCols", f"'{name}' is a vector column: its values are numbers", owner)
            vectors[name] = _vector_size(df, name)
            for i in range(vectors[name]):
                columns[f"{name}_{i}"] = "double"
                numeric.append(f"{name}_{i}")
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
    return FrameLayout(columns, numeric, categories, label, indicator, vectors)


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
    """A vector column's size: from its ML attributes (VectorAssembler's), else its first row."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    attrs = (df.schema[name].metadata or {}).get("ml_attr", {})
    if "num_attrs" in attrs:
        return int(attrs["num_attrs"])
    row = df.where(F.col(f"`{name}`").isNotNull()).select(F.size(vector_to_array(F.col(f"`{name}`")))).first()
    if row is None:
        raise ParamError("featuresCols", f"vector column '{name}' has no values to size it by")
    log.info("vector column %s: %d values (from its first row; it has no ML attributes)", name, row[0])
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
