"""The estimators refuse bad Params and unusable columns with an error naming the Param
and the fix, before any Spark job (a one-class label, which needs one, excepted)."""
import datetime

import pytest

from sparkdl.core.errors import ParamError
from sparkdl.ml import DeepClassifier, DeepRegressor


@pytest.fixture(scope="module")
def frame(spark_local):
    rows = [(float(i), f"c{i % 3}", i % 2 == 0, "yes" if i % 4 else "no", datetime.datetime(2026, 1, 1), i % 5,
             b"\x89PNG") for i in range(40)]
    return spark_local.createDataFrame(rows, "x double, cat string, flag boolean, y string, at timestamp, k int, "
                                             "img binary")


def _jobs(spark):
    return set(spark.sparkContext.statusTracker().getJobIdsForGroup())


@pytest.mark.parametrize("estimator, param, words", [
    (DeepClassifier(labelCol="income"), "labelCol", "no column 'income'"),
    (DeepRegressor(labelCol="y"), "labelCol", "a regression label is a number: cast it"),
    (DeepClassifier(labelCol="y", featuresCols=["x", "at"]), "featuresCols", "column 'at' is timestamp"),
    (DeepClassifier(labelCol="y", featuresCols=["x", "nope"]), "featuresCols", "no column(s) ['nope']"),
    (DeepClassifier(labelCol="y", validationIndicatorCol="x", featuresCols=["cat"]), "validationIndicatorCol",
     "must be boolean"),
    (DeepClassifier(labelCol="y", featuresCols=["x"], categoricalCols=["cat"]), "categoricalCols",
     "not among the features"),
    (DeepClassifier(labelCol="y", featuresCols=["x", "cat"], embeddingCols=["x"]), "embeddingCols",
     "not categorical features ['cat']"),
    (DeepClassifier(labelCol="y", featuresCols=["x", "img"]), "featuresCols", "set featuresCols=['img']"),
    (DeepRegressor(labelCol="x", featuresCols=["img"]), "featuresCols", "sparkdl classifies images"),
    (DeepClassifier(labelCol="y", featuresCols=["img"], imageShape=[2, 28, 28]), "imageShape", "1 or 3 channels"),
    (DeepClassifier(labelCol="y", featuresCols=["x"], dropout=1.5), "dropout", "model.dropout"),
    (DeepClassifier(labelCol="y", featuresCols=["x"], numWorkers=0), "numWorkers", "train.ranks"),
    (DeepRegressor(labelCol="x", featuresCols=["k"], validationFraction=1.0), "validationFraction",
     "materialize.validation_fraction"),
    (DeepClassifier(labelCol="y", featuresCols=["x"], settings={"train.nope": 1}), "settings", "train.nope"),
])
def test_a_bad_param_is_named_before_any_spark_job(spark_local, frame, tmp_path, estimator, param, words):
    before = _jobs(spark_local)
    with pytest.raises(ParamError) as err:
        estimator.setLake(str(tmp_path / "lake")).fit(frame)
    assert err.value.path == param and f"Param '{param}'" in str(err.value)
    assert words in str(err.value)
    assert _jobs(spark_local) == before
    assert not (tmp_path / "lake").exists()


def test_without_a_lake_the_error_says_where_to_set_one(spark_local, frame):
    with pytest.raises(ParamError, match=r"setLake\('/lake'\).*spark.sparkdl.lake"):
        DeepClassifier(labelCol="y", featuresCols=["x"]).fit(frame)


def test_a_label_with_one_class_is_refused(spark_local, frame, tmp_path):
    with pytest.raises(ParamError, match=r"Param 'labelCol'.*1 distinct value\(s\) \['c0'\].*at least two"):
        DeepClassifier(labelCol="cat", featuresCols=["x"], lake=str(tmp_path)).fit(frame.where("cat = 'c0'"))


def test_params_have_spark_ml_accessors_and_the_yaml_jobs_defaults():
    est = DeepClassifier(labelCol="y")
    assert (est.getEpochs(), est.getBatchSize(), est.getHiddenLayers(), est.getLearningRate()) == (10, 128,
                                                                                                   [256, 128], 0.001)
    assert est.setEpochs(3).getEpochs() == 3 and not est.isDefined(est.numWorkers)
    copy = est.copy({est.learningRate: 0.01})
    assert copy.getLearningRate() == 0.01 and est.getLearningRate() == 0.001
    with pytest.raises(TypeError, match='param "settings"'):
        est.setSettings(["train.epochs"])


def test_an_unfitted_estimator_saves_and_loads_with_its_params(spark_local, tmp_path):
    est = DeepRegressor(labelCol="x", epochs=3, hiddenLayers=[32], settings={"train.lr_schedule.kind": "cosine"})
    est.save(str(tmp_path / "est"))
    back = DeepRegressor.load(str(tmp_path / "est"))
    assert (back.uid, back.getEpochs(), back.getHiddenLayers(), back.getSettings()) == (
        est.uid, 3, [32], {"train.lr_schedule.kind": "cosine"})


def test_scoring_gives_back_the_columns_it_cast_for_the_network(spark_local):
    from decimal import Decimal

    from sparkdl.ml.frames import FrameLayout

    df = spark_local.createDataFrame([(1, Decimal("2.50"), "a")], "zip int, amount decimal(10,2), other string")
    layout = FrameLayout({"zip": "string", "amount": "double", "y": "string"}, ["amount"], ["zip"], "y")
    projected = layout.project(df, with_label=False)
    assert dict(projected.dtypes)["zip"] == "string" and dict(projected.dtypes)["amount"] == "double"
    back = FrameLayout.restore(projected, df.columns)
    assert back.dtypes == df.dtypes and back.collect() == df.collect()
