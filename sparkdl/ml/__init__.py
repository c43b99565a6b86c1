"""Spark ML estimators: ``DeepClassifier`` and ``DeepRegressor`` fit on a DataFrame in one
barrier stage and return models that transform, save and load, in a ``Pipeline``, a
``CrossValidator`` or alone::

    from sparkdl.ml import DeepClassifier

    model = DeepClassifier(labelCol="income", epochs=5, lake="/lake").fit(train_df)
    model.transform(test_df).select("prediction", "probability")
"""
from sparkdl.ml.estimators import DeepClassifier, DeepRegressor
from sparkdl.ml.models import DeepClassificationModel, DeepModel, DeepRegressionModel

__all__ = ["DeepClassifier", "DeepRegressor", "DeepClassificationModel", "DeepRegressionModel", "DeepModel"]
