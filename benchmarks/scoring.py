"""Scoring a lake table: sparkdl's Transformer (``sparkdl.load_run(run).transform(df)``)
against what a user writes without sparkdl for the same job.

Both read the same Parquet rows (raw columns, typed as stored), apply the run's own
fitted ``PipelineModel`` and the same network on the executors, and write Parquet with
the class, its probability and every class's probability. The baseline is Spark's
``predict_batch_udf`` over ``vector_to_array(features)``, one torch thread per task as
sparkdl uses. sparkdl also validates every row (a value of the wrong type, a NaN or an
infinity is kept with its reason, never scored) and adds ``score_error``: the ratio is
what that costs, or saves.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict

from benchmarks.measure import REPO, ratio, timed

log = logging.getLogger(__name__)
BATCH = 8192


def _baseline(run_path: str, pipeline, classes, width: int, df):
    """The same scoring as a user writes it from Spark's own parts (``pipeline``: the run's
    PipelineModel, loaded once as a user would)."""
    from pyspark.ml.functions import predict_batch_udf, vector_to_array
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    def make_predict_fn():
        import torch

        from sparkdl.core.models import load_model

        torch.set_num_threads(1)
        model, _ = load_model(os.path.join(run_path, "model"))

        def predict(x):
            with torch.inference_mode():
                return torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()

        return predict

    network = predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()), batch_size=BATCH,
                                input_tensor_shapes=[[width]])
    p = F.col("probabilities")
    best = F.array_position(p, F.array_max(p)).cast("int")
    return (pipeline.transform(df)
            .withColumn("probabilities", network(vector_to_array(pipeline.stages[-1].getOutputCol(), "float32")))
            .select(*df.columns, F.element_at(F.array(*[F.lit(c) for c in classes]), best).alias("prediction"),
                    F.array_max(p).alias("probability"), p.alias("probabilities")))


def bench_scoring(spark, lake: str, rows: int, train_rows: int = 100_000) -> Dict[str, Any]:
    from pyspark.ml import PipelineModel
    from pyspark.sql import functions as F

    import sparkdl
    from sparkdl.core.config.loading import load_config
    from sparkdl.preparation.synthetic import synthetic_frame
    from sparkdl.workflow import run_job

    cfg = load_config(REPO / "conf" / "synthetic.yaml").with_values(
        {"data.options.rows": str(train_rows), "train.epochs": 1, "tracking.mlflow": "off"})
    result = run_job(cfg, os.path.join(lake, "scoring-train"), spark=spark, baseline=False)
    source = os.path.join(lake, f"scoring-input-{rows}")
    (synthetic_frame(spark, rows, seed=11).drop(cfg.schema.label).withColumn("row_id", F.monotonically_increasing_id())
     .write.mode("overwrite").parquet(source))
    model = sparkdl.load_run(result.path)  # both load the PipelineModel once (in their warm-up run)
    pipeline = PipelineModel.load(os.path.join(str(result.path), "preprocessing"))
    classes = list(cfg.schema.classes)

    def ours(df):
        return model.transform(df)

    def theirs(df):
        return _baseline(str(result.path), pipeline, classes, model.manifest.feature_width, df)

    def write(build, out: str, limit: int = 0) -> int:
        df = spark.read.parquet(source)
        build(df.limit(limit) if limit else df).write.mode("overwrite").parquet(out)
        return limit or rows

    for name, build in (("ours", ours), ("theirs", theirs)):  # both pay the executors' warm-up before timing
        write(build, os.path.join(lake, f"scoring-warm-{name}"), limit=50_000)
    timings = {}
    for name, build in (("theirs", theirs), ("ours", ours), ("theirs", theirs), ("ours", ours)):
        t = timed(lambda: write(build, os.path.join(lake, f"scoring-out-{name}")))
        if name not in timings or t["rows_per_sec"] > timings[name]["rows_per_sec"]:
            timings[name] = t
    a = spark.read.parquet(os.path.join(lake, "scoring-out-ours"))
    b = spark.read.parquet(os.path.join(lake, "scoring-out-theirs"))
    counts = (a.count(), b.count())
    same = (a.select("row_id", "prediction")
            .join(b.select("row_id", F.col("prediction").alias("theirs")), on="row_id")
            .where("prediction = theirs").count())
    if counts != (rows, rows):
        raise RuntimeError(f"scoring bench: {counts} rows written, not {rows} each")
    return {"rows": rows, "sparkdl_transformer": timings["ours"], "predict_batch_udf": timings["theirs"],
            "ratio": ratio(timings["ours"]["rows_per_sec"], timings["theirs"]["rows_per_sec"]),
            "same_prediction_fraction": round(same / rows, 6), "batch_rows": BATCH,
            "note": "best of two alternating runs each, after both ran once on 50,000 rows"}
