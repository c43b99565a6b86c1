"""The whole job: every section together, with the rules that join them."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from sparkdl.core.config.checks import check
from sparkdl.core.config.convert import build, set_value
from sparkdl.core.config.data import DataConfig, SchemaConfig
from sparkdl.core.config.features import FeaturesConfig, MaterializeConfig
from sparkdl.core.config.model import ModelConfig
from sparkdl.core.config.promotion import DriftConfig, PromoteConfig
from sparkdl.core.config.spark import SparkConfig
from sparkdl.core.config.tracking import ProgressConfig, TrackingConfig
from sparkdl.core.config.train import TrainConfig
from sparkdl.core.task_metrics import REGRESSION, held_out_metric_names, metric_direction, metric_names
from sparkdl.core.types import MANY


@dataclass(frozen=True)
class JobConfig:
    """A whole ETL-plus-train job."""

    #: Where the rows come from.
    data: DataConfig
    #: The rows' declared columns and their roles.
    schema: SchemaConfig
    #: The job's name: its datasets and runs in the lake are filed under it.
    name: str = "job"
    spark: SparkConfig = field(default_factory=SparkConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    materialize: MaterializeConfig = field(default_factory=MaterializeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    progress: ProgressConfig = field(default_factory=ProgressConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    #: The promotion gate a committed run passes to become the champion of a model.
    promote: PromoteConfig = field(default_factory=PromoteConfig)
    #: The input's drift from the rows a model learned from, checked before training.
    drift: DriftConfig = field(default_factory=DriftConfig)

    def __post_init__(self):
        check(bool(re.match(r"^[A-Za-z0-9_.\-]+$", self.name)), "name",
               "use letters, digits, '_', '-', '.' (it names run directories)")
        self._check_inputs()
        self._check_features()
        self._check_task()
        self._check_promotion()

    def _check_inputs(self) -> None:
        """Features come from declared columns, or for images from the files themselves."""
        schema = self.schema
        if self.data.format != "images":
            check(bool(schema.features), "schema",
                   "declare at least one feature in schema.numeric, categorical, vectors, sparse or bags")
            many = [c.name for c in schema.columns if c.type in MANY]
            if self.data.format == "csv":
                check(not many, "schema.columns", f"columns {many} hold many values, which a CSV field cannot: "
                                                  "read them from parquet, json or a table")
            vectors = [c.name for c in schema.columns if c.type == "vector"]
            check(self.data.format != "json" or not vectors, "schema.columns",
                  f"columns {vectors} are Spark ML vectors, which JSON cannot hold: declare them array<double>, "
                  "or read them from parquet or a table")
            check(not self.train.augment.active, "train.augment",
                   "augmentation flips and crops images: it needs data.format: images")
            return
        strings = [c.name for c in schema.columns if c.type == "string"]
        check(len(schema.columns) == 2 and len(strings) == 2 and schema.label in strings, "schema.columns",
               "an image job declares two string columns: the file's path and the label (its folder's name)")
        check(not schema.features, "schema",
               "an image job's features are its pixels: leave schema.numeric, categorical, vectors, sparse and "
               "bags empty")
        check(schema.task == "classification", "schema.task", "image jobs classify (the label is a folder name)")
        if self.model.kind == "cnn":
            check(tuple(self.model.image_shape) == self.data.image.shape, "model.image_shape",
                   f"{list(self.model.image_shape)} does not match data.image "
                   f"({list(self.data.image.shape)}: channels, height, width)")

    @property
    def path_column(self) -> Optional[str]:
        """An image job's path column."""
        return self.schema.image_path_column if self.data.format == "images" else None

    def _check_features(self) -> None:
        embeddable = list(self.schema.categorical) + list(self.schema.bags) + list(self.schema.sparse)
        for name, own in self.features.columns.items():
            check(name in embeddable, f"features.columns.{name}",
                   f"'{name}' is not in schema.categorical, bags or sparse {embeddable}")
            many = name in self.schema.bags or name in self.schema.sparse
            check(not many or own.encoding != "onehot", f"features.columns.{name}.encoding",
                  f"'{name}' holds many values, learned as an embedding bag: it cannot be one-hot")
            check(name not in self.schema.sparse or own.hash_buckets is None, f"features.columns.{name}.hash_buckets",
                  f"sparse vector '{name}' is indexed by its positions: it has no hash buckets (set its dim only)")

    def _check_task(self) -> None:
        """Rules that join the task, the training controls and the splits."""
        t, task = self.train, self.schema.task
        k = len(self.schema.classes)
        names = ["val_" + m for m in metric_names(task, k)]
        allowed = ("mse", "huber", "l1") if task == REGRESSION else ("cross_entropy",)
        check(t.loss is None or t.loss in allowed, "train.loss",
               f"'{t.loss}' is not a {task} loss; use one of {list(allowed)}")
        if task == REGRESSION:
            check(t.class_weights is None, "train.class_weights", "class weights need a classification task")
        elif isinstance(t.class_weights, list):
            check(len(t.class_weights) == k, "train.class_weights",
                   f"{len(t.class_weights)} weights for {k} classes {self.schema.classes}: give one per class")
        check(t.decision_threshold == "default" or (task != REGRESSION and k == 2), "train.decision_threshold",
               "best_f1 picks a threshold between two classes; this job is "
               + ("a regression" if task == REGRESSION else f"{k}-class"))
        for key, metric in (("early_stopping", t.early_stopping.metric if t.early_stopping else None),
                            ("lr_schedule", t.lr_schedule.metric if t.lr_schedule.kind == "plateau" else None)):
            check(metric is None or metric in names, f"train.{key}.metric",
                   f"'{metric}' is not a metric a {task} job produces; use one of {names}")
        if t.early_stopping is not None:
            check(bool(self.data.test) or self.materialize.test_fraction > 0, "materialize.test_fraction",
                   "early stopping picks epochs on the validation split, so held-out metrics need rows that took "
                   "no part: set materialize.test_fraction (e.g. 0.1) or give data.test")
        check(not (self.data.test and self.materialize.test_fraction > 0), "materialize.test_fraction",
               "data.test is the test split; a second one would be carved from data.train: set it to 0")

    def _check_promotion(self) -> None:
        """The gate's metrics are ones this task's held-out evaluation writes, bounded on
        the side their direction makes sense; drift checks features the job declares."""
        names = held_out_metric_names(self.schema.task, len(self.schema.classes))
        for name, gate in self.promote.metrics.items():
            key = f"promote.metrics.{name}"
            check(name in names, key, f"'{name}' is not a held-out metric of this job; use one of {list(names)}")
            higher = metric_direction(name) == "max"
            check(gate.max is None or not higher, f"{key}.max",
                  f"larger {name} is better: bound it from below with min")
            check(gate.min is None or higher, f"{key}.min", f"smaller {name} is better: bound it from above with max")
        d = self.drift
        check(d.against != "champion" or self.promote.model is not None, "drift.against",
              "'champion' means promote.model's champion: set promote.model, or name it (champion:NAME)")
        for i, name in enumerate(d.columns):
            check(name in self.schema.features, f"drift.columns[{i}]",
                  f"'{name}' is not a feature of this job; use one of {self.schema.features}")

    @property
    def keeps_profile(self) -> bool:
        """Whether preparing this job keeps the training profile drift checks need."""
        m = self.materialize.profile
        return m == "on" or (m == "auto" and bool(self.drift.against or self.promote.model))

    @property
    def loss(self) -> str:
        """The training loss (the task's default when ``train.loss`` is unset)."""
        return self.train.loss or ("mse" if self.schema.task == REGRESSION else "cross_entropy")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def with_values(self, values: Mapping[str, Any]) -> "JobConfig":
        """A copy with dotted keys set (``{"train.epochs": 2, "train.optimizer.lr": 0.01}``),
        validated like a loaded file."""
        raw = self.to_dict()
        for key, value in values.items():
            set_value(raw, key, value, JobConfig)
        return build(JobConfig, raw, "")
