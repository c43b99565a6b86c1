"""Held-out evaluation of a trained network, and a Spark MLlib baseline beside it, with
the same metric definitions as training's validation (:mod:`sparkdl.core.task_metrics`)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from sparkdl.core.columns import FEATURES, LABEL, PREDICTION, PROBABILITIES
from sparkdl.core.errors import BadDataError
from sparkdl.core.stopwatch import StageClock
from sparkdl.core.task_metrics import StatsLayout, scalar_metrics, sum_stats
from sparkdl.serving.predict import predict_frame

log = logging.getLogger(__name__)


def split_statistics(df, outputs: str, layout: StatsLayout) -> np.ndarray:
    """Sum the task's statistics (:mod:`sparkdl.core.task_metrics`) over a DataFrame holding
    ``outputs`` (class probabilities as an array, or a numeric prediction) and ``label``:
    one small row per partition, added on the driver."""
    from functools import partial

    from pyspark.sql.types import ArrayType, DoubleType, StructField, StructType

    schema = StructType([StructField("stats", ArrayType(DoubleType()))])
    rows = df.select(outputs, LABEL).mapInArrow(partial(_partition_statistics, outputs=outputs, layout=layout),
                                                schema).collect()
    return sum_stats([r["stats"] for r in rows], layout.size)


def _partition_statistics(batches, outputs: str, layout: StatsLayout):
    import pyarrow as pa

    stats = layout.zeros()
    for batch in batches:
        if batch.num_rows == 0:
            continue
        col = batch.column(0)
        if pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type):
            values = col.flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, -1)
        else:
            values = col.to_numpy(zero_copy_only=False)
        layout.update(stats, values, batch.column(1).to_numpy(zero_copy_only=False))
    yield pa.RecordBatch.from_arrays([pa.array([stats.tolist()], pa.list_(pa.float64()))], names=["stats"])


def float_features(df):
    """An image split's uint8 ``features`` as array<float> in [0, 1], as the ranks read them."""
    from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

    schema = StructType([StructField(FEATURES, ArrayType(FloatType())), df.schema[LABEL]])
    return df.select(FEATURES, LABEL).mapInArrow(_float_batches, schema)


def _float_batches(batches):
    import pyarrow as pa

    from sparkdl.core.arrow import feature_matrix

    for batch in batches:
        m = feature_matrix(batch.column(0), FEATURES, "an image split")
        values = pa.FixedSizeListArray.from_arrays(pa.array(m.ravel()), m.shape[1]).cast(pa.list_(pa.float32()))
        yield pa.RecordBatch.from_arrays([values, batch.column(1)], names=[FEATURES, LABEL])


def _held_out_metrics(stats: np.ndarray, layout: StatsLayout, threshold: float) -> Dict[str, Any]:
    out = layout.finalize(stats, threshold)
    out.pop("best_f1", None), out.pop("best_f1_threshold", None)  # chosen on validation, not here
    if layout.task == "regression":
        out.pop("loss")  # the training loss is in standardized units; RMSE/MAE/R2 say it here
    return out


def evaluate_network(spark, split_path: str, model_dir: str, manifest) -> Dict[str, Any]:
    """The task's metrics of the saved network on a materialized split, computed from the
    same predictions scoring writes (at the model's decision threshold)."""
    from sparkdl.core.rundir import SPEC

    t0 = time.monotonic()
    spec = json.loads((Path(model_dir) / SPEC).read_text())
    layout = StatsLayout(manifest.task, len(manifest.classes))
    preds = predict_frame(spark.read.parquet(split_path), model_dir, manifest, [LABEL])
    outputs = PREDICTION if layout.task == "regression" else PROBABILITIES
    out = _held_out_metrics(split_statistics(preds, outputs, layout), layout, spec.get("threshold", 0.5))
    log.info("stage evaluate: network %s in %.1fs", scalar_metrics(out), time.monotonic() - t0)
    return out


#: The widest embedded column (table rows) the baseline one-hot encodes.
BASELINE_MAX_TABLE = 10_000


def baseline(spark, train_path: str, test_path: str, manifest) -> Tuple[str, Dict[str, Any]]:
    """Spark MLlib's linear model on the same features, what the network must beat:
    (multinomial) logistic regression for classification, least squares for regression.
    Embedded categorical columns with tables of at most :data:`BASELINE_MAX_TABLE` rows
    enter it one-hot encoded from their indices (the "wide" linear model of click-through
    work); wider ones are left out, as their one-hot width would make the baseline cost
    more than the network (430 k one-hot columns over 1 M click-log rows: 8.5 minutes on
    2 cores). Returns its name and its metrics."""
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, VectorAssembler
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import functions as F

    t0 = time.monotonic()
    layout = StatsLayout(manifest.task, len(manifest.classes))
    index_col = manifest.columns.get("indices")
    slots = [max(1, e.get("items", 0)) for e in manifest.embeddings]
    at = {i: sum(slots[:i]) for i in range(len(slots))}  # each table's first slot in the index column
    wide = [i for i, e in enumerate(manifest.embeddings)  # bags are many slots: left out with the wider tables
            if e["size"] <= BASELINE_MAX_TABLE and not e.get("items")] if index_col else []
    categories = [f"_category_{i}" for i in wide]
    weights = sum(e["items"] for e in manifest.embeddings if e.get("weighted"))

    def load(path):
        df = spark.read.parquet(path)
        if manifest.image:  # uint8 pixels → the float features the network sees
            df = float_features(df)
        features = F.col(FEATURES)
        if weights:  # a sparse vector's value slots mean nothing without their indices: left out
            features = F.slice(features, 1, manifest.feature_width - weights)
        return df.select(array_to_vector(features).alias("dense"), F.col(LABEL).cast("double").alias(LABEL),
                         *[F.col(index_col)[at[i]].alias(c) for i, c in zip(wide, categories)])

    stages = []
    if categories:
        one_hot = [f"{c}_1h" for c in categories]
        stages += [OneHotEncoder(inputCols=categories, outputCols=one_hot, dropLast=False, handleInvalid="keep"),
                   VectorAssembler(inputCols=["dense"] + one_hot, outputCol="vec")]
    else:
        stages.append(VectorAssembler(inputCols=["dense"], outputCol="vec"))
    if layout.task == "regression":
        from pyspark.ml.regression import LinearRegression

        name, outputs = "linear_regression", "prediction"
        stages.append(LinearRegression(featuresCol="vec", labelCol=LABEL, regParam=0.0))
    else:
        from pyspark.ml.classification import LogisticRegression

        name, outputs = "logistic_regression", "p"
        stages.append(LogisticRegression(featuresCol="vec", labelCol=LABEL, maxIter=100, regParam=1e-4))
    preds = Pipeline(stages=stages).fit(load(train_path)).transform(load(test_path))
    if outputs == "p":
        preds = preds.withColumn("p", vector_to_array("probability"))
    out = _held_out_metrics(split_statistics(preds, outputs, layout), layout, 0.5)
    left_out = [e["name"] for i, e in enumerate(manifest.embeddings) if i not in wide]
    log.info("stage evaluate: %s baseline%s%s %s in %.1fs", name,
             f" (with {len(categories)} one-hot categorical columns)" if categories else "",
             f" (without the wider embedded columns {left_out})" if left_out else "",
             scalar_metrics(out), time.monotonic() - t0)
    return name, out


def evaluate_split(spark, manifest, model_dir: str, split: str, with_baseline: bool = True,
                   clock: Optional[StageClock] = None) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """The network in ``model_dir`` on ``split`` of ``manifest``'s dataset (its metrics name
    the split), and ``{name: metrics}`` of Spark MLlib's linear model trained on the same
    dataset's train split beside it (None without ``with_baseline``). ``clock`` gets the
    evaluate and baseline stage times."""
    clock = clock or StageClock()
    with clock.stage("evaluate"):
        network = {"split": split, **evaluate_network(spark, manifest.paths[split], model_dir, manifest)}
    if not with_baseline:
        return network, None
    with clock.stage("baseline"):
        name, metrics = baseline(spark, manifest.paths["train"], manifest.paths[split], manifest)
    return network, {name: {"split": split, **metrics}}


def evaluate_run(spark, run_dir: "str | Path", split: str = "test",
                 baseline: bool = True) -> Dict[str, Dict[str, float]]:
    """A committed run's network on a split of the dataset it trained on (``test`` when the
    job had one), with Spark MLlib's linear model on the same features beside it."""
    from sparkdl.core.lake import require_run
    from sparkdl.core.rundir import RunDir
    from sparkdl.preparation.materialize import Manifest

    run = RunDir(require_run(run_dir))
    manifest = Manifest.load(run.manifest)
    if split not in manifest.paths:
        raise ValueError(f"split {split!r} is not in run {run.name}'s dataset (it has "
                         f"{sorted(k for k in manifest.splits)}): pick one of those")
    network, baselines = evaluate_split(spark, manifest, str(run.model), split, baseline)
    return {"network": network, **(baselines or {})}


def evaluate_rows(model, rows) -> Dict[str, Any]:
    """A run's held-out metrics on typed input rows (as ingest accepts them, label
    included), computed from the predictions ``sparkdl score`` writes for them: the run's
    own preprocessing, then its network, at its decision threshold. Gives two runs
    trained on different datasets a comparison on the same rows."""
    from pyspark.sql import functions as F

    from sparkdl.core.rundir import SPEC
    from sparkdl.preparation.features import label_column

    manifest, schema = model.manifest, model.config.schema
    layout = StatsLayout(manifest.task, len(manifest.classes))
    outputs = PREDICTION if layout.task == "regression" else PROBABILITIES
    label = "_sparkdl_gate_label"
    preds = model.predict_rows(rows.withColumn(label, label_column(schema)), [label])
    frame = preds.select(outputs, F.col(label).alias(LABEL))
    unknown = frame.where(F.col(LABEL).isNull()).count() if layout.task != "regression" else 0
    if unknown:
        raise BadDataError(f"{unknown} rows hold a {schema.label!r} that run {model.run.name} does not know "
                         f"(its classes: {manifest.classes}): the runs cannot be compared on these rows")
    spec = json.loads((model.run.model / SPEC).read_text())
    return _held_out_metrics(split_statistics(frame, outputs, layout), layout, spec.get("threshold", 0.5))
