"""The feature pipeline: a Spark ML ``Pipeline`` built from the config.

Numeric columns are imputed and scaled; categorical columns get an explicit
``(missing)`` category for nulls, then StringIndexer(handleInvalid="keep") and a
one-hot encoding whose dropped last slot is the unseen-category bucket, so a category
never seen in training scores as all zeros instead of crashing. Everything lands in a
dense ``float32`` array column ``features`` plus the ``label``: the class's index (int)
for classification, the number as a double for regression. The fitted
``PipelineModel`` is saved with the dataset and reused unchanged at scoring time.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence

from sparkdl.core.columns import FEATURES, FEATURES_VECTOR, LABEL, MISSING, PIXELS
from sparkdl.core.config import FeaturesConfig, ImageConfig, SchemaConfig
from sparkdl.core.rundir import IMAGE_SETTINGS

if TYPE_CHECKING:
    from sparkdl.preparation.embeddings import EmbeddingPlan
    from sparkdl.preparation.multivalued import VectorScaling

log = logging.getLogger(__name__)



def _tmp(name: str, suffix: str) -> str:
    return f"_{name}__{suffix}"


def build_pipeline(schema: SchemaConfig, cfg: FeaturesConfig):
    """An unfitted Pipeline whose output column ``_features_vec`` holds the dense features:
    numeric columns and one-hot categorical columns (embedded ones are indexed apart)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import (
        Imputer,
        MinMaxScaler,
        OneHotEncoder,
        SQLTransformer,
        StandardScaler,
        StringIndexer,
        VectorAssembler,
    )

    stages, parts = [], []
    if schema.numeric:
        as_double = ", ".join(f"CAST(`{n}` AS DOUBLE) AS `{_tmp(n, 'num')}`" for n in schema.numeric)
        stages.append(SQLTransformer(statement=f"SELECT *, {as_double} FROM __THIS__"))
        num = [_tmp(n, "num") for n in schema.numeric]
        imputed = [_tmp(n, "imp") for n in schema.numeric]
        stages.append(Imputer(inputCols=num, outputCols=imputed, strategy=cfg.impute))
        stages.append(VectorAssembler(inputCols=imputed, outputCol="_numeric_vec"))
        if cfg.scaler == "standard":
            stages.append(StandardScaler(inputCol="_numeric_vec", outputCol="_numeric_scaled",
                                         withMean=True, withStd=True))
        elif cfg.scaler == "minmax":
            stages.append(MinMaxScaler(inputCol="_numeric_vec", outputCol="_numeric_scaled"))
        parts.append("_numeric_scaled" if cfg.scaler != "none" else "_numeric_vec")
    onehot = onehot_columns(schema, cfg)
    if onehot:
        filled = ", ".join(f"COALESCE(CAST(`{c}` AS STRING), '{MISSING}') AS `{_tmp(c, 'str')}`" for c in onehot)
        stages.append(SQLTransformer(statement=f"SELECT *, {filled} FROM __THIS__"))
        stages.append(StringIndexer(inputCols=[_tmp(c, "str") for c in onehot],
                                    outputCols=[_tmp(c, "idx") for c in onehot],
                                    handleInvalid="keep", stringOrderType="frequencyDesc"))
        # StringIndexer's "keep" bucket is the last index; dropLast drops exactly that slot.
        stages.append(OneHotEncoder(inputCols=[_tmp(c, "idx") for c in onehot],
                                    outputCols=[_tmp(c, "ohe") for c in onehot], dropLast=True))
        parts.extend(_tmp(c, "ohe") for c in onehot)
    if parts:
        stages.append(VectorAssembler(inputCols=parts, outputCol=FEATURES_VECTOR))
    else:  # only many-valued features: they are appended after the pipeline (to_training_frame)
        stages.append(SQLTransformer(statement="SELECT * FROM __THIS__"))
    return Pipeline(stages=stages)


def onehot_columns(schema: SchemaConfig, cfg: FeaturesConfig) -> List[str]:
    return [c for c in schema.categorical if cfg.encoding(c) == "onehot"]


def feature_names(model, schema: SchemaConfig, cfg: FeaturesConfig) -> List[str]:
    """Expanded dense feature names in vector order, e.g. ``age``, ``occupation=Sales``."""
    from pyspark.ml.feature import StringIndexerModel

    names = list(schema.numeric)
    indexers = [s for s in model.stages if isinstance(s, StringIndexerModel)]
    if indexers:
        for col, labels in zip(onehot_columns(schema, cfg), indexers[0].labelsArray):
            names.extend(f"{col}={label}" for label in labels)
    return names + appended_names(schema)


def appended_names(schema: SchemaConfig) -> List[str]:
    """The features appended after the pipeline's: each vector's values (``v[0]``...), then
    each sparse vector's value slots (``tf.value[0]``...), in the order
    :func:`sparkdl.preparation.embeddings.assemble` writes them."""
    names = [f"{n}[{i}]" for n in schema.vectors for i in range(schema.column(n).size)]
    return names + [f"{n}.value[{j}]" for n in schema.sparse for j in range(schema.column(n).max_items)]


def label_index(schema: SchemaConfig):
    """The label as its position in ``schema.classes`` (null for anything else)."""
    from pyspark.sql import functions as F

    col = F.trim(F.col(f"`{schema.label}`").cast("string"))
    expr = F.lit(None).cast("int")
    for i, cls in reversed(list(enumerate(schema.classes))):
        expr = F.when(col == F.lit(cls), F.lit(i)).otherwise(expr)
    return expr


def label_column(schema: SchemaConfig):
    """The label as training reads it: a class index, or the regression target as a double."""
    from pyspark.sql import functions as F

    if schema.task == "regression":
        return F.col(f"`{schema.label}`").cast("double")
    return label_index(schema)


def to_training_frame(model, df, schema: SchemaConfig, keep: List[str] = (), with_label: bool = True,
                      embeddings: Optional["EmbeddingPlan"] = None, plan_path: Optional[str] = None,
                      scaling: Sequence["VectorScaling"] = ()):
    """Apply fitted preprocessing: ``features`` (array<float>, or an image's uint8 bytes when
    ``model`` is None), ``label``, ``keep`` columns, and with an embedding plan the
    ``categories`` index column."""
    from pyspark.sql import functions as F

    cols = [F.col(f"`{k}`") for k in keep]
    if model is None:  # images: the pixels were decoded at ingest

        out = df
        cols.append(F.col(PIXELS).alias(FEATURES))
    else:
        from pyspark.ml.functions import vector_to_array

        out = model.transform(df)
        base = (vector_to_array(F.col(FEATURES_VECTOR), "float32") if FEATURES_VECTOR in out.columns
                else F.array().cast("array<float>"))
        cols.append(base.alias(FEATURES))
    if with_label:
        cols.append(label_column(schema).alias(LABEL))
    if (not embeddings or not embeddings.columns) and not schema.vectors:
        return out.select(*cols)
    from sparkdl.preparation.assembly import assemble, input_columns

    names = list(keep) + [FEATURES] + ([LABEL] if with_label else [])
    return assemble(out.select(*cols, *input_columns(schema, embeddings)), schema, embeddings, plan_path, names,
                    scaling)


@dataclass(frozen=True)
class FittedFeatures:
    """A fitted pipeline and what it produces (for images: no pipeline, ``image`` says how
    files were decoded)."""

    model: object
    names: List[str]
    image: Optional[ImageConfig] = None
    #: The vector columns' scalings (``schema.vectors``, in order).
    vectors: List["VectorScaling"] = dataclasses.field(default_factory=list)

    @property
    def width(self) -> int:
        if self.image is not None:
            c, h, w = self.image.shape
            return c * h * w
        return len(self.names)

    def save(self, path: Path) -> None:
        """The preprocessing scoring reapplies: a Spark ML PipelineModel, or the image settings."""
        if self.image is None:
            from sparkdl.preparation.multivalued import save_scaling

            self.model.save(str(path))
            save_scaling(self.vectors, path)
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / IMAGE_SETTINGS).write_text(json.dumps(dataclasses.asdict(self.image)))


def load_preprocessing(path: "Path | str"):
    """A run's preprocessing: its PipelineModel, or None for an image job (decoded at ingest)."""
    if (Path(path) / IMAGE_SETTINGS).is_file():
        return None
    from pyspark.ml import PipelineModel

    return PipelineModel.load(str(path))


def fit(df, schema: SchemaConfig, cfg: FeaturesConfig, image: Optional[ImageConfig] = None) -> FittedFeatures:
    """Fit the pipeline on ``df`` (the training split only) and check the width it produces."""
    if image is not None:
        log.info("features: %s images, %d x %d, stored as uint8", image.mode, image.height, image.width)
        return FittedFeatures(None, [], image)
    model = build_pipeline(schema, cfg).fit(df)
    names = feature_names(model, schema, cfg)
    appended = len(appended_names(schema))
    out = model.transform(df.limit(0)).schema
    attrs = out[FEATURES_VECTOR].metadata.get("ml_attr", {}) if FEATURES_VECTOR in out.names else {"num_attrs": 0}
    width = attrs.get("num_attrs")
    if width is not None and width + appended != len(names):
        raise RuntimeError(f"feature pipeline produced {width} features but {len(names) - appended} names were derived")
    log.info("dense features: %d (%d numeric, %d one-hot from %d categorical columns, %d from vectors and sparse "
             "values)", len(names), len(schema.numeric), len(names) - len(schema.numeric) - appended,
             len(onehot_columns(schema, cfg)), appended)
    from sparkdl.preparation.multivalued import fit_scaling

    return FittedFeatures(model, names, vectors=fit_scaling(df, schema, cfg.scaler))
