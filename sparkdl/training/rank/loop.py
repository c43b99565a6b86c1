"""The training loop on each rank (runs inside a barrier task, after its backend joined
the other ranks: Horovod or torch.distributed, :mod:`sparkdl.training.backends`).

Parameters and optimizer state start identical on every rank (rank 0 broadcasts, after
resuming from the latest complete checkpoint if there is one); gradients are averaged
by the backend (Horovod's ring-allreduce, DDP's bucketed allreduce, or FSDP's
reduce-scatter), optionally compressed (:mod:`sparkdl.training.backends.compression`)
and accumulated over several backward passes, or parameters are averaged every few
steps instead (:mod:`sparkdl.training.backends.local_sgd`); mixed precision uses
autocast. Every rank runs the same number of steps per epoch, validation metrics come from statistics
summed across ranks (:mod:`sparkdl.core.task_metrics`), and rank 0 writes a checkpoint each
epoch and the final model. The learning-rate schedule and early stopping
(:mod:`sparkdl.training.rank.controls`), fault injection and startup timing are
:mod:`callbacks <sparkdl.training.rank.callbacks>` on the loop's events.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from sparkdl.core.arrow import PIXEL_SCALE
from sparkdl.core.columns import FEATURES, LABEL
from sparkdl.core.config import TrainConfig
from sparkdl.core.errors import CheckpointReadError
from sparkdl.core.models import build_model_and_loss, freeze, load_matching, predictions, save_model
from sparkdl.core.parquet_index import DatasetIndex
from sparkdl.core.rundir import WEIGHTS
from sparkdl.core.stopwatch import Laps
from sparkdl.core.task_metrics import StatsLayout, scalar_metrics
from sparkdl.training.backends.base import layout
from sparkdl.training.launch.events import EventType
from sparkdl.training.launch.task import RankContext
from sparkdl.training.rank.augment import ImageAugment
from sparkdl.training.rank.callbacks import Callback, Callbacks, LoopEvent, LoopState
from sparkdl.training.rank.checkpoints import load_latest, load_shard, save_checkpoint, save_shard
from sparkdl.training.rank.controls import EarlyStopping, LrSchedule
from sparkdl.training.rank.dealing import validation_deal
from sparkdl.training.rank.objective import LOSSES, Objective
from sparkdl.training.rank.reader import ShardReader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSpec:
    """Everything a rank needs (small and picklable; data and models stay in the lake)."""

    #: The training and validation splits: their directories and row groups (the dataset's index).
    train_data: DatasetIndex
    validation_data: DatasetIndex
    model_spec: Dict[str, Any]
    train: TrainConfig
    checkpoint_dir: str
    model_dir: str
    init_from: Optional[str] = None
    callbacks: Tuple[Callback, ...] = ()
    features: str = FEATURES
    label: str = LABEL
    loss: str = "cross_entropy"
    #: One weight per class for the loss (classification), or None.
    class_weights: Optional[Tuple[float, ...]] = None
    #: Image jobs: (channels, height, width) of the flattened features, for augmentation.
    image_shape: Optional[Tuple[int, int, int]] = None
    #: The embedding-index column (categorical columns learned as embeddings), or None.
    indices: Optional[str] = None

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r}: use one of {LOSSES}")

    @property
    def task(self) -> str:
        return self.model_spec.get("task", "classification")

    def objective(self, custom_loss=None) -> Objective:
        return Objective(self.task, self.loss, list(self.class_weights) if self.class_weights else None,
                         self.model_spec.get("target"), custom_loss)

    @property
    def row_bytes(self) -> int:
        """Bytes one decoded training row takes on a rank: its features (uint8 pixels for
        images, float32 otherwise), embedding indices (int64) and label."""
        features = self.model_spec["input_width"] * (1 if self.image_shape else 4)
        slots = sum(max(1, e.get("items", 0)) for e in self.model_spec.get("embeddings", []))
        return features + 8 * slots + 8

    def stats_layout(self) -> StatsLayout:
        return StatsLayout(self.task, self.model_spec.get("num_classes", 0))


def lr_scale(size: int, how: str) -> float:
    return {"linear": float(size), "sqrt": math.sqrt(size), "none": 1.0}[how]


def parameter_digest(state: Dict[str, Any]) -> Optional[str]:
    """A hash of every tensor's bytes in a state dict: equal digests mean identical
    parameters (None for an empty dict: a sharded model's state is whole on rank 0 only)."""
    if not state:
        return None
    h = hashlib.sha256()
    for name, p in sorted(state.items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def on_device(batch, device) -> List[Any]:
    """A batch's tensors on ``device``; uint8 pixels become float32 in [0, 1] there, after a
    copy of a quarter of the bytes (``non_blocking``: the reader pins them on CUDA)."""
    import torch

    out = []
    for t in batch:
        t = t.to(device, non_blocking=True)
        out.append(t.to(torch.float32).mul_(float(PIXEL_SCALE)) if t.dtype == torch.uint8 else t)
    return out


def evaluate(spec: TrainSpec, backend, model, objective: Objective, reader: ShardReader, device, batch_size: int,
             epoch: int, lockstep_batches: int = 0) -> Dict[str, float]:
    """The task's metrics over every validation row of every rank (``val_`` names),
    from statistics summed across ranks. ``lockstep_batches``: a sharded model's forward
    is a collective, so every rank runs that many (repeating its last batch, uncounted)."""
    import torch

    layout = spec.stats_layout()
    stats = layout.zeros()
    model.eval()
    done, last = 0, None
    with torch.no_grad():
        for batch in reader.all_rows(batch_size):
            *last, y = on_device(batch, device)
            out = backend.forward(model, last)
            done += 1
            if out is None:  # a rank that computes no outputs (a pipeline's earlier stages)
                continue
            out = out.float()
            loss_sum = float(objective(out, y, reduction="sum")) if objective.regression else None
            layout.update(stats, predictions(out, spec.model_spec).cpu().numpy(), y.cpu().numpy(), loss_sum)
        for _ in range(done, lockstep_batches):
            backend.forward(model, last)
    metrics = layout.finalize(backend.allreduce_sum(stats, f"val.{epoch}"))
    return {**{f"val_{k}": v for k, v in scalar_metrics(metrics).items()}, "val_rows": metrics["rows"]}


def _build(spec: TrainSpec, ctx: RankContext, device, lr: float):
    """The network (fine-tuned from ``init_from`` when set, with frozen parameters), the
    module the loop trains (the backend's wrapper of it, or itself), the optimizer at
    ``lr``, the objective, and the frozen parameters' names."""
    import torch

    t = spec.train
    model, custom_loss = build_model_and_loss(spec.model_spec)
    if spec.init_from:
        state = torch.load(Path(spec.init_from) / WEIGHTS, map_location="cpu", weights_only=True)
        loaded, skipped = load_matching(model, state)
        if ctx.is_chief:
            ctx.report(EventType.LOG, level="info", message=f"fine-tuning from {spec.init_from}: {len(loaded)} "
                                                            f"tensors loaded, {len(skipped)} new {skipped[:6]}")
    frozen = freeze(model, t.fine_tune.freeze)
    model.to(device)
    trained, opt = ctx.backend.prepare(model, t, lr, device)
    return model, trained, opt, spec.objective(custom_loss).to(device), frozen


def _resume(spec: TrainSpec, ctx: RankContext, net, opt,
            callbacks: Callbacks) -> Tuple[int, List, Optional[str], List[str]]:
    """Rank 0 loads the latest complete checkpoint; every rank gets its state by broadcast:
    parameters, optimizer state, the epoch and history, the callbacks' state, and its own
    part (its RNG, its exchange's state: :meth:`Backend.rank_state`). Also returns the newer
    checkpoints that did not load (rank 0; see :func:`load_latest`)."""
    import torch

    start_epoch, history, controls, stop_reason, ranks, shards = 0, [], {}, None, None, 0
    model_state = optimizer_state = None
    skipped: List[str] = []
    if ctx.is_chief:
        state = load_latest(Path(spec.checkpoint_dir),
                            accept=lambda s: callbacks.load_state_dict(s.get("callbacks", {})))
        if state is not None:
            model_state, optimizer_state = state["model"], state["optimizer"]
            torch.set_rng_state(state["rng"])  # checkpoints without "ranks" (earlier layouts) keep rank 0's only
            start_epoch, history = int(state["epoch"]), list(state["history"])
            controls, stop_reason = state.get("callbacks", {}), state.get("stop_reason")
            ranks, shards = state.get("ranks"), int(state.get("shards", 0))
            ctx.report(EventType.LOG, level="info", message=f"resuming from the checkpoint of epoch {start_epoch}")
            if state["skipped"]:
                ctx.report(EventType.LOG, level="warning",
                           message=f"newer checkpoints did not load and are set aside as *.unreadable: "
                                   f"{'; '.join(state['skipped'])}; resuming from epoch {start_epoch}")
                skipped = list(state["skipped"])
    ctx.backend.load_state(net, opt, model_state, optimizer_state)
    start_epoch, history, controls, stop_reason, ranks, shards = ctx.backend.broadcast_object(
        (start_epoch, history, controls, stop_reason, ranks, shards), "resume")
    if shards and shards != ctx.backend.shard_count():
        raise CheckpointReadError(
            f"the checkpoint of epoch {start_epoch} in {spec.checkpoint_dir} is {shards} shards of a model split "
            f"across ranks, and this attempt splits it {ctx.backend.shard_count() or 'not at all'}: continue the run "
            f"on the ranks that wrote it (train.ranks: {shards} for FSDP), or start a new run (sparkdl run --fresh)")
    if shards:  # each part of a split model (an FSDP rank's shard, a pipeline stage) resumes from its own file
        shard = ctx.backend.shard_index()
        ctx.backend.load_shard(net, opt, load_shard(Path(spec.checkpoint_dir), start_epoch, shard))
    callbacks.load_state_dict(controls)
    if ranks is not None and len(ranks) == ctx.size:  # the same world: each rank continues where it was
        mine = ranks[ctx.rank]
        torch.set_rng_state(mine["rng"])
        ctx.backend.load_rank_state(opt, mine)
    elif start_epoch:  # another world: a stream of its own for each rank, not the one epoch 1 drew
        torch.manual_seed(int.from_bytes(hashlib.sha256(
            f"{spec.train.seed}:{start_epoch}:{ctx.rank}".encode()).digest()[:7], "little"))
    return start_epoch, history, stop_reason, skipped


def _train_epoch(state: LoopState, callbacks: Callbacks, backend, model, opt, reader: ShardReader,
                 loss_fn: Objective, device, t, scaler, amp_dtype) -> Tuple[float, int, Dict[str, float]]:
    """One epoch of steps; returns this rank's summed loss, rows, and seconds: in all, and
    split into waiting for batches (``data_s``), forward and backward (``compute_s``) and
    the optimizer step with the gradient exchange (``step_s``): the loop's own profile."""
    import torch

    model.train()
    k = t.allreduce.backward_passes_per_step
    clock = time.perf_counter
    t0 = clock()
    data_s = compute_s = step_s = 0.0
    loss_sum = torch.zeros((), dtype=torch.float64)
    rows = 0
    batches = iter(reader.epoch(state.epoch))
    step = 0
    while True:
        a = clock()
        batch = next(batches, None)
        b = clock()
        data_s += b - a
        if batch is None:
            break
        state.step, state.batch = step, batch
        for hook in callbacks.on_step_start_hooks:
            hook(state)
        *inputs, y = on_device(batch, device)  # features [, embedding indices], labels
        if step == 0:
            backend.settle(model, inputs)
        boundary = (step + 1) % k == 0
        with backend.backward(model, boundary):
            loss, counted = backend.forward_backward(model, inputs, y, loss_fn, k, scaler, amp_dtype)
        c = clock()
        compute_s += c - b
        if boundary:
            backend.step(opt, scaler)
            opt.zero_grad()
        if loss is not None:
            loss_sum += loss.double() * counted
        rows += counted
        step_s += clock() - c
        if state.first_step_at is None:
            state.first_step_at = time.time()
        state.loss = loss
        for hook in callbacks.on_step_end_hooks:
            hook(state)
        step += 1
    return float(loss_sum), rows, {"seconds": clock() - t0, "data_s": data_s, "compute_s": compute_s,
                                   "step_s": step_s}


#: What one validation batch's inputs may take as float32 on the device.
VALIDATION_BATCH_BYTES = 64 * 2**20


def validation_batch(batch_size: int, row_bytes: int, pixels: bool) -> int:
    """Validation's batch: 1,024 rows, or the training batch if larger, fewer where their
    float32 inputs would pass :data:`VALIDATION_BATCH_BYTES` (images), never below the
    training batch."""
    float_bytes = row_bytes * (4 if pixels else 1)
    return max(batch_size, min(1024, VALIDATION_BATCH_BYTES // max(float_bytes, 1)))


def too_few_rows(rows: int, replicas: int, batch_size: int, multiple_of: int) -> str:
    """Why an epoch of ``rows`` rows gives no step, and what to change."""
    return (f"the training split has {rows} rows, fewer than one step of {replicas} replicas x "
            f"train.batch_size={batch_size}" + (f" x {multiple_of} accumulated passes" if multiple_of > 1 else "")
            + ": lower train.batch_size or train.ranks, or add data")


def check_same_deal(digests: List[float], epoch: int) -> None:
    """Every rank dealt epoch ``epoch``'s rows from the same order (each computes it alone):
    else rows were read twice or not at all, the steps still equal."""
    if len(set(digests)) > 1:
        raise RuntimeError(f"epoch {epoch}: the ranks computed different deals of the rows (digests "
                           f"{[int(d) for d in digests]}): their executors must run the same numpy and sparkdl")


def epoch_note(rows: int, replicas: int, per_replica: int) -> str:
    """What an epoch covers, for rank 0's first line."""
    used = replicas * per_replica
    return (f"{per_replica} rows per replica, {used} of {rows} training rows per epoch, "
            f"{rows - used} left out, coverage {used / max(rows, 1):.4f}")


def rows_per_replica(rows_per_rank: List[float], group: int) -> List[int]:
    """Rows each replica trained on, from every rank's count: ranks ``[r * group, (r + 1) *
    group)`` hold replica r's parts, and those that compute the loss count its rows (a
    pipeline's earlier stages count none), so the replica's rows are their largest count."""
    return [int(max(rows_per_rank[r:r + group])) for r in range(0, len(rows_per_rank), group)]


def _local_sgd_note(t: TrainConfig) -> str:
    s = t.local_sgd
    if s is None:
        return ""
    host = f", within hosts every {s.host_period}" if s.host_period else ""
    return f"local SGD (average every {s.period} steps after {s.warmup_steps}{host}); "


def _layout_note(t: TrainConfig, replicas: int) -> str:
    if t.strategy == "pipeline":
        p = t.pipeline_settings
        chunks = f", {p.virtual_stages} chunks each" if p.schedule == "interleaved" else ""
        return (f" ({replicas} replicas of {p.stages} pipeline stages{chunks}, {p.schedule}, "
                f"{p.micro_batches} micro-batches)")
    if t.strategy == "tensor":
        return f" ({replicas} replicas of {t.tensor_settings.size} tensor-parallel ranks)"
    return ""


def controls(t: TrainConfig, base_lr: float) -> List[Callback]:
    """The callbacks the config asks for: the learning-rate schedule, early stopping."""
    out: List[Callback] = []
    if _scheduled(t):
        out.append(LrSchedule(t.lr_schedule, base_lr))
    if t.early_stopping is not None:
        out.append(EarlyStopping(t.early_stopping))
    return out


def _scheduled(t: TrainConfig) -> bool:
    """Whether the rate follows a schedule (set every step) rather than staying as it starts."""
    return t.lr_schedule.kind != "constant" or t.lr_schedule.warmup_epochs > 0


def kept_entry(history: List[Dict[str, Any]], extras: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The history entry of the epoch whose weights the model keeps: early stopping's
    kept epoch when it ran, else the last."""
    kept = extras.get("early_stopping", {}).get("kept_epoch")
    for h in reversed(history):
        if kept is None or h["epoch"] == kept:
            return h
    return None


def _final_spec(spec: TrainSpec, history: List[Dict[str, Any]], extras: Dict[str, Any]) -> Dict[str, Any]:
    """The saved model's spec: with the decision threshold chosen on the kept epoch's
    validation statistics when the config asks for the F1-optimal one."""
    model_spec = dict(spec.model_spec)
    kept = kept_entry(history, extras)
    if spec.train.decision_threshold == "best_f1" and kept is not None:
        model_spec["threshold"] = kept.get("val_best_f1_threshold", 0.5)
    return model_spec


def train_rank(spec: TrainSpec, ctx: RankContext) -> Dict[str, Any]:
    """Train on this rank; rank 0 returns the history. Every rank returns its parameter
    digest (rank 0 only, for a sharded model; of its part, for a model split across ranks)."""
    import torch

    t = spec.train
    laps = Laps(ctx.startup)
    torch.set_num_threads(ctx.cpus)
    replica, replicas, _ = layout(ctx.rank, ctx.size, t.model_parallel_size())
    torch.manual_seed(t.seed * 1000 + replica)  # a replica's ranks build the same model, then keep their parts
    device = torch.device(ctx.device)
    lr = t.optimizer.lr * lr_scale(replicas, t.optimizer.lr_scaling)  # scaled for the replicas
    callbacks = Callbacks(controls(t, lr) + list(spec.callbacks))
    backend = ctx.backend
    net, model, opt, objective, frozen = _build(spec, ctx, device, lr)
    laps.lap("model_and_optimizer")
    start_epoch, history, stop_reason, skipped_checkpoints = _resume(spec, ctx, net, opt, callbacks)
    if not _scheduled(t):  # (a schedule sets the rate every step)
        for group in opt.param_groups:  # a resumed optimizer keeps its rate; this world's scaling rules
            group["lr"] = lr
    laps.lap("resume_and_broadcast")

    k = t.allreduce.backward_passes_per_step
    if (replica, replicas) != backend.data_parallel():
        raise RuntimeError(f"rank {ctx.rank}: the backend's mesh puts it in replica {backend.data_parallel()}, the "
                           f"config in {(replica, replicas)}")
    pin = device.type == "cuda"  # page-locked batches, so the non_blocking copies overlap compute
    to_tensors = lambda *arrays: tuple(  # noqa: E731
        torch.from_numpy(a).pin_memory() if pin else torch.from_numpy(a) for a in arrays)
    indices = spec.indices
    augment = (ImageAugment(tuple(spec.image_shape), t.augment.flip, t.augment.crop_padding)
               if t.augment.active and spec.image_shape else None)
    reads, labels = backend.reads
    reader = ShardReader(spec.train_data, replica, replicas, t.batch_size, shuffle_buffer=t.loader.shuffle_buffer,
                         shuffle_buffer_bytes=t.loader.shuffle_buffer_bytes, row_bytes=spec.row_bytes, seed=t.seed,
                         prefetch=t.loader.prefetch_batches, multiple_of=k, features=spec.features, label=spec.label,
                         to_tensors=to_tensors, transform=augment, indices=indices, inputs=reads, labels=labels,
                         parts=t.pipeline_settings.micro_batches if t.strategy == "pipeline" else 1)
    if reader.steps == 0:
        raise ValueError(too_few_rows(spec.train_data.rows, replicas, t.batch_size, k))
    val_batch = validation_batch(t.batch_size, spec.row_bytes, bool(spec.image_shape))
    val_reader = ShardReader(spec.validation_data, replica, replicas, val_batch, features=spec.features,
                             label=spec.label, indices=indices, inputs=reads, labels=labels,
                             to_tensors=lambda *arrays: tuple(torch.from_numpy(a) for a in arrays))  # not pinned
    # A sharded model's forward is a collective: every rank validates in as many batches.
    lockstep = (max(math.ceil(rows / val_batch) for rows in validation_deal(spec.validation_data, replicas)
                    .rows_per_rank) if backend.sharded else 0)
    laps.lap("shard_plan")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.mixed_precision)
    scaler = torch.amp.GradScaler("cuda") if (amp_dtype is torch.float16 and device.type == "cuda") else None
    if ctx.is_chief:
        ctx.report(EventType.LOG, level="info", message=(
            f"{ctx.size} ranks{_layout_note(t, replicas)} x {reader.steps} steps/epoch x batch {t.batch_size} "
            f"({epoch_note(spec.train_data.rows, replicas, reader.steps * t.batch_size)}); "
            f"{spec.task}, loss {spec.loss}; lr {lr:g} ({t.lr_schedule.kind}, warmup {t.lr_schedule.warmup_epochs:g} "
            f"epochs); compression {t.allreduce.compression}; {_local_sgd_note(t)}accumulation {k}; "
            f"precision {t.mixed_precision}; "
            f"device {device}; frozen {len(frozen)} tensors; backend {backend.name}"
            f"{' (' + t.strategy + ')' if t.backend == 'torch' else ''}{'; ' + backend.note if backend.note else ''}"))

    state = LoopState(rank=ctx.rank, size=ctx.size, replicas=replicas, reporting_rank=backend.reporting_rank,
                      attempt=ctx.attempt, epochs=t.epochs,
                      startup=laps, epoch=start_epoch, steps_per_epoch=reader.steps, history=history, report=ctx.report,
                      broadcast=backend.broadcast_object, model=net, optimizer=opt, stop_reason=stop_reason)
    callbacks.fire(LoopEvent.ON_TRAIN_START, state)
    for epoch in range(start_epoch + 1, t.epochs + 1):
        if state.stop_reason:  # a resumed run that had already stopped early
            break
        state.epoch = epoch
        loss_sum, rows, timing = _train_epoch(state, callbacks, backend, model, opt, reader, objective, device, t,
                                              scaler, amp_dtype)
        backend.end_epoch(net)
        mine = [0.0] * (2 * ctx.size)  # this rank's rows and its deal's digest, in its own slots
        mine[ctx.rank], mine[ctx.size + ctx.rank] = float(rows), float(reader.digest)
        sums = backend.allreduce_sum([loss_sum, float(rows)] + mine, f"train.{epoch}").tolist()
        total_loss, total_rows = sums[:2]
        check_same_deal(sums[2 + ctx.size:], epoch)
        trained = rows_per_replica(sums[2:2 + ctx.size], t.model_parallel_size())
        metrics = evaluate(spec, backend, net, objective, val_reader, device, val_batch, epoch, lockstep)
        seconds = timing["seconds"]
        entry = {"epoch": epoch, "loss": total_loss / max(total_rows, 1), **metrics,
                 "lr": opt.param_groups[0]["lr"], "samples_per_sec": total_rows / max(seconds, 1e-9),
                 "steps": reader.steps, "rows_per_rank": trained,
                 "coverage": round(sum(trained) / max(spec.train_data.rows, 1), 6), "attempt": ctx.attempt, **timing}
        history.append(entry)
        callbacks.fire(LoopEvent.ON_EPOCH_END, state)
        shard = backend.checkpoint_shard(net, opt)
        if shard is not None:
            save_shard(Path(spec.checkpoint_dir), epoch, *shard)
        sharded = backend.shard_count() > 0
        model_state = {} if sharded else backend.full_state(net)
        optimizer_state = {} if sharded else backend.optimizer_state(net, opt)
        # a collective: rank 0 has every rank's part, so every shard is on disk, before it writes the checkpoint
        ranks = backend.gather_object({"rng": torch.get_rng_state(), **backend.rank_state(opt)}, f"ranks.{epoch}")
        if ctx.is_chief:
            save_checkpoint(Path(spec.checkpoint_dir), epoch,
                            {"model": model_state, "optimizer": optimizer_state, "ranks": ranks,
                             "shards": backend.shard_count(),
                             "rng": torch.get_rng_state(), "history": history,
                             "callbacks": callbacks.state_dict(), "stop_reason": state.stop_reason},
                            before_rename=lambda tmp: callbacks.fire(LoopEvent.BEFORE_CHECKPOINT_COMMIT, state, tmp))
            ctx.report(EventType.EPOCH, **{k2: (round(v, 5) if isinstance(v, float) else v) for k2, v in entry.items()})
        callbacks.fire(LoopEvent.ON_EPOCH_REPORTED, state)
        if state.stop_reason and ctx.is_chief:
            ctx.report(EventType.LOG, level="info", message=f"stopping after epoch {epoch}: {state.stop_reason}")
    callbacks.fire(LoopEvent.ON_TRAIN_END, state)
    final_state = backend.full_state(net)
    if ctx.is_chief:
        save_model(final_state, _final_spec(spec, history, state.extras), Path(spec.model_dir))
    part, part_state = backend.part(net)
    return {"rank": ctx.rank, "digest": parameter_digest(final_state if part_state is None else part_state),
            "part": part, "steps_per_epoch": reader.steps,
            "rows_per_rank": [reader.steps * t.batch_size] * replicas,
            "device": str(device), "pid": os.getpid(),
            "first_step_at": state.first_step_at or time.time(), "extras": state.extras,
            "history": history if ctx.is_chief else None, "skipped_checkpoints": skipped_checkpoints,
            "resumed_from_epoch": start_epoch}
