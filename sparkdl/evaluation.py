"""Held-out evaluation of a trained network, and a Spark MLlib baseline beside it."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from sparkdl.features import FEATURES, LABEL
from sparkdl.inference import PREDICTION, PROBABILITIES, predict_frame
from sparkdl.stages import StageClock

log = logging.getLogger(__name__)


def _binary_auc(df, score_col: str) -> float:
    from pyspark.ml.evaluation import BinaryClassificationEvaluator

    return float(BinaryClassificationEvaluator(rawPredictionCol=score_col, labelCol=LABEL,
                                               metricName="areaUnderROC").evaluate(df))


def evaluate_network(spark, split_path: str, model_dir: str, classes: List[str], width: int) -> Dict[str, float]:
    """Accuracy (and ROC AUC for two classes) of the network on a materialized split."""
    from pyspark.sql import functions as F

    t0 = time.monotonic()
    df = spark.read.parquet(split_path)
    preds = predict_frame(df, model_dir, classes, width, [LABEL]).cache()
    label_name = F.element_at(F.array(*[F.lit(c) for c in classes]), F.col(LABEL) + 1)
    row = preds.agg(F.count(F.lit(1)).alias("n"), F.avg((F.col(PREDICTION) == label_name).cast("double")).alias("acc")
                    ).collect()[0]
    out = {"accuracy": float(row["acc"]), "rows": int(row["n"])}
    if len(classes) == 2:
        out["auc"] = _binary_auc(preds.withColumn(LABEL, F.col(LABEL).cast("double"))
                                 .withColumn("p1", F.col(PROBABILITIES)[1]), "p1")
    preds.unpersist()
    log.info("stage evaluate: network %s in %.1fs", out, time.monotonic() - t0)
    return out


def logistic_regression_baseline(spark, train_path: str, test_path: str, classes: List[str]) -> Dict[str, float]:
    """Spark MLlib LogisticRegression on the same features: what the network must beat."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    t0 = time.monotonic()

    def load(path):
        return spark.read.parquet(path).select(array_to_vector(FEATURES).alias("vec"),
                                               F.col(LABEL).cast("double").alias(LABEL))

    model = LogisticRegression(featuresCol="vec", labelCol=LABEL, maxIter=100, regParam=1e-4).fit(load(train_path))
    preds = model.transform(load(test_path)).cache()
    acc = preds.agg(F.avg((F.col("prediction") == F.col(LABEL)).cast("double"))).collect()[0][0]
    out = {"accuracy": float(acc)}
    if len(classes) == 2:
        from pyspark.ml.functions import vector_to_array

        out["auc"] = _binary_auc(preds.withColumn("p1", vector_to_array("probability")[1]), "p1")
    preds.unpersist()
    log.info("stage evaluate: logistic regression baseline %s in %.1fs", out, time.monotonic() - t0)
    return out


def evaluate_split(spark, manifest, model_dir: str, split: str, baseline: bool = True,
                   clock: Optional[StageClock] = None) -> Tuple[Dict[str, Any], Optional[Dict[str, float]]]:
    """The network in ``model_dir`` on ``split`` of ``manifest``'s dataset (its metrics name
    the split), and Spark MLlib's logistic regression trained on the same dataset's train
    split beside it (None without ``baseline``). ``clock`` gets the evaluate and baseline
    stage times."""
    clock = clock or StageClock()
    with clock.stage("evaluate"):
        network = {"split": split, **evaluate_network(spark, manifest.paths[split], model_dir, manifest.classes,
                                                      manifest.feature_width)}
    if not baseline:
        return network, None
    with clock.stage("baseline"):
        return network, logistic_regression_baseline(spark, manifest.paths["train"], manifest.paths[split],
                                                     manifest.classes)


def evaluate_run(spark, run_dir: "str | Path", split: str = "test",
                 baseline: bool = True) -> Dict[str, Dict[str, float]]:
    """A committed run's network on a split of the dataset it trained on (``test`` when the
    job had one), with Spark MLlib's logistic regression on the same features beside it."""
    from sparkdl.lake import require_run
    from sparkdl.materialize import Manifest
    from sparkdl.rundir import RunDir

    run = RunDir(require_run(run_dir))
    manifest = Manifest.load(run.manifest)
    if split not in manifest.paths:
        raise ValueError(f"split {split!r} is not in run {run.name}'s dataset (it has "
                         f"{sorted(k for k in manifest.splits)}): pick one of those")
    network, regression = evaluate_split(spark, manifest, str(run.model), split, baseline)
    return {"network": network, **({"logistic_regression": regression} if regression else {})}
