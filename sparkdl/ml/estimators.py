"""Spark ML estimators that train in one barrier stage: ``DeepClassifier().fit(df)``.

``fit`` reads the DataFrame's schema (:mod:`~sparkdl.ml.frames`), turns the Params into
the job's config, and runs the same job as ``sparkdl run`` on the DataFrame itself
(a temporary view the job reads as a table; images are staged as the image job's files):
ingest with quarantine, the Spark ML feature pipeline, the materialized dataset, the
barrier stage, the held-out evaluation, the commit to the lake and MLflow. It returns the run as a model that scores in Spark ML's
column names, and saves and loads. Each fit is a run in ``sparkdl runs list``.

Fits may run at once (``CrossValidator(parallelism=2)``, threads of a notebook): each
reserves its ranks' task slots, and one that finds them held waits, saying by whom.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any, Dict

from pyspark import keyword_only
from pyspark.ml import Estimator
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable

from sparkdl.core.config import JobConfig
from sparkdl.core.config.convert import build, set_value
from sparkdl.core.errors import ConfigError, ParamError
from sparkdl.core.lake import Lake
from sparkdl.ml.frames import FrameLayout, class_values, infer_layout
from sparkdl.ml.images import FILES, LABELS, image_config, stage
from sparkdl.ml.models import DeepClassificationModel, DeepModel, DeepRegressionModel
from sparkdl.ml.params import ClassifierOutputParams, DeepParams, with_accessors

log = logging.getLogger(__name__)

#: An image job's network when ``hiddenLayers`` is not set: conv channels, then the dense head.
CNN_HIDDEN = (32, 64, 128)


class _DeepEstimator(Estimator, DeepParams, DefaultParamsReadable, DefaultParamsWritable):
    """What both estimators share; each names its task, its model class and its job's name."""

    task = "classification"
    model_class: type = DeepModel
    default_name = "deep"

    def __init__(self):
        super().__init__()
        self._setDefault(jobName=self.default_name)

    @keyword_only
    def setParams(self, **kwargs):
        """Set any Params by name."""
        return self._set(**kwargs)

    def job_config(self, layout: FrameLayout, source: str, classes) -> JobConfig:
        """The job ``fit`` runs: the layout's schema, the Params' settings, and as its data
        ``source``: a temporary view, or for images the folder they were staged in."""
        owner = type(self).__name__
        embedded = self.getOrDefault(self.embeddingCols)
        strays = [c for c in embedded if c not in layout.categorical]
        if strays:
            raise ParamError("embeddingCols", f"{strays} are not categorical features {layout.categorical}", owner)
        raw: Dict[str, Any] = {
            "name": self.getOrDefault(self.jobName),
            "data": {"format": "table", "train": source},
            "schema": {"columns": layout.schema_columns(),
                       "label": layout.label, "task": self.task, "classes": list(classes),
                       "numeric": layout.numeric, "categorical": layout.categorical,
                       "vectors": list(layout.vectors), "sparse": list(layout.sparse), "bags": list(layout.bags),
                       "validation_indicator": layout.validation_indicator},
            "features": {"columns": {c: {"encoding": "embedding"} for c in embedded}},
        }
        if layout.image:  # staged files and their labels table, decoded by the image job; a CNN
            image = image_config(layout.image_shape, str(Path(source).parent / LABELS))
            raw["data"] = {"format": "images", "train": source, "image": dataclasses.asdict(image)}
            raw["model"] = {"kind": "cnn", "image_shape": layout.image_shape, "hidden": list(CNN_HIDDEN)}
        values = self.config_values()
        if layout.image and not self.isSet(self.hiddenLayers):
            values.pop("model.hidden", None)  # the MLP's default widths are not a CNN's
        ranks = values.get("train.ranks")
        if ranks and "materialize.max_ranks" not in values:
            raw["materialize"] = {"max_ranks": max(4, int(ranks))}
        try:
            for key, value in values.items():
                set_value(raw, key, value, JobConfig)
            return build(JobConfig, raw, "")
        except ConfigError as e:
            param = self.param_of(e.path)
            if param is None:
                raise
            raise ParamError(param, str(e), owner) from None

    def _fit(self, dataset) -> DeepModel:
        from sparkdl.workflow import run_job

        owner = type(self).__name__
        spark = dataset.sparkSession
        lake = self.lake_path(spark)
        indicator = self.getOrDefault(self.validationIndicatorCol) if self.isDefined(
            self.validationIndicatorCol) else None
        label = self.getOrDefault(self.labelCol)
        shape = self.getOrDefault(self.imageShape) if self.isDefined(self.imageShape) else None
        layout = infer_layout(dataset, label, self.getOrDefault(self.featuresCols),
                              self.getOrDefault(self.categoricalCols), indicator, self.task, owner, shape,
                              self.getOrDefault(self.sparseCols))
        fit_id = uuid.uuid4().hex[:12]
        staged = Lake(lake).root / "inputs" / self.getOrDefault(self.jobName) / fit_id
        source = str(staged / FILES) if layout.image else f"sparkdl_fit_{fit_id}"
        # the Params' checks need no Spark job: a bad value fails before the class list is read
        self.job_config(layout, source, ["0", "1"] if self.task == "classification" else [])
        classes = class_values(dataset, label, owner) if self.task == "classification" else []
        cfg = self.job_config(layout, source, classes)
        if layout.image:
            stage(dataset, layout.image, label, staged)
        else:
            layout.project(dataset).createOrReplaceTempView(source)
        try:
            # each fit reads a view of its own: a run it left could never be continued, so none is kept
            result = run_job(cfg, lake, spark, baseline=self.getOrDefault(self.baseline), fresh=True, keep=())
        finally:
            if layout.image:  # the run has them as its dataset now
                shutil.rmtree(staged, ignore_errors=True)
            else:
                spark.catalog.dropTempView(source)
        model = self.model_class(result.path, layout)
        self._copyValues(model)
        return model


@with_accessors
class DeepClassifier(_DeepEstimator, ClassifierOutputParams):
    """A network that predicts a class, trained in one barrier stage (see the module
    docstring); ``fit`` returns a :class:`~sparkdl.ml.models.DeepClassificationModel`."""

    task = "classification"
    model_class = DeepClassificationModel
    default_name = "deep-classifier"

    @keyword_only
    def __init__(self, **kwargs):
        super().__init__()
        self._set(**self._input_kwargs)


@with_accessors
class DeepRegressor(_DeepEstimator):
    """A network that predicts a number, trained in one barrier stage (see the module
    docstring); ``fit`` returns a :class:`~sparkdl.ml.models.DeepRegressionModel`."""

    task = "regression"
    model_class = DeepRegressionModel
    default_name = "deep-regressor"

    @keyword_only
    def __init__(self, **kwargs):
        super().__init__()
        self._set(**self._input_kwargs)
