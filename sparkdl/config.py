"""The job's configuration: typed, frozen dataclasses, one per concern, validated as
they are built. :mod:`sparkdl.config_loading` turns YAML into them.

Every mistake (an unknown key, a wrong type, a missing required value, a value out of
range) is a :class:`ConfigError` naming the key path, raised before Spark starts.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Mapping, Optional, Tuple, Union

from sparkdl.synthetic import SHAPES
from sparkdl.tables import name_problem
from sparkdl.task_metrics import REGRESSION, metric_direction, metric_names


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type, or out of range."""

    def __init__(self, path: str, message: str, source: Optional[str] = None):
        self.path = path
        where = f" in {source}" if source else ""
        super().__init__(f"config key '{path}'{where}: {message}")


def _check(cond: bool, path: str, message: str) -> None:
    if not cond:
        raise ConfigError(path, message)


_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class SparkConfig:
    """Where Spark runs when sparkdl starts it (ignored under spark-submit or in a notebook)."""

    master: str = "local-cluster[2,1,1024]"
    app_name: str = "sparkdl"
    conf: Dict[str, str] = field(default_factory=dict)
    executor_start_timeout_s: float = 120.0
    #: A Spark Connect endpoint (``sc://host:port/;token=...``): every Spark step then runs on
    #: that server's cluster and this process is a thin client. ``SPARK_REMOTE`` or
    #: ``--remote`` set it too; ``master`` is ignored then.
    remote: Optional[str] = None
    #: How long the first call to a Connect server may take (gRPC would retry for minutes).
    connect_timeout_s: float = 60.0

    def __post_init__(self):
        _check(self.executor_start_timeout_s > 0, "spark.executor_start_timeout_s", "must be > 0 seconds")
        _check(self.connect_timeout_s > 0, "spark.connect_timeout_s", "must be > 0 seconds")
        _check(self.remote is None or self.remote.startswith("sc://"), "spark.remote",
               f"{self.remote!r} is not a Spark Connect URL: write sc://host:port (15002 is Spark's default port)")


@dataclass(frozen=True)
class ColumnSpec:
    """One input column and its declared type."""

    name: str
    type: Literal["int", "long", "double", "float", "string", "boolean"]


@dataclass(frozen=True)
class SchemaConfig:
    """Declared schema of the raw data: never inferred."""

    columns: List[ColumnSpec]
    label: str
    #: ``classification``: the label is one of ``classes``; ``regression``: a number.
    task: Literal["classification", "regression"] = "classification"
    classes: List[str] = field(default_factory=list)
    categorical: List[str] = field(default_factory=list)
    numeric: List[str] = field(default_factory=list)
    keys: List[str] = field(default_factory=list)

    def __post_init__(self):
        names = [c.name for c in self.columns]
        _check(len(names) > 0, "schema.columns", "declare at least one column")
        for i, n in enumerate(names):
            _check(bool(_NAME_RE.match(n)), f"schema.columns[{i}].name",
                   f"'{n}' is not a usable column name (letters, digits, '_', '-', '.')")
        dup = sorted({n for n in names if names.count(n) > 1})
        _check(not dup, "schema.columns", f"duplicate column names {dup}")
        types = {c.name: c.type for c in self.columns}
        for key, group in (("categorical", self.categorical), ("numeric", self.numeric), ("keys", self.keys)):
            for i, n in enumerate(group):
                _check(n in types, f"schema.{key}[{i}]", f"'{n}' is not among schema.columns {names}")
        for i, n in enumerate(self.numeric):
            _check(types[n] in ("int", "long", "double", "float", "boolean"), f"schema.numeric[{i}]",
                   f"'{n}' is declared as {types[n]}; numeric features need int, long, double, float or boolean")
        both = sorted(set(self.categorical) & set(self.numeric))
        _check(not both, "schema", f"columns {both} are both categorical and numeric; pick one")
        _check(self.label in types, "schema.label", f"'{self.label}' is not among schema.columns {names}")
        _check(self.label not in self.categorical and self.label not in self.numeric, "schema.label",
               f"'{self.label}' is the label; remove it from schema.categorical/numeric")
        if self.task == REGRESSION:
            _check(not self.classes, "schema.classes", "a regression label is a number, not one of classes: "
                                                       "remove schema.classes (or set schema.task: classification)")
            _check(types[self.label] in ("int", "long", "double", "float"), "schema.label",
                   f"'{self.label}' is declared as {types[self.label]}; a regression label needs a numeric type")
        else:
            _check(len(self.classes) >= 2, "schema.classes",
                   "declare at least two classes (or set schema.task: regression for a numeric label)")
        _check(len(set(self.classes)) == len(self.classes), "schema.classes", "classes must be distinct")

    @property
    def features(self) -> List[str]:
        return list(self.numeric) + list(self.categorical)

    @property
    def image_path_column(self) -> str:
        """An image job's path column: the declared column beside the label."""
        return next(c.name for c in self.columns if c.name != self.label)


@dataclass(frozen=True)
class ImageConfig:
    """How image files become pixels (``data.format: images``): decoded, converted and
    resized on the executors with Pillow, stored as uint8."""

    height: int
    width: int
    #: ``L``: 8-bit grayscale (1 channel); ``RGB``: 3 channels.
    mode: Literal["L", "RGB"] = "L"
    #: Convert other modes to ``mode``; when false, an image in another mode is quarantined.
    convert: bool = False
    #: Resize other sizes to height x width; when false, they are quarantined.
    resize: bool = True
    #: Labels from a table instead of folder names: a CSV file with a header, or Parquet,
    #: with the path column (paths relative to the image folder) and ``schema.label``.
    labels: Optional[str] = None

    def __post_init__(self):
        _check(self.height >= 1 and self.width >= 1, "data.image", "height and width must be >= 1 pixel")

    @property
    def channels(self) -> int:
        return 1 if self.mode == "L" else 3

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass(frozen=True)
class DataConfig:
    """Where the raw data lives and how to read it."""

    #: The training data's path; for ``table``, a table in the session's catalog
    #: (``[catalog.][database.]table``); for jdbc, see options; generated data has none.
    train: Optional[str] = None
    format: Literal["csv", "parquet", "json", "jdbc", "synthetic", "images", "table"] = "csv"
    test: Optional[str] = None
    options: Dict[str, str] = field(default_factory=dict)
    null_values: List[str] = field(default_factory=lambda: ["?", ""])
    #: A NaN or infinite number (``1e400``, ``inf``, ``NaN``) in a double/float column:
    #: quarantine the row with a reason, or treat the value as missing (imputed).
    non_finite: Literal["quarantine", "missing"] = "quarantine"
    max_bad_fraction: float = 0.01
    #: Images: a folder of files, ``<folder>/<label>/<name>``, the label from the parent folder.
    image: Optional[ImageConfig] = None

    def __post_init__(self):
        _check(0.0 <= self.max_bad_fraction <= 1.0, "data.max_bad_fraction", "must be between 0 and 1")
        _check((self.format == "images") == (self.image is not None), "data.image",
               "format 'images' needs data.image {height, width, mode}" if self.format == "images"
               else f"data.image is for format 'images', not '{self.format}'")
        _check(self.format == "synthetic" or bool(self.train), "data.train",
               "required value missing (expected a string: the training data's path)")
        if self.format == "table":
            for key in ("train", "test"):
                value = getattr(self, key)
                _check(value is None or name_problem(value) is None, f"data.{key}", name_problem(value or "") or "")
        if self.format == "jdbc":
            _check("url" in self.options, "data.options.url", "jdbc sources need options.url (and dbtable or query)")
        if self.format == "synthetic":
            _check(set(self.options) <= {"rows", "seed", "partitions", "shape"} and "rows" in self.options,
                   "data.options", "synthetic data takes options rows (required), seed, partitions and shape")
            for key in ("rows", "seed", "partitions"):
                _check(str(self.options.get(key, "0")).isdigit(), f"data.options.{key}",
                       f"must be a whole number, not '{self.options.get(key)}'")
            _check(self.options.get("shape", "adult") in SHAPES, "data.options.shape",
                   f"unknown synthetic shape '{self.options.get('shape')}': choose {' or '.join(SHAPES)}")


@dataclass(frozen=True)
class EmbeddingConfig:
    """How embedded categorical columns are indexed: by frequency on the training split
    (values seen fewer than ``min_count`` times, and unseen ones, share index 0), or, past
    ``max_vocabulary`` distinct values, hashed into ``hash_buckets``. ``dim`` unset: the
    rule min(50, round(1.6 x size^0.56))."""

    min_count: int = 1
    max_vocabulary: int = 100_000
    hash_buckets: int = 262_144
    dim: Optional[int] = None

    def __post_init__(self):
        _check(self.min_count >= 1, "features.embedding.min_count", "must be >= 1")
        _check(self.max_vocabulary >= 1, "features.embedding.max_vocabulary", "must be >= 1")
        _check(2 <= self.hash_buckets <= 2 ** 24, "features.embedding.hash_buckets", "must be in [2, 16777216]")
        _check(self.dim is None or self.dim >= 1, "features.embedding.dim", "must be >= 1")


@dataclass(frozen=True)
class ColumnEncoding:
    """One categorical column's encoding, overriding ``features.categorical_encoding``."""

    encoding: Optional[Literal["onehot", "embedding"]] = None
    hash_buckets: Optional[int] = None
    dim: Optional[int] = None


@dataclass(frozen=True)
class FeaturesConfig:
    """The Spark ML feature pipeline."""

    scaler: Literal["standard", "minmax", "none"] = "standard"
    impute: Literal["mean", "median"] = "mean"
    #: Categorical columns: one-hot encoded, or learned as embeddings (per column: ``columns``).
    categorical_encoding: Literal["onehot", "embedding"] = "onehot"
    columns: Dict[str, ColumnEncoding] = field(default_factory=dict)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    #: A one-hot column with more distinct training values than this is a ConfigError.
    onehot_max_cardinality: int = 1000

    def column_setting(self, column: str, key: str):
        """``features.columns.<column>.<key>`` when the column sets it, else None."""
        own = self.columns.get(column)
        return getattr(own, key) if own is not None and getattr(own, key) else None

    def encoding(self, column: str) -> str:
        return self.column_setting(column, "encoding") or self.categorical_encoding
    #: Regression: train on the label standardized with the training split's mean and
    #: standard deviation (undone in every prediction), or on the label as it is.
    target_scaling: Literal["standard", "none"] = "standard"


@dataclass(frozen=True)
class MaterializeConfig:
    """Train/validation(/test) split and Parquet layout for training."""

    validation_fraction: float = 0.1
    #: A seeded test split carved beside validation when the data has no ``data.test``,
    #: so metrics reported after early stopping come from rows that chose nothing.
    test_fraction: float = 0.0
    seed: int = 42
    max_ranks: int = 4
    row_groups_per_rank: int = 4
    max_rows_per_row_group: int = 262144

    def __post_init__(self):
        _check(0.0 < self.validation_fraction < 1.0, "materialize.validation_fraction", "must be in (0, 1)")
        _check(0.0 <= self.test_fraction < 1.0, "materialize.test_fraction", "must be in [0, 1)")
        _check(self.validation_fraction + self.test_fraction < 0.9, "materialize.test_fraction",
               "validation_fraction + test_fraction must leave at least 10% of the rows to train on")
        _check(self.max_ranks >= 1, "materialize.max_ranks", "must be >= 1")
        _check(self.row_groups_per_rank >= 1, "materialize.row_groups_per_rank", "must be >= 1")
        _check(self.max_rows_per_row_group >= 1, "materialize.max_rows_per_row_group", "must be >= 1")


@dataclass(frozen=True)
class ModelConfig:
    """Which network to train: a built-in one or a user factory 'module:function'."""

    kind: Literal["mlp", "cnn", "custom"] = "mlp"
    hidden: List[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.1
    image_shape: Optional[Tuple[int, int, int]] = None
    factory: Optional[str] = None
    factory_args: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        _check(all(h > 0 for h in self.hidden), "model.hidden", "layer widths must be > 0")
        _check(0.0 <= self.dropout < 1.0, "model.dropout", "must be in [0, 1)")
        if self.kind == "custom":
            _check(bool(self.factory) and ":" in (self.factory or ""), "model.factory",
                   "kind 'custom' needs factory: 'package.module:function'")
        if self.kind == "cnn":
            _check(self.image_shape is not None, "model.image_shape",
                   "kind 'cnn' needs image_shape: [channels, height, width]")


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer and its learning rate (scaled by the number of ranks)."""

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_scaling: Literal["linear", "sqrt", "none"] = "linear"

    def __post_init__(self):
        _check(self.lr > 0, "train.optimizer.lr", "must be > 0")
        _check(self.weight_decay >= 0, "train.optimizer.weight_decay", "must be >= 0")


@dataclass(frozen=True)
class AllreduceConfig:
    """How gradients are exchanged: compression on the wire, and accumulation of several
    backward passes per exchange."""

    compression: Literal["none", "fp16"] = "none"
    backward_passes_per_step: int = 1
    #: Embedding tables: ``sparse`` exchanges only the rows a batch touched (Horovod's
    #: sparse allreduce) and steps them with SparseAdam; ``dense`` allreduces the whole
    #: table; ``auto`` is sparse for tables of at least ``sparse_from_rows`` rows.
    embedding_gradients: Literal["auto", "dense", "sparse"] = "auto"
    sparse_from_rows: int = 100_000

    def __post_init__(self):
        _check(self.backward_passes_per_step >= 1, "train.allreduce.backward_passes_per_step", "must be >= 1")
        _check(self.sparse_from_rows >= 1, "train.allreduce.sparse_from_rows", "must be >= 1")

    def sparse_table(self, rows: int) -> bool:
        """Whether an embedding table of ``rows`` rows takes sparse gradients."""
        return self.embedding_gradients == "sparse" or (self.embedding_gradients == "auto"
                                                         and rows >= self.sparse_from_rows)


@dataclass(frozen=True)
class HorovodConfig:
    """Horovod's tuning knobs (``train.backend: horovod`` only); unset: sparkdl's defaults."""

    #: Milliseconds the background thread waits between negotiation cycles (HOROVOD_CYCLE_TIME).
    cycle_time_ms: Optional[float] = None
    #: Gradients fused into one allreduce up to this many MiB (HOROVOD_FUSION_THRESHOLD).
    fusion_threshold_mb: Optional[float] = None

    def __post_init__(self):
        _check(self.cycle_time_ms is None or self.cycle_time_ms > 0, "train.horovod.cycle_time_ms", "must be > 0")
        _check(self.fusion_threshold_mb is None or self.fusion_threshold_mb >= 0, "train.horovod.fusion_threshold_mb",
               "must be >= 0 (0 turns fusion off)")

    def env(self) -> Dict[str, str]:
        """The HOROVOD_* variables these settings mean."""
        out = {}
        if self.cycle_time_ms is not None:
            out["HOROVOD_CYCLE_TIME"] = f"{self.cycle_time_ms:g}"
        if self.fusion_threshold_mb is not None:
            out["HOROVOD_FUSION_THRESHOLD"] = str(int(self.fusion_threshold_mb * 1024 * 1024))
        return out


@dataclass(frozen=True)
class DdpConfig:
    """``DistributedDataParallel``'s settings (``train.backend: torch`` only)."""

    #: Gradients are allreduced in buckets of this many MiB, overlapped with backward.
    bucket_cap_mb: float = 25.0

    def __post_init__(self):
        _check(self.bucket_cap_mb > 0, "train.ddp.bucket_cap_mb", "must be > 0")


@dataclass(frozen=True)
class LoaderConfig:
    """How each rank reads its shard."""

    shuffle_buffer: int = 10000
    prefetch_batches: int = 4

    def __post_init__(self):
        _check(self.shuffle_buffer >= 0, "train.loader.shuffle_buffer", "must be >= 0 (0 turns shuffling off)")
        _check(self.prefetch_batches >= 0, "train.loader.prefetch_batches", "must be >= 0")


@dataclass(frozen=True)
class AugmentConfig:
    """Image jobs: random horizontal flips and random crops of an image zero-padded by
    ``crop_padding`` pixels, drawn anew every epoch."""

    flip: bool = False
    crop_padding: int = 0

    def __post_init__(self):
        _check(self.crop_padding >= 0, "train.augment.crop_padding", "must be >= 0 pixels")

    @property
    def active(self) -> bool:
        return self.flip or self.crop_padding > 0


@dataclass(frozen=True)
class FineTuneConfig:
    """Start from an earlier run's weights, optionally with some parameters frozen."""

    init_from: Optional[str] = None
    freeze: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class LaunchConfig:
    """Bounds on every wait of the barrier stage's launch, and the ranks' environment."""

    start_timeout_s: float = 120.0
    rendezvous_timeout_s: float = 60.0
    progress_timeout_s: float = 600.0
    #: How long a cancelled stage may take to stop before the driver gives up on it.
    cancel_grace_s: float = 30.0
    #: The address ranks send live events to: by default Spark's driver host, or, for a
    #: Spark Connect client, this machine's address on its route to the server. Ranks that
    #: cannot connect write their events to the run's directory in the lake instead.
    event_host: Optional[str] = None
    #: Extra environment for every rank, set before ``hvd.init()``: Horovod's tuning knobs
    #: (HOROVOD_CYCLE_TIME, HOROVOD_FUSION_THRESHOLD) or its profiler (HOROVOD_TIMELINE).
    env: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        for key in ("start_timeout_s", "rendezvous_timeout_s", "progress_timeout_s", "cancel_grace_s"):
            _check(getattr(self, key) > 0, f"train.launch.{key}", "must be > 0 seconds")
        for name in self.env:
            _check(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None, f"train.launch.env.{name}",
                   "is not an environment variable name (letters, digits, underscores)")


@dataclass(frozen=True)
class ProgressConfig:
    """Live progress of training and of the Spark stages of prepare and score: rank 0
    reports its step every ``interval_s`` (0: never), and the driver shows progress as a
    bar (``bar``: a terminal or Jupyter), as a log line every ``lines_every_s``
    (``lines``: spark-submit logs, CI), or picks by where its output goes (``auto``)."""

    interval_s: float = 2.0
    display: Literal["auto", "bar", "lines", "off"] = "auto"
    lines_every_s: float = 10.0

    def __post_init__(self):
        _check(self.interval_s >= 0, "progress.interval_s", "must be >= 0 seconds (0 turns reports off)")
        _check(self.lines_every_s > 0, "progress.lines_every_s", "must be > 0 seconds")


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow: each run's parameters, per-epoch metrics, results, pictures and model.
    ``mlflow: auto`` logs when MLflow is installed (``pip install 'sparkdl-torch[mlflow]'``);
    ``on`` requires it. Without ``uri`` the store is SQLite inside the lake
    (``<lake>/mlflow/mlflow.db``, artifacts beside it): no server needed."""

    mlflow: Literal["auto", "on", "off"] = "auto"
    #: A tracking URI (``http://host:5000``, ``sqlite:///path.db``, ``databricks``); None: the lake's own store.
    uri: Optional[str] = None
    #: The MLflow experiment; None: the job's name.
    experiment: Optional[str] = None
    #: Register the run's model under this name in the model registry (a new version per run).
    register_as: Optional[str] = None


@dataclass(frozen=True)
class FailureConfig:
    """Recovery: how many attempts a run gets when a retry can help."""

    max_attempts: int = 3

    def __post_init__(self):
        _check(self.max_attempts >= 1, "train.failure.max_attempts", "must be >= 1")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when a validation metric stops improving; keep the best epoch's weights."""

    metric: str = "val_loss"
    #: ``min`` or ``max``; by default, what the metric needs (``max`` for accuracy, F1, AUC, R2).
    mode: Optional[Literal["min", "max"]] = None
    patience: int = 3
    min_delta: float = 0.0
    keep: Literal["best", "last"] = "best"

    def __post_init__(self):
        _check(self.patience >= 1, "train.early_stopping.patience", "must be >= 1 epoch")
        _check(self.min_delta >= 0, "train.early_stopping.min_delta", "must be >= 0")
        _check(self.metric.startswith("val_"), "train.early_stopping.metric",
               f"'{self.metric}': early stopping watches a validation metric (val_loss, val_accuracy, ...)")

    @property
    def direction(self) -> str:
        return self.mode or metric_direction(self.metric)


@dataclass(frozen=True)
class LrScheduleConfig:
    """The learning rate over the run: linear warmup from ~0 over ``warmup_epochs``, then
    ``constant``, ``cosine`` (to ``min_lr``), ``step`` (times ``gamma`` every ``step_epochs``)
    or ``plateau`` (times ``gamma`` after ``patience`` epochs without a better ``metric``)."""

    kind: Literal["constant", "cosine", "step", "plateau"] = "constant"
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    step_epochs: int = 10
    gamma: float = 0.1
    metric: str = "val_loss"
    patience: int = 2

    def __post_init__(self):
        _check(self.warmup_epochs >= 0, "train.lr_schedule.warmup_epochs", "must be >= 0")
        _check(self.min_lr >= 0, "train.lr_schedule.min_lr", "must be >= 0")
        _check(self.step_epochs >= 1, "train.lr_schedule.step_epochs", "must be >= 1")
        _check(0 < self.gamma < 1, "train.lr_schedule.gamma", "must be in (0, 1): the factor the rate is cut by")
        _check(self.patience >= 1, "train.lr_schedule.patience", "must be >= 1 epoch")


@dataclass(frozen=True)
class TrainConfig:
    """Distributed training: world size, epochs and batch, and one group per concern."""

    ranks: Optional[int] = None
    #: How ranks exchange gradients: ``horovod`` (ring-allreduce) or ``torch``
    #: (torch.distributed: DDP, or FSDP with ``strategy: fsdp``). See the README to choose.
    backend: Literal["horovod", "torch"] = "horovod"
    #: ``train.backend: torch`` only: ``ddp`` replicates the model on every rank, ``fsdp``
    #: shards parameters, gradients and optimizer state across ranks (models too large for one).
    strategy: Literal["ddp", "fsdp"] = "ddp"
    epochs: int = 10
    batch_size: int = 128
    mixed_precision: Literal["none", "bf16", "fp16"] = "none"
    seed: int = 0
    #: The loss: ``cross_entropy`` for classification; ``mse`` (default), ``huber`` or ``l1``
    #: for regression. Unset: the task's default.
    loss: Optional[Literal["cross_entropy", "mse", "huber", "l1"]] = None
    #: Classification: ``balanced`` (n / (classes x count) from the training split) or one
    #: weight per class, in ``schema.classes`` order.
    class_weights: Optional[Union[Literal["balanced"], List[float]]] = None
    #: Two classes: predict the positive class at probability >= 0.5 (``default``) or at
    #: the threshold that maximised F1 on the validation split (``best_f1``).
    decision_threshold: Literal["default", "best_f1"] = "default"
    early_stopping: Optional[EarlyStoppingConfig] = None
    lr_schedule: LrScheduleConfig = field(default_factory=LrScheduleConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    allreduce: AllreduceConfig = field(default_factory=AllreduceConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    fine_tune: FineTuneConfig = field(default_factory=FineTuneConfig)
    launch: LaunchConfig = field(default_factory=LaunchConfig)
    failure: FailureConfig = field(default_factory=FailureConfig)
    #: Rank 0 writes TensorBoard event files under the run (``tensorboard/``).
    tensorboard: bool = True
    #: Backend-specific settings: each is an error under the other backend.
    horovod: Optional[HorovodConfig] = None
    ddp: Optional[DdpConfig] = None

    def __post_init__(self):
        _check(self.ranks is None or self.ranks >= 1, "train.ranks", "must be >= 1 (or omitted: all slots)")
        self._check_backend()
        _check(self.epochs >= 1, "train.epochs", "must be >= 1")
        _check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        if isinstance(self.class_weights, list):
            _check(all(w > 0 for w in self.class_weights), "train.class_weights", "weights must be > 0")
        s = self.lr_schedule
        _check(s.warmup_epochs < self.epochs, "train.lr_schedule.warmup_epochs",
               f"warmup of {s.warmup_epochs:g} epochs is not shorter than the run (train.epochs={self.epochs})")
        if s.kind == "step":
            _check(s.step_epochs < self.epochs, "train.lr_schedule.step_epochs",
                   f"a step every {s.step_epochs} epochs never happens in a run of train.epochs={self.epochs}")

    def _check_backend(self) -> None:
        """Options that exist in one backend only are errors under the other, naming it."""
        _check(self.strategy == "ddp" or self.backend == "torch", "train.strategy",
               f"{self.strategy} is an option of train.backend: torch (this job uses train.backend: horovod)")
        _check(self.horovod is None or self.backend == "horovod", "train.horovod",
               f"these are options of train.backend: horovod (this job uses train.backend: {self.backend})")
        _check(self.ddp is None or (self.backend == "torch" and self.strategy == "ddp"), "train.ddp",
               f"these are options of train.backend: torch with train.strategy: ddp (this job uses "
               f"train.backend: {self.backend}{', strategy: ' + self.strategy if self.backend == 'torch' else ''})")
        _check(self.strategy != "fsdp" or self.allreduce.compression == "none", "train.allreduce.compression",
               "fp16 compression is an option of train.backend: horovod and of train.strategy: ddp; "
               "train.strategy: fsdp reduces full-precision gradients")
        _check(self.strategy != "fsdp" or self.allreduce.embedding_gradients != "sparse",
               "train.allreduce.embedding_gradients", "sparse is not an option of train.strategy: fsdp (it shards "
               "dense parameters): use dense, or train.strategy: ddp")

    def sparse_table(self, rows: int) -> bool:
        """Whether an embedding table of ``rows`` rows takes sparse gradients (never under FSDP)."""
        return self.strategy != "fsdp" and self.allreduce.sparse_table(rows)

    @property
    def ddp_settings(self) -> DdpConfig:
        return self.ddp or DdpConfig()


@dataclass(frozen=True)
class JobConfig:
    """A whole ETL-plus-train job."""

    data: DataConfig
    schema: SchemaConfig
    name: str = "job"
    spark: SparkConfig = field(default_factory=SparkConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    materialize: MaterializeConfig = field(default_factory=MaterializeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    progress: ProgressConfig = field(default_factory=ProgressConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self):
        _check(bool(re.match(r"^[A-Za-z0-9_.\-]+$", self.name)), "name",
               "use letters, digits, '_', '-', '.' (it names run directories)")
        if self.train.ranks is not None:
            _check(self.train.ranks <= self.materialize.max_ranks, "train.ranks",
                   f"{self.train.ranks} ranks > materialize.max_ranks={self.materialize.max_ranks}; "
                   "raise max_ranks so every rank gets several row groups")
        self._check_inputs()
        self._check_features()
        self._check_task()

    def _check_inputs(self) -> None:
        """Features come from declared columns, or for images from the files themselves."""
        schema = self.schema
        if self.data.format != "images":
            _check(bool(schema.categorical or schema.numeric), "schema",
                   "declare at least one feature in schema.categorical or schema.numeric")
            _check(not self.train.augment.active, "train.augment",
                   "augmentation flips and crops images: it needs data.format: images")
            return
        strings = [c.name for c in schema.columns if c.type == "string"]
        _check(len(schema.columns) == 2 and len(strings) == 2 and schema.label in strings, "schema.columns",
               "an image job declares two string columns: the file's path and the label (its folder's name)")
        _check(not (schema.categorical or schema.numeric), "schema",
               "an image job's features are its pixels: leave schema.numeric and schema.categorical empty")
        _check(schema.task == "classification", "schema.task", "image jobs classify (the label is a folder name)")
        if self.model.kind == "cnn":
            _check(tuple(self.model.image_shape) == self.data.image.shape, "model.image_shape",
                   f"{list(self.model.image_shape)} does not match data.image "
                   f"({list(self.data.image.shape)}: channels, height, width)")

    @property
    def path_column(self) -> Optional[str]:
        """An image job's path column."""
        return self.schema.image_path_column if self.data.format == "images" else None

    def _check_features(self) -> None:
        for name in self.features.columns:
            _check(name in self.schema.categorical, f"features.columns.{name}",
                   f"'{name}' is not in schema.categorical {self.schema.categorical}")

    def _check_task(self) -> None:
        """Rules that join the task, the training controls and the splits."""
        t, task = self.train, self.schema.task
        k = len(self.schema.classes)
        names = ["val_" + m for m in metric_names(task, k)]
        allowed = ("mse", "huber", "l1") if task == REGRESSION else ("cross_entropy",)
        _check(t.loss is None or t.loss in allowed, "train.loss",
               f"'{t.loss}' is not a {task} loss; use one of {list(allowed)}")
        if task == REGRESSION:
            _check(t.class_weights is None, "train.class_weights", "class weights need a classification task")
        elif isinstance(t.class_weights, list):
            _check(len(t.class_weights) == k, "train.class_weights",
                   f"{len(t.class_weights)} weights for {k} classes {self.schema.classes}: give one per class")
        _check(t.decision_threshold == "default" or (task != REGRESSION and k == 2), "train.decision_threshold",
               "best_f1 picks a threshold between two classes; this job is "
               + ("a regression" if task == REGRESSION else f"{k}-class"))
        for key, metric in (("early_stopping", t.early_stopping.metric if t.early_stopping else None),
                            ("lr_schedule", t.lr_schedule.metric if t.lr_schedule.kind == "plateau" else None)):
            _check(metric is None or metric in names, f"train.{key}.metric",
                   f"'{metric}' is not a metric a {task} job produces; use one of {names}")
        if t.early_stopping is not None:
            _check(bool(self.data.test) or self.materialize.test_fraction > 0, "materialize.test_fraction",
                   "early stopping picks epochs on the validation split, so held-out metrics need rows that took "
                   "no part: set materialize.test_fraction (e.g. 0.1) or give data.test")
        _check(not (self.data.test and self.materialize.test_fraction > 0), "materialize.test_fraction",
               "data.test is the test split; a second one would be carved from data.train: set it to 0")

    @property
    def loss(self) -> str:
        """The training loss (the task's default when ``train.loss`` is unset)."""
        return self.train.loss or ("mse" if self.schema.task == REGRESSION else "cross_entropy")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def with_values(self, values: Mapping[str, Any]) -> "JobConfig":
        """A copy with dotted keys set (``{"train.epochs": 2, "train.optimizer.lr": 0.01}``),
        validated like a loaded file."""
        from sparkdl.config_loading import parse_config, set_value

        raw = self.to_dict()
        for key, value in values.items():
            set_value(raw, key, value)
        return parse_config(raw)
