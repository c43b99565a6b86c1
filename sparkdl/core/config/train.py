"""How ranks train: the ``train`` section and its groups (optimizer, exchange, loader,
launch, failures, early stopping, schedules)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Union

from sparkdl.core.config.backends import RULES
from sparkdl.core.config.checks import check
from sparkdl.core.errors import ConfigError
from sparkdl.core.task_metrics import metric_direction


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer and its learning rate (scaled by the number of ranks)."""

    #: The optimizer.
    name: Literal["adam", "adamw", "sgd"] = "adam"
    #: The learning rate for one rank, before ``lr_scaling``.
    lr: float = 1e-3
    #: L2 penalty (decoupled for ``adamw``).
    weight_decay: float = 0.0
    #: How the rate grows with the number of ranks: linearly, by its square root, or not.
    lr_scaling: Literal["linear", "sqrt", "none"] = "linear"

    def __post_init__(self):
        check(self.lr > 0, "train.optimizer.lr", "must be > 0")
        check(self.weight_decay >= 0, "train.optimizer.weight_decay", "must be >= 0")


@dataclass(frozen=True)
class PowerSgdConfig:
    """PowerSGD (``compression: powersgd``): each gradient matrix sent as two rank-``rank``
    factors, with error feedback (torch's ``powerSGD_hook``)."""

    #: The factors' rank: 1 sends least; 2-4 keep more of each gradient.
    rank: int = 1
    #: Steps of plain allreduce before compression starts (at least 2: DDP settles its buckets first).
    start_step: int = 10
    #: Add each step's compression error to the next step's gradient.
    error_feedback: bool = True
    #: Start each step's power iteration from the last step's factors.
    warm_start: bool = True

    def __post_init__(self):
        check(self.rank >= 1, "train.allreduce.powersgd.rank", "must be >= 1")
        check(self.start_step >= 2 or not (self.error_feedback or self.warm_start),
              "train.allreduce.powersgd.start_step",
              "must be >= 2 with error_feedback or warm_start (DDP settles its gradient buckets in the first step)")


@dataclass(frozen=True)
class TopkConfig:
    """Top-k sparsification (``compression: topk``): each rank sends the ``ratio`` largest
    gradient entries (values and indices), with error feedback."""

    #: The fraction of each gradient bucket's entries sent every step.
    ratio: float = 0.01
    #: Steps of plain allreduce before sparsification starts.
    start_step: int = 10
    #: Keep what was not sent and add it to the next step's gradient.
    error_feedback: bool = True

    def __post_init__(self):
        check(0 < self.ratio <= 1, "train.allreduce.topk.ratio", "must be in (0, 1]: the fraction of entries sent")
        check(self.start_step >= 0, "train.allreduce.topk.start_step", "must be >= 0")


@dataclass(frozen=True)
class AllreduceConfig:
    """How gradients are exchanged: compression on the wire, and accumulation of several
    backward passes per exchange."""

    #: Gradients on the wire: ``fp16``, ``bf16`` (half the bytes), ``powersgd`` (low-rank
    #: factors), ``topk`` (the largest entries); docs/communication.md says which to choose.
    compression: Literal["none", "fp16", "bf16", "powersgd", "topk"] = "none"
    #: ``compression: powersgd`` only.
    powersgd: Optional[PowerSgdConfig] = None
    #: ``compression: topk`` only.
    topk: Optional[TopkConfig] = None
    #: Gradient accumulation: backward passes per exchange and step.
    backward_passes_per_step: int = 1
    #: Embedding tables: ``sparse`` exchanges only the rows a batch touched (Horovod's
    #: sparse allreduce) and steps them with SparseAdam; ``dense`` allreduces the whole
    #: table; ``auto`` is sparse for tables of at least ``sparse_from_rows`` rows.
    embedding_gradients: Literal["auto", "dense", "sparse"] = "auto"
    #: ``auto``: the smallest table that takes sparse gradients.
    sparse_from_rows: int = 100_000

    def __post_init__(self):
        check(self.backward_passes_per_step >= 1, "train.allreduce.backward_passes_per_step", "must be >= 1")
        check(self.sparse_from_rows >= 1, "train.allreduce.sparse_from_rows", "must be >= 1")
        for method in ("powersgd", "topk"):
            check(getattr(self, method) is None or self.compression == method, f"train.allreduce.{method}",
                  f"these settings apply to compression: {method} (this job uses compression: {self.compression})")

    @property
    def powersgd_settings(self) -> PowerSgdConfig:
        return self.powersgd or PowerSgdConfig()

    @property
    def topk_settings(self) -> TopkConfig:
        return self.topk or TopkConfig()

    def sparse_table(self, rows: int) -> bool:
        """Whether an embedding table of ``rows`` rows takes sparse gradients."""
        return self.embedding_gradients == "sparse" or (self.embedding_gradients == "auto"
                                                         and rows >= self.sparse_from_rows)


@dataclass(frozen=True)
class LocalSgdConfig:
    """Local SGD (post-local SGD after ``warmup_steps``): each rank steps on its own
    gradients and the ranks average their parameters every ``period`` steps, instead of
    averaging gradients every step; validation and checkpoints see averaged weights."""

    #: Optimizer steps between parameter averages (H).
    period: int = 8
    #: Steps of ordinary gradient averaging before local steps start.
    warmup_steps: int = 0
    #: ``train.backend: torch``, several ranks per host: the ranks of a host also average
    #: among themselves every ``host_period`` steps (hierarchical averaging).
    host_period: Optional[int] = None

    def __post_init__(self):
        check(self.period >= 2, "train.local_sgd.period", "must be >= 2 steps (1 is plain synchronous training)")
        check(self.warmup_steps >= 0, "train.local_sgd.warmup_steps", "must be >= 0")
        if self.host_period is not None:
            check(1 <= self.host_period < self.period and self.period % self.host_period == 0,
                  "train.local_sgd.host_period",
                  f"must be >= 1, below train.local_sgd.period ({self.period}) and divide it")


@dataclass(frozen=True)
class HorovodConfig:
    """Horovod's tuning knobs (``train.backend: horovod`` only); unset: sparkdl's defaults."""

    #: Milliseconds the background thread waits between negotiation cycles (HOROVOD_CYCLE_TIME).
    cycle_time_ms: Optional[float] = None
    #: Gradients fused into one allreduce up to this many MiB (HOROVOD_FUSION_THRESHOLD).
    fusion_threshold_mb: Optional[float] = None

    def __post_init__(self):
        check(self.cycle_time_ms is None or self.cycle_time_ms > 0, "train.horovod.cycle_time_ms", "must be > 0")
        check(self.fusion_threshold_mb is None or self.fusion_threshold_mb >= 0, "train.horovod.fusion_threshold_mb",
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
        check(self.bucket_cap_mb > 0, "train.ddp.bucket_cap_mb", "must be > 0")


@dataclass(frozen=True)
class PipelineConfig:
    """Pipeline parallelism (``train.strategy: pipeline``): consecutive layers on
    consecutive ranks, each step's batch cut into micro-batches that the stages work on at
    once. Ranks beyond one pipeline are data-parallel replicas of it."""

    #: Ranks in one pipeline; the model is cut at layer boundaries into this many stages
    #: (times ``virtual_stages`` for ``interleaved``). It must divide the ranks.
    stages: int = 2
    #: ``gpipe`` (every micro-batch's forward, then every backward), ``1f1b`` (one forward,
    #: one backward: a stage keeps at most ``stages`` micro-batches' activations) or
    #: ``interleaved`` (1F1B over ``virtual_stages`` model chunks per rank: a smaller bubble).
    schedule: Literal["gpipe", "1f1b", "interleaved"] = "1f1b"
    #: Micro-batches per step; it must divide ``train.batch_size``.
    micro_batches: int = 4
    #: ``interleaved`` only: model chunks each rank holds.
    virtual_stages: int = 2

    def __post_init__(self):
        check(self.stages >= 2, "train.pipeline.stages", "must be >= 2 (one stage is plain data parallelism)")
        check(self.micro_batches >= 1, "train.pipeline.micro_batches", "must be >= 1")
        check(self.virtual_stages >= 2 or self.schedule != "interleaved", "train.pipeline.virtual_stages",
              "must be >= 2 under schedule: interleaved")
        check(self.schedule != "interleaved" or self.micro_batches % self.stages == 0, "train.pipeline.micro_batches",
              f"the interleaved schedule runs micro-batches in rounds of train.pipeline.stages ({self.stages}): "
              f"use a multiple of it, not {self.micro_batches}")

    @property
    def chunks(self) -> int:
        """Model chunks per rank."""
        return self.virtual_stages if self.schedule == "interleaved" else 1


@dataclass(frozen=True)
class TensorConfig:
    """Tensor parallelism (``train.strategy: tensor``): each hidden layer's matrix split
    across ranks, column-wise then row-wise (Megatron's MLP block). Ranks beyond one group
    are data-parallel replicas of it."""

    #: Ranks that split each layer; it must divide the ranks and the hidden widths.
    size: int = 2

    def __post_init__(self):
        check(self.size >= 2, "train.tensor.size", "must be >= 2 (one rank is plain data parallelism)")


@dataclass(frozen=True)
class LoaderConfig:
    """How each rank reads its shard."""

    #: Rows shuffled together before batching: each block of this many rows (from several row
    #: groups) is permuted whole; 0: in file order (and the same rows for a rank every epoch,
    #: docs/data.md).
    shuffle_buffer: int = 10000
    #: The most bytes a shuffle block holds (rows at their decoded size); the smaller of this
    #: and ``shuffle_buffer`` wins, so wide rows (images) keep a rank's reader bounded.
    shuffle_buffer_bytes: int = 256 * 2**20
    #: Batches read ahead on a background thread while the rank computes.
    prefetch_batches: int = 4

    def __post_init__(self):
        check(self.shuffle_buffer >= 0, "train.loader.shuffle_buffer", "must be >= 0 (0 turns shuffling off)")
        check(self.prefetch_batches >= 0, "train.loader.prefetch_batches", "must be >= 0")
        check(self.shuffle_buffer_bytes >= 2**20, "train.loader.shuffle_buffer_bytes", "must be >= 1 MiB (1048576)")


@dataclass(frozen=True)
class AugmentConfig:
    """Image jobs: random horizontal flips and random crops of an image zero-padded by
    ``crop_padding`` pixels, drawn anew every epoch."""

    #: Image jobs: random horizontal flips.
    flip: bool = False
    #: Image jobs: random crops of the image zero-padded by this many pixels.
    crop_padding: int = 0

    def __post_init__(self):
        check(self.crop_padding >= 0, "train.augment.crop_padding", "must be >= 0 pixels")

    @property
    def active(self) -> bool:
        return self.flip or self.crop_padding > 0


@dataclass(frozen=True)
class FineTuneConfig:
    """Start from an earlier run's weights, optionally with some parameters frozen."""

    #: A run id or path whose weights start this run (layers that match by name and shape), or
    #: ``champion:NAME``: the lake's champion of NAME (none yet: from scratch).
    init_from: Optional[str] = None
    #: Parameter-name prefixes kept fixed while training.
    freeze: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class SlurmConfig:
    """The Slurm batch job ``sparkdl slurm submit`` writes (``launcher: srun``): its
    ``train.ranks`` tasks spread evenly over ``nodes``."""

    #: Nodes the job asks for; ``train.ranks`` must be a multiple of it.
    nodes: int = 1
    #: GPUs each task (rank) gets (sbatch's ``--gpus-per-task``); 0: none.
    gpus_per_task: int = 0
    #: The partition (queue) to submit to; unset: the cluster's default.
    partition: Optional[str] = None
    #: The job's wall-clock limit as sbatch reads it (``HH:MM:SS``, ``D-HH:MM``); unset: the partition's.
    time_limit: Optional[str] = None
    #: Further sbatch options, one each, e.g. ``--account=ml`` or ``--exclusive``.
    sbatch: List[str] = field(default_factory=list)

    def __post_init__(self):
        check(self.nodes >= 1, "train.launch.slurm.nodes", "must be >= 1")
        check(self.gpus_per_task >= 0, "train.launch.slurm.gpus_per_task", "must be >= 0")
        for i, option in enumerate(self.sbatch):
            check(option.startswith("--") and "\n" not in option, f"train.launch.slurm.sbatch[{i}]",
                  f"{option!r} is not one sbatch option (write it as --name=value)")


@dataclass(frozen=True)
class LaunchConfig:
    """Bounds on every wait of the barrier stage's launch, and the ranks' environment."""

    #: How long every rank may take to start (slots, Python workers, imports).
    start_timeout_s: float = 120.0
    #: How long ranks may take to find each other.
    rendezvous_timeout_s: float = 60.0
    #: The longest a rank may go without reporting before the attempt is stopped.
    progress_timeout_s: float = 600.0
    #: How long a cancelled stage may take to stop before the driver gives up on it.
    cancel_grace_s: float = 30.0
    #: How long a run waits for free task slots while other runs of this driver (concurrent
    #: fits, search trials) hold them; it logs who holds them while it waits.
    slot_wait_s: float = 3600.0
    #: The address ranks send live events to: by default Spark's driver host, or, for a
    #: Spark Connect client, this machine's address on its route to the server. Ranks that
    #: cannot connect write their events to the run's directory in the lake instead.
    event_host: Optional[str] = None
    #: Extra environment for every rank, set before ``hvd.init()``: Horovod's tuning knobs
    #: (HOROVOD_CYCLE_TIME, HOROVOD_FUSION_THRESHOLD) or its profiler (HOROVOD_TIMELINE).
    env: Dict[str, str] = field(default_factory=dict)
    #: Give large freed buffers back to the system at once (glibc's mmap threshold fixed
    #: at 128 KiB in the ranks' Python workers): a lower peak for ``fsdp`` and ``pipeline``,
    #: whose gathered buffers otherwise stay with the process, at a cost in speed
    #: (docs/parallelism.md has both).
    release_memory: bool = False
    #: What starts the ranks: one barrier stage of this Spark session, ``torchrun`` or
    #: OpenMPI's ``mpirun`` on this machine, Slurm's ``srun`` in a Slurm job, or a Ray
    #: Train job (docs/launchers.md). Either way the run is written to the lake alike.
    launcher: Literal["spark", "torchrun", "mpirun", "srun", "ray"] = "spark"
    #: Times the launcher may restart every rank when one fails, before the run's own
    #: retries (``train.failure``) take over; each restart resumes from the latest checkpoint.
    #: ``torchrun`` only (its ``--max-restarts``).
    launcher_restarts: int = 0
    #: The batch job of ``sparkdl slurm submit``.
    slurm: SlurmConfig = field(default_factory=SlurmConfig)

    def __post_init__(self):
        for key in ("start_timeout_s", "rendezvous_timeout_s", "progress_timeout_s", "cancel_grace_s", "slot_wait_s"):
            check(getattr(self, key) > 0, f"train.launch.{key}", "must be > 0 seconds")
        check(self.launcher_restarts >= 0, "train.launch.launcher_restarts", "must be >= 0")
        check(self.launcher_restarts == 0 or self.launcher == "torchrun", "train.launch.launcher_restarts",
              f"is torchrun's own restarts; the {self.launcher} launcher has none: leave it 0 and use "
              "train.failure.max_attempts")
        for name in self.env:
            check(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is not None, f"train.launch.env.{name}",
                   "is not an environment variable name (letters, digits, underscores)")


@dataclass(frozen=True)
class FailureConfig:
    """Recovery: how many attempts a run gets when a retry can help."""

    #: Launches of the training stage, the first included; a retry resumes from the latest
    #: checkpoint.
    max_attempts: int = 3

    def __post_init__(self):
        check(self.max_attempts >= 1, "train.failure.max_attempts", "must be >= 1")


@dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when a validation metric stops improving; keep the best epoch's weights."""

    #: The validation metric watched (any ``val_`` metric of the task).
    metric: str = "val_loss"
    #: ``min`` or ``max``; by default, what the metric needs (``max`` for accuracy, F1, AUC, R2).
    mode: Optional[Literal["min", "max"]] = None
    #: Epochs without improvement before stopping.
    patience: int = 3
    #: The least change that counts as an improvement.
    min_delta: float = 0.0
    #: The weights the run keeps: the best epoch's, or the last.
    keep: Literal["best", "last"] = "best"

    def __post_init__(self):
        check(self.patience >= 1, "train.early_stopping.patience", "must be >= 1 epoch")
        check(self.min_delta >= 0, "train.early_stopping.min_delta", "must be >= 0")
        check(self.metric.startswith("val_"), "train.early_stopping.metric",
               f"'{self.metric}': early stopping watches a validation metric (val_loss, val_accuracy, ...)")

    @property
    def direction(self) -> str:
        return self.mode or metric_direction(self.metric)


@dataclass(frozen=True)
class LrScheduleConfig:
    """The learning rate over the run: linear warmup from ~0 over ``warmup_epochs``, then
    ``constant``, ``cosine`` (to ``min_lr``), ``step`` (times ``gamma`` every ``step_epochs``)
    or ``plateau`` (times ``gamma`` after ``patience`` epochs without a better ``metric``)."""

    #: How the learning rate changes over epochs.
    kind: Literal["constant", "cosine", "step", "plateau"] = "constant"
    #: Epochs of linear warm-up from zero (fractions allowed).
    warmup_epochs: float = 0.0
    #: ``cosine``: the rate it ends at.
    min_lr: float = 0.0
    #: ``step``: epochs between drops.
    step_epochs: int = 10
    #: ``step`` and ``plateau``: the factor of each drop.
    gamma: float = 0.1
    #: ``plateau``: the validation metric watched.
    metric: str = "val_loss"
    #: ``plateau``: epochs without improvement before a drop.
    patience: int = 2

    def __post_init__(self):
        check(self.warmup_epochs >= 0, "train.lr_schedule.warmup_epochs", "must be >= 0")
        check(self.min_lr >= 0, "train.lr_schedule.min_lr", "must be >= 0")
        check(self.step_epochs >= 1, "train.lr_schedule.step_epochs", "must be >= 1")
        check(0 < self.gamma < 1, "train.lr_schedule.gamma", "must be in (0, 1): the factor the rate is cut by")
        check(self.patience >= 1, "train.lr_schedule.patience", "must be >= 1 epoch")


@dataclass(frozen=True)
class TrainConfig:
    """Distributed training: world size, epochs and batch, and one group per concern."""

    #: Ranks (barrier tasks) to train on; unset: every task slot of the cluster.
    ranks: Optional[int] = None
    #: How ranks exchange gradients: ``horovod`` (ring-allreduce) or ``torch``
    #: (torch.distributed: DDP, or FSDP with ``strategy: fsdp``). docs/benchmarks.md compares them.
    backend: Literal["horovod", "torch"] = "horovod"
    #: ``train.backend: torch`` only: ``ddp`` replicates the model on every rank, ``fsdp``
    #: shards parameters, gradients and optimizer state across ranks, ``pipeline`` puts
    #: consecutive layers on consecutive ranks and ``tensor`` splits each hidden layer across
    #: ranks (the last three for models too large for one rank; docs/parallelism.md).
    strategy: Literal["ddp", "fsdp", "pipeline", "tensor"] = "ddp"
    #: Passes over the training split (fewer under early stopping).
    epochs: int = 10
    #: Rows per step on each rank.
    batch_size: int = 128
    #: Autocast to bf16 or fp16 (fp16 with loss scaling).
    mixed_precision: Literal["none", "bf16", "fp16"] = "none"
    #: Seeds the model's initial weights and each rank's shuffling.
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
    #: Stop when a validation metric stops improving (unset: train every epoch).
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
    #: ``train.strategy: pipeline``'s settings (unset: the defaults).
    pipeline: Optional[PipelineConfig] = None
    #: ``train.strategy: tensor``'s settings (unset: the defaults).
    tensor: Optional[TensorConfig] = None
    #: Average parameters every few steps instead of gradients every step (unset: off).
    local_sgd: Optional[LocalSgdConfig] = None

    def __post_init__(self):
        check(self.ranks is None or self.ranks >= 1, "train.ranks", "must be >= 1 (or omitted: all slots)")
        RULES[self.backend].check(self)  # each backend owns which options exist under it
        check(self.local_sgd is None or self.allreduce.compression == "none", "train.local_sgd",
              f"local SGD averages parameters every few steps and compresses nothing; remove "
              f"train.allreduce.compression: {self.allreduce.compression}, or train.local_sgd")
        check(self.epochs >= 1, "train.epochs", "must be >= 1")
        check(self.batch_size >= 1, "train.batch_size", "must be >= 1")
        if self.strategy == "pipeline":
            m = self.pipeline_settings.micro_batches
            check(self.batch_size % m == 0, "train.pipeline.micro_batches",
                  f"{m} micro-batches do not divide train.batch_size {self.batch_size}: choose a divisor of it")
        if self.ranks is not None:
            self.replicas(self.ranks)
        if isinstance(self.class_weights, list):
            check(all(w > 0 for w in self.class_weights), "train.class_weights", "weights must be > 0")
        s = self.lr_schedule
        check(s.warmup_epochs < self.epochs, "train.lr_schedule.warmup_epochs",
               f"warmup of {s.warmup_epochs:g} epochs is not shorter than the run (train.epochs={self.epochs})")
        if s.kind == "step":
            check(s.step_epochs < self.epochs, "train.lr_schedule.step_epochs",
                   f"a step every {s.step_epochs} epochs never happens in a run of train.epochs={self.epochs}")

    def sparse_table(self, rows: int) -> bool:
        """Whether an embedding table of ``rows`` rows takes sparse gradients (only where each
        rank holds whole tables: DDP and Horovod)."""
        return self.strategy == "ddp" and self.allreduce.sparse_table(rows)

    def model_parallel_size(self) -> int:
        """Ranks that hold one copy of the model between them (1: every rank holds all of it,
        or FSDP's shards, which gather whole layers)."""
        if self.strategy == "pipeline":
            return self.pipeline_settings.stages
        if self.strategy == "tensor":
            return self.tensor_settings.size
        return 1

    def replicas(self, ranks: int) -> int:
        """Data-parallel replicas among ``ranks``: a ConfigError when the model-parallel
        group does not divide them."""
        group = self.model_parallel_size()
        if ranks % group:
            key = "train.pipeline.stages" if self.strategy == "pipeline" else "train.tensor.size"
            raise ConfigError(key, f"{group} does not divide the {ranks} ranks of this job: set train.ranks to a "
                                   f"multiple of {group}, or change {key}")
        return ranks // group

    @property
    def ddp_settings(self) -> DdpConfig:
        return self.ddp or DdpConfig()

    @property
    def pipeline_settings(self) -> PipelineConfig:
        return self.pipeline or PipelineConfig()

    @property
    def tensor_settings(self) -> TensorConfig:
        return self.tensor or TensorConfig()
