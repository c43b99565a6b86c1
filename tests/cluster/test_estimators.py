"""The Spark ML estimators on real executors: fitted on DataFrames a user read with
spark.read.csv (no YAML, no files of theirs), inside a Pipeline after a SQLTransformer,
cross-validated with concurrent fits, saved and loaded; a regressor on a vector column
with a validation indicator; a classifier on a column of image bytes."""
import json
from pathlib import Path

import pytest

from sparkdl.core.lake import Lake
from sparkdl.preparation.materialize import Manifest

DATA = Path(__file__).resolve().parents[2] / "sparkdl" / "datasets"


def _runs(lake: Path):
    """Each committed run's metrics."""
    return [json.loads((p / "metrics.json").read_text()) for p in Lake(str(lake)).list_runs()]


def test_a_cross_validated_pipeline_fits_concurrently_scores_and_round_trips(spark_cluster, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import SQLTransformer
    from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

    from sparkdl.ml import DeepClassificationModel, DeepClassifier

    read = lambda name: spark_cluster.read.csv(str(DATA / "adult" / name), header=True, inferSchema=True)  # noqa: E731
    train, test = read("adult.data.csv.gz"), read("adult.test.csv.gz")
    lake = tmp_path / "lake"
    label = SQLTransformer(statement="SELECT *, CAST(class = '>50K' AS DOUBLE) AS label FROM __THIS__")
    deep = DeepClassifier(featuresCols=[c for c in train.columns if c != "class"], epochs=4, numWorkers=1,
                          lake=str(lake), settings={"tracking.mlflow": "off"})  # the regressor's test has MLflow
    grid = ParamGridBuilder().addGrid(deep.learningRate, [0.001, 0.003]).build()
    cv = CrossValidator(estimator=Pipeline(stages=[label, deep]), estimatorParamMaps=grid, numFolds=2,
                        evaluator=BinaryClassificationEvaluator(), parallelism=2, seed=7)
    fitted = cv.fit(train)

    assert len(fitted.avgMetrics) == 2 and min(fitted.avgMetrics) > 0.88  # areaUnderROC per learning rate
    runs = _runs(lake)
    assert len(runs) == 5  # 2 folds x 2 values, then the refit on every row
    assert all(r["held_out"]["split"] == "validation" for r in runs)
    # parallelism=2 on two slots: two barrier stages ran at the same time
    stages = sorted((a["started_unix"], a["started_unix"] + a["seconds"]) for r in runs for a in r["attempts"])
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(stages, stages[1:])), stages

    best = fitted.bestModel
    deep_model = best.stages[-1]
    assert isinstance(deep_model, DeepClassificationModel) and deep_model.classes == ["0.0", "1.0"]
    scored = best.transform(test)
    assert {"prediction", "probability", "rawPrediction", "predictedLabel", "score_error"} <= set(scored.columns)
    accuracy = scored.selectExpr("avg(cast(prediction = label as double))").first()[0]
    assert accuracy >= 0.85

    best.save(str(tmp_path / "pipeline"))
    loaded = PipelineModel.load(str(tmp_path / "pipeline"))
    assert isinstance(loaded.stages[-1], DeepClassificationModel) and loaded.stages[-1].uid == deep_model.uid
    columns = ["prediction", "probability"]
    assert loaded.transform(test).select(columns).collect() == scored.select(columns).collect()
    # the saved copy is whole on its own: the lake can go
    assert loaded.stages[-1].run.path.is_relative_to(tmp_path / "pipeline")


def test_a_regressor_on_a_vector_column_with_a_validation_indicator(spark_cluster, tmp_path):
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql import functions as F

    from sparkdl.ml import DeepRegressionModel, DeepRegressor

    raw = spark_cluster.read.csv(str(DATA / "california-housing" / "housing.csv.gz"), header=True, inferSchema=True)
    numbers = ["longitude", "latitude", "housing_median_age", "total_rooms", "population", "households",
               "median_income"]
    rows = (VectorAssembler(inputCols=numbers, outputCol="numbers").transform(raw)
            .withColumn("id", F.monotonically_increasing_id())
            .withColumn("is_val", F.when(F.col("id") % 500 == 0, F.lit(None).cast("boolean"))
                        .otherwise(F.rand(3) < 0.2))
            .select("id", "numbers", "ocean_proximity", "is_val", "median_house_value"))
    unmarked = rows.where(F.col("is_val").isNull()).count()
    marked = rows.where(F.col("is_val")).count()
    est = DeepRegressor(labelCol="median_house_value", featuresCols=["numbers", "ocean_proximity"],
                        validationIndicatorCol="is_val", epochs=4, numWorkers=2, lake=str(tmp_path / "lake"),
                        settings={"data.max_bad_fraction": 0.01})
    model = est.fit(rows)

    assert model.run_id in [p.name for p in Lake(str(tmp_path / "lake")).list_runs()]  # a run like any other
    logged = json.loads((model.run.path / "mlflow.json").read_text())  # and in the lake's MLflow store
    assert logged["tracking_uri"].endswith("/lake/mlflow/mlflow.db") and logged["model_uri"]
    manifest = Manifest.load(model.run.manifest)
    assert manifest.splits["validation"] == marked  # the indicator chose them, not the seeded hash
    assert manifest.rows["quarantined"] == unmarked > 0  # a missing indicator is a bad row, counted
    assert manifest.quarantine["train"]["reasons"] == {"validation indicator 'is_val' is missing "
                                                       "(true: a validation row, false: a training row)": unmarked}
    assert manifest.feature_names[-len(numbers):] == [f"numbers[{i}]" for i in range(len(numbers))]

    scored = model.transform(rows.drop("median_house_value", "is_val"))
    assert scored.columns == ["id", "numbers", "ocean_proximity", "score_error", "prediction"]
    truth = rows.select("id", "median_house_value")
    error = F.col("prediction") - F.col("median_house_value")
    rmse, std = scored.join(truth, "id").select(F.sqrt(F.avg(error ** 2)), F.stddev_pop("median_house_value")).first()
    assert rmse < 0.75 * std  # well ahead of predicting the mean

    model.write().save(str(tmp_path / "model"))
    with pytest.raises(Exception, match="already exists"):
        model.write().save(str(tmp_path / "model"))
    model.write().overwrite().save(str(tmp_path / "model"))
    loaded = DeepRegressionModel.load(str(tmp_path / "model"))
    key = scored.orderBy("id").select("prediction").collect()
    assert loaded.transform(rows).orderBy("id").select("prediction").collect() == key


def test_a_classifier_on_a_column_of_image_bytes(spark_cluster, tmp_path):
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image
    from pyspark.sql import functions as F

    from sparkdl.ml import DeepClassificationModel, DeepClassifier

    data = np.load(DATA / "mnist-10k" / "mnist-10k.npz")

    def png(i: int) -> bytes:
        out = io.BytesIO()
        Image.fromarray(data["pixels"][i]).save(out, format="PNG")
        return out.getvalue()

    # a table of image bytes, as a user's would be (written with pyarrow: createDataFrame from a
    # Python list would start a worker daemon of its own, which test_worker_daemons counts)
    ids = list(range(2000)) + [-1, -2]
    images = [png(i) for i in range(2000)] + [b"not an image", None]
    digits = [int(d) for d in data["labels"][:2000]] + [3, 4]
    pq.write_table(pa.table({"id": pa.array(ids, pa.int32()), "image": pa.array(images, pa.binary()),
                             "digit": pa.array(digits, pa.int32())}), tmp_path / "images.parquet")
    df = spark_cluster.read.parquet(str(tmp_path / "images.parquet"))
    train, test = df.where("id < 1700"), df.where("id >= 1700 OR id < 0")
    model = DeepClassifier(featuresCols=["image"], labelCol="digit", epochs=10, numWorkers=2,
                           lake=str(tmp_path / "lake"), settings={"tracking.mlflow": "off"}).fit(train)

    manifest = Manifest.load(model.run.manifest)
    assert manifest.image["shape"] == [1, 28, 28] and model.classes == [str(d) for d in range(10)]
    assert manifest.rows["quarantined"] == 2  # the bytes that are no image, and the row without any
    assert not list((tmp_path / "lake" / "inputs").glob("*/*/files"))  # the staged files went with the fit
    scored = model.transform(test)
    accuracy = scored.where("score_error IS NULL").selectExpr("avg(cast(prediction = digit as double))").first()[0]
    assert accuracy > 0.85
    bad = {r["id"]: r["score_error"] for r in scored.where(F.col("id") < 0).collect()}
    assert bad[-1].startswith("image: is not an image file") and bad[-2] == "image: empty or missing image bytes"
    model.save(str(tmp_path / "model"))
    again = DeepClassificationModel.load(str(tmp_path / "model")).transform(test)
    assert again.orderBy("id").select("prediction").collect() == scored.orderBy("id").select("prediction").collect()
