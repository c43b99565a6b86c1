"""The job's configuration: typed, frozen dataclasses, one module per section, validated
as they are built; :mod:`~sparkdl.core.config.loading` turns YAML into them.

Every mistake (an unknown key, a wrong type, a missing required value, a value out of
range) is a :class:`~sparkdl.core.errors.ConfigError` naming the key path, raised before
Spark starts.
"""
from sparkdl.core.config.data import ColumnSpec, DataConfig, ImageConfig, SchemaConfig
from sparkdl.core.config.features import ColumnEncoding, EmbeddingConfig, FeaturesConfig, MaterializeConfig
from sparkdl.core.config.job import JobConfig
from sparkdl.core.config.model import ModelConfig
from sparkdl.core.config.promotion import DriftConfig, MetricGate, PromoteConfig
from sparkdl.core.config.spark import SparkConfig
from sparkdl.core.config.tracking import ProgressConfig, TrackingConfig
from sparkdl.core.config.train import (
    AllreduceConfig,
    AugmentConfig,
    DdpConfig,
    EarlyStoppingConfig,
    FailureConfig,
    FineTuneConfig,
    HorovodConfig,
    LaunchConfig,
    LoaderConfig,
    LrScheduleConfig,
    OptimizerConfig,
    TrainConfig,
)
from sparkdl.core.errors import ConfigError

__all__ = [
    "AllreduceConfig", "AugmentConfig", "ColumnEncoding", "ColumnSpec", "ConfigError", "DataConfig",
    "DdpConfig", "DriftConfig", "EarlyStoppingConfig", "EmbeddingConfig", "FailureConfig", "FeaturesConfig",
    "FineTuneConfig", "HorovodConfig", "ImageConfig", "JobConfig", "LaunchConfig", "LoaderConfig",
    "LrScheduleConfig", "MaterializeConfig", "MetricGate", "ModelConfig", "OptimizerConfig", "ProgressConfig", "PromoteConfig",
    "SchemaConfig", "SparkConfig", "TrackingConfig", "TrainConfig",
]
