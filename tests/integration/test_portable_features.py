"""The portable preprocessing (what the MLflow model scores with) equals Spark's fitted
pipeline value for value: every scaler, integer and text one-hot columns, indexed and
hashed embeddings, missing values and unseen categories."""
import numpy as np
import pandas as pd
import pytest

from sparkdl.core.columns import CORRUPT, FEATURES, FILE, RAW, REASON
from sparkdl.core.config.loading import parse_config
from sparkdl.core.rundir import PLAN_FILE
from sparkdl.preparation.embeddings import plan_categoricals
from sparkdl.preparation.features import fit, to_training_frame
from sparkdl.preparation.ingest import validate
from sparkdl.preparation.portable import export


def _cfg(scaler):
    return parse_config({
        "name": "mixed", "data": {"train": "unused.csv"},
        "schema": {"columns": [{"name": "x", "type": "double"}, {"name": "n", "type": "int"},
                               {"name": "b", "type": "boolean"}, {"name": "color", "type": "string"},
                               {"name": "size", "type": "int"}, {"name": "city", "type": "string"},
                               {"name": "uid", "type": "string"}, {"name": "y", "type": "string"}],
                   "numeric": ["x", "n", "b"], "categorical": ["color", "size", "city", "uid"], "label": "y",
                   "classes": ["a", "b"]},
        "features": {"scaler": scaler, "columns": {"city": {"encoding": "embedding"},
                                                   "uid": {"encoding": "embedding", "hash_buckets": 64}}}})


def _rows(n, seed):
    rng = np.random.default_rng(seed)
    pick = lambda values: [values[i] for i in rng.integers(0, len(values), n)]  # noqa: E731
    return pd.DataFrame({
        "x": [None if i % 11 == 0 else f"{v:.3f}" for i, v in enumerate(rng.normal(50, 20, n))],
        "n": [None if i % 13 == 0 else str(v) for i, v in enumerate(rng.integers(0, 9, n))],
        "b": pick(["true", "false", "?"]), "color": pick(["red", " blue", "green", "?", "violet"]),
        "size": pick(["1", "2", "3", "?"]), "city": pick(["Oslo", "Lima", "Pune", "?", "Quito"]),
        "uid": [f"u{v}" for v in rng.integers(0, 500, n)], "y": pick(["a", "b"])})


@pytest.mark.parametrize("scaler", ["standard", "minmax", "none"])
def test_portable_features_equal_sparks(spark_local, scaler, tmp_path):
    cfg = _cfg(scaler)
    schema = cfg.schema

    def typed(pdf):
        from pyspark.sql import functions as F

        df = spark_local.createDataFrame(pdf.astype(object).where(pdf.notna(), None),
                                         ", ".join(f"`{c.name}` string" for c in schema.columns))
        rows = df.select("*", F.lit(None).cast("string").alias(RAW), F.lit(None).cast("string").alias(FILE),
                         F.lit(None).cast("string").alias(CORRUPT))
        return validate(rows, schema, cfg.data.null_values).where(F.col(REASON).isNull())

    train = typed(_rows(400, 0)).cache()
    fitted = fit(train, schema, cfg.features)
    plan = plan_categoricals(train, schema, cfg.features)
    plan.save(tmp_path)
    new = _rows(300, 1)  # other values: unseen categories ("violet", "Quito" may be rare), new ids
    keep = ["x", "n", "b", "color", "size", "city", "uid"]
    spark_out = to_training_frame(fitted.model, typed(new),
                                  schema, keep=keep, with_label=False, embeddings=plan,
                                  plan_path=str(tmp_path / PLAN_FILE)).toPandas()
    portable = export(fitted.model, schema, cfg.features, cfg.data, plan)
    assert portable.width == fitted.width
    features, indices, reasons = portable.transform(new.drop(columns="y"))
    assert reasons == [None] * len(new)
    assert features.dtype == np.float32 and np.array_equal(features, np.stack(spark_out[FEATURES]))
    assert np.array_equal(indices, np.stack(spark_out["categories"]))
