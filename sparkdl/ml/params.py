"""The estimators' Params: Spark ML's names for the DataFrame's columns, and for the job's
settings the keys they set, with the YAML job's defaults (read from the config classes,
so there is one default for each setting). ``settings`` reaches every other key."""
from __future__ import annotations

from typing import Any, Dict, Optional

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasLabelCol,
    HasPredictionCol,
    HasProbabilityCol,
    HasRawPredictionCol,
    HasValidationIndicatorCol,
)

from sparkdl.core.config import MaterializeConfig, ModelConfig, OptimizerConfig, TrainConfig
from sparkdl.core.errors import ParamError


def _settings(value: Any) -> Dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"settings is a dict of config keys to values, like {{'train.loader.shuffle_buffer': 5000}}, "
                        f"not {value!r}")
    return dict(value)


#: Params that set one config key: (name, config key, doc, converter, default).
SETTINGS = [
    ("hiddenLayers", "model.hidden", "widths of the MLP's hidden layers", TypeConverters.toListInt,
     list(ModelConfig().hidden)),
    ("dropout", "model.dropout", "dropout after each hidden layer, in [0, 1)", TypeConverters.toFloat,
     ModelConfig().dropout),
    ("epochs", "train.epochs", "passes over the training rows", TypeConverters.toInt, TrainConfig().epochs),
    ("batchSize", "train.batch_size", "rows per step on each rank", TypeConverters.toInt, TrainConfig().batch_size),
    ("learningRate", "train.optimizer.lr", "the optimizer's learning rate (scaled with the ranks: "
     "train.optimizer.lr_scaling)", TypeConverters.toFloat, OptimizerConfig().lr),
    ("weightDecay", "train.optimizer.weight_decay", "the optimizer's weight decay", TypeConverters.toFloat,
     OptimizerConfig().weight_decay),
    ("optimizer", "train.optimizer.name", "adam, adamw or sgd", TypeConverters.toString, OptimizerConfig().name),
    ("numWorkers", "train.ranks", "ranks of the barrier stage, one task slot each; unset: every slot",
     TypeConverters.toInt, None),
    ("backend", "train.backend", "horovod (ring-allreduce) or torch (torch.distributed)", TypeConverters.toString,
     TrainConfig().backend),
    ("seed", "train.seed", "the seed of the weights' initialization and the shuffle", TypeConverters.toInt,
     TrainConfig().seed),
    ("validationFraction", "materialize.validation_fraction", "the share of rows held out to validate each "
     "epoch when validationIndicatorCol is unset", TypeConverters.toFloat, MaterializeConfig().validation_fraction),
]
PARAM_OF_KEY = {key: name for name, key, *_ in SETTINGS}


class DeepParams(HasLabelCol, HasValidationIndicatorCol, HasPredictionCol):
    """Params shared by the estimators: columns, the job's settings, where the run goes."""

    featuresCols = Param(Params._dummy(), "featuresCols", "the feature columns; empty: every column but the label "
                         "and the validation indicator", TypeConverters.toListString)
    categoricalCols = Param(Params._dummy(), "categoricalCols", "number columns to treat as categories (string "
                            "columns are categories already)", TypeConverters.toListString)
    embeddingCols = Param(Params._dummy(), "embeddingCols", "categorical columns learned as embeddings; the others "
                          "are one-hot encoded", TypeConverters.toListString)
    sparseCols = Param(Params._dummy(), "sparseCols", "vector columns kept sparse (HashingTF, CountVectorizer "
                       "output): their non-zero entries learned with a weighted embedding bag; other vector "
                       "columns are dense numbers", TypeConverters.toListString)
    lake = Param(Params._dummy(), "lake", "the lake directory the run is written to; unset: the session's "
                 "spark.sparkdl.lake", TypeConverters.toString)
    jobName = Param(Params._dummy(), "jobName", "the job's name: its runs and datasets are filed under it",
                    TypeConverters.toString)
    baseline = Param(Params._dummy(), "baseline", "also evaluate a Spark MLlib linear model on the held-out rows",
                     TypeConverters.toBoolean)
    settings = Param(Params._dummy(), "settings", "any other config keys, {'train.lr_schedule.kind': 'cosine'}",
                     _settings)
    imageShape = Param(Params._dummy(), "imageShape", "images (a binary column): [channels, height, width] to "
                       "decode them to; unset: the first image's", TypeConverters.toListInt)

    for _name, _key, _doc, _conv, _ in SETTINGS:
        locals()[_name] = Param(Params._dummy(), _name, f"{_doc} ({_key})", _conv)
    del _name, _key, _doc, _conv, _

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(featuresCols=[], categoricalCols=[], embeddingCols=[], sparseCols=[], baseline=False, settings={},
                         labelCol="label", predictionCol="prediction",
                         **{name: default for name, _, _, _, default in SETTINGS if default is not None})

    def lake_path(self, spark) -> str:
        """The lake: the ``lake`` Param, else the session's ``spark.sparkdl.lake``."""
        if self.isDefined(self.lake):
            return self.getOrDefault(self.lake)
        try:
            conf = spark.conf.get("spark.sparkdl.lake", None)
        except Exception:  # a Connect server that does not expose it
            conf = None
        if not conf:
            raise ParamError("lake", "where should the run go? Set the lake Param (estimator.setLake('/lake')) or "
                                     "the session's spark.conf spark.sparkdl.lake", type(self).__name__)
        return conf

    def config_values(self) -> Dict[str, Any]:
        """The config keys the Params set (their defaults included), then ``settings``."""
        values = {key: self.getOrDefault(name) for name, key, *_ in SETTINGS if self.isDefined(name)}
        return {**values, **self.getOrDefault(self.settings)}

    def param_of(self, key: str) -> Optional[str]:
        """The Param a failing config key came from: its own, or ``settings``."""
        if key in self.getOrDefault(self.settings):
            return "settings"
        return PARAM_OF_KEY.get(key)


class ClassifierOutputParams(HasProbabilityCol, HasRawPredictionCol):
    """A classifier's outputs in Spark ML's names: ``prediction`` a double (the class's
    value when the labels were numbers, else its index in ``classes``), ``probability``
    and ``rawPrediction`` vectors of every class's probability, and ``predictedLabel`` the
    class's text."""

    predictedLabelCol = Param(Params._dummy(), "predictedLabelCol", "the predicted class's text; empty: not added",
                              TypeConverters.toString)

    def __init__(self, *args):
        super().__init__(*args)
        self._setDefault(probabilityCol="probability", rawPredictionCol="rawPrediction",
                         predictedLabelCol="predictedLabel")


def with_accessors(cls: type) -> type:
    """Spark ML's ``setX``/``getX`` for each of ``cls``'s Params that lacks them."""
    for param in [v for v in vars_of(cls) if isinstance(v, Param)]:
        cap = param.name[0].upper() + param.name[1:]
        if not hasattr(cls, "set" + cap):
            setattr(cls, "set" + cap, lambda self, value, _n=param.name: self._set(**{_n: value}))
        if not hasattr(cls, "get" + cap):
            setattr(cls, "get" + cap, lambda self, _n=param.name: self.getOrDefault(_n))
    return cls


def vars_of(cls: type):
    """Every class attribute of ``cls`` and its bases."""
    return [v for klass in cls.__mro__ for v in vars(klass).values()]
