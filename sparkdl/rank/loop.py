"""The training loop on each rank (runs inside a barrier task, after ``hvd.init()``).

Parameters and optimizer state start identical on every rank (rank 0 broadcasts, after
resuming from the latest complete checkpoint if there is one); gradients are averaged
with Horovod's ring-allreduce (``DistributedOptimizer``), optionally fp16-compressed
and accumulated over several backward passes; mixed precision uses autocast. Every
rank runs the same number of steps per epoch, validation metrics are summed across
ranks, and rank 0 writes a checkpoint each epoch and the final model. Anything else
(fault injection, startup timing, and the controls later features add) is a
:mod:`callback <sparkdl.rank.callbacks>` on the loop's events.
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

from sparkdl.config import TrainConfig
from sparkdl.launch.events import EventType
from sparkdl.launch.task import RankContext
from sparkdl.models import WEIGHTS, build_model, freeze, load_matching, save_model
from sparkdl.stages import Laps
from sparkdl.rank.callbacks import Callback, Callbacks, LoopState
from sparkdl.rank.checkpoints import load_latest, save_checkpoint
from sparkdl.rank.reader import ShardPlan, ShardReader

log = logging.getLogger(__name__)

LOSSES = ("cross_entropy",)


@dataclass(frozen=True)
class TrainSpec:
    """Everything a rank needs (small and picklable; data and models stay in the lake)."""

    train_path: str
    validation_path: str
    model_spec: Dict[str, Any]
    train: TrainConfig
    checkpoint_dir: str
    model_dir: str
    init_from: Optional[str] = None
    callbacks: Tuple[Callback, ...] = ()
    features: str = "features"
    label: str = "label"
    loss: str = "cross_entropy"

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r}: use one of {LOSSES}")


def lr_scale(size: int, how: str) -> float:
    return {"linear": float(size), "sqrt": math.sqrt(size), "none": 1.0}[how]


def _optimizer(name: str, params, lr: float, weight_decay: float):
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _task_cpus() -> int:
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        return max(1, int(ctx.cpus())) if ctx is not None else 1
    except Exception:
        return 1


def parameter_digest(model) -> str:
    """A hash of every parameter's bytes: equal digests mean identical parameters."""
    h = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _allreduce_sums(values: List[float], name: str) -> List[float]:
    import horovod.torch as hvd
    import torch

    return hvd.allreduce(torch.tensor(values, dtype=torch.float64), op=hvd.Sum, name=name).tolist()


def evaluate(model, reader: ShardReader, device, batch_size: int, epoch: int) -> Dict[str, float]:
    """Loss and accuracy over every validation row of every rank."""
    import torch
    import torch.nn.functional as F

    model.eval()
    loss_sum = correct = count = 0.0
    with torch.no_grad():
        for x, y in reader.all_rows(batch_size):
            x, y = x.to(device), y.to(device)
            out = model(x).float()
            loss_sum += float(F.cross_entropy(out, y, reduction="sum"))
            correct += float((out.argmax(1) == y).sum())
            count += len(y)
    loss_sum, correct, count = _allreduce_sums([loss_sum, correct, count], f"val.{epoch}")
    return {"val_loss": loss_sum / max(count, 1), "val_accuracy": correct / max(count, 1), "val_rows": int(count)}


def _loss_function(name: str):
    import torch.nn.functional as F

    return {"cross_entropy": F.cross_entropy}[name]


def _build(spec: TrainSpec, ctx: RankContext, device, lr: float):
    """The model (fine-tuned from ``init_from`` when set, with frozen parameters) and its
    optimizer at ``lr``."""
    import torch

    t = spec.train
    model = build_model(spec.model_spec)
    if spec.init_from:
        state = torch.load(Path(spec.init_from) / WEIGHTS, map_location="cpu", weights_only=True)
        loaded, skipped = load_matching(model, state)
        if ctx.is_chief:
            ctx.report(EventType.LOG, level="info", message=f"fine-tuning from {spec.init_from}: {len(loaded)} "
                                                            f"tensors loaded, {len(skipped)} new {skipped[:6]}")
    frozen = freeze(model, t.fine_tune.freeze)
    model.to(device)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    base_opt = _optimizer(t.optimizer.name, [p for _, p in named], lr, t.optimizer.weight_decay)
    return model, base_opt, named, frozen


def _resume(spec: TrainSpec, ctx: RankContext, model, base_opt) -> Tuple[int, List[Dict[str, Any]]]:
    """Rank 0 loads the latest complete checkpoint; every rank gets its state by broadcast."""
    import horovod.torch as hvd
    import torch

    start_epoch, history = 0, []
    if ctx.is_chief:
        state = load_latest(Path(spec.checkpoint_dir))
        if state is not None:
            model.load_state_dict(state["model"])
            base_opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
            start_epoch, history = int(state["epoch"]), list(state["history"])
            ctx.report(EventType.LOG, level="info", message=f"resuming from the checkpoint of epoch {start_epoch}")
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(base_opt, root_rank=0)
    return hvd.broadcast_object((start_epoch, history), root_rank=0, name="resume")


def _train_epoch(state: LoopState, callbacks: Callbacks, model, opt, reader: ShardReader, loss_fn, device, t,
                 scaler, amp_dtype) -> Tuple[float, int, float]:
    """One epoch of steps; returns (summed loss, rows, seconds) of this rank."""
    import torch

    model.train()
    k = t.allreduce.backward_passes_per_step
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64)
    rows = 0
    for step, (x, y) in enumerate(reader.epoch(state.epoch)):
        state.step = step
        for hook in callbacks.on_step_start_hooks:
            hook(state)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(model(x).float(), y)
        scaled = loss / k
        (scaler.scale(scaled) if scaler else scaled).backward()
        if (step + 1) % k == 0:
            if scaler:
                opt.synchronize()
                with opt.skip_synchronize():
                    scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad()
        loss_sum += loss.detach().double() * len(y)
        rows += len(y)
        if state.first_step_at is None:
            state.first_step_at = time.time()
        for hook in callbacks.on_step_end_hooks:
            hook(state)
    return float(loss_sum), rows, time.perf_counter() - t0


def train_rank(spec: TrainSpec, ctx: RankContext) -> Dict[str, Any]:
    """Train on this rank; rank 0 returns the history. Every rank returns its parameter digest."""
    import horovod.torch as hvd
    import torch

    t = spec.train
    laps = Laps(ctx.startup)
    callbacks = Callbacks(spec.callbacks)
    torch.set_num_threads(_task_cpus())
    torch.manual_seed(t.seed * 1000 + ctx.rank)
    device = torch.device(ctx.device)
    lr = t.optimizer.lr * lr_scale(ctx.size, t.optimizer.lr_scaling)  # scaled for the world size
    model, base_opt, named, frozen = _build(spec, ctx, device, lr)
    laps.lap("model_and_optimizer")
    start_epoch, history = _resume(spec, ctx, model, base_opt)
    laps.lap("resume_and_broadcast")

    k = t.allreduce.backward_passes_per_step
    compression = hvd.Compression.fp16 if t.allreduce.compression == "fp16" else hvd.Compression.none
    opt = hvd.DistributedOptimizer(base_opt, named_parameters=named, compression=compression,
                                   backward_passes_per_step=k, op=hvd.Average)
    plan = ShardPlan.for_dataset(spec.train_path, ctx.size, t.batch_size, multiple_of=k)
    to_tensors = lambda x, y: (torch.from_numpy(x), torch.from_numpy(y))  # noqa: E731
    reader = ShardReader(spec.train_path, ctx.rank, ctx.size, plan, t.loader.shuffle_buffer, t.seed,
                         t.loader.prefetch_batches, spec.features, spec.label, to_tensors)
    val_reader = ShardReader(spec.validation_path, ctx.rank, ctx.size, plan, 0, t.seed, 0,
                             spec.features, spec.label, to_tensors)
    laps.lap("shard_plan")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.mixed_precision)
    scaler = torch.amp.GradScaler("cuda") if (amp_dtype is torch.float16 and device.type == "cuda") else None
    if ctx.is_chief:
        ctx.report(EventType.LOG, level="info", message=(
            f"{ctx.size} ranks x {plan.steps} steps/epoch x batch {t.batch_size} (shards {plan.rows_per_shard} rows); "
            f"lr {lr:g}; compression {t.allreduce.compression}; accumulation {k}; "
            f"precision {t.mixed_precision}; device {device}; frozen {len(frozen)} tensors"))

    state = LoopState(rank=ctx.rank, size=ctx.size, attempt=ctx.attempt, epochs=t.epochs, startup=laps,
                      epoch=start_epoch, steps_per_epoch=plan.steps, history=history, report=ctx.report)
    loss_fn = _loss_function(spec.loss)
    callbacks.fire("on_train_start", state)
    for epoch in range(start_epoch + 1, t.epochs + 1):
        state.epoch = epoch
        loss_sum, rows, seconds = _train_epoch(state, callbacks, model, opt, reader, loss_fn, device, t, scaler,
                                               amp_dtype)
        total_loss, total_rows = _allreduce_sums([loss_sum, float(rows)], f"train.{epoch}")
        metrics = evaluate(model, val_reader, device, max(t.batch_size, 1024), epoch)
        entry = {"epoch": epoch, "loss": total_loss / max(total_rows, 1), **metrics,
                 "samples_per_sec": total_rows / max(seconds, 1e-9), "seconds": seconds,
                 "steps": plan.steps, "attempt": ctx.attempt}
        history.append(entry)
        callbacks.fire("on_epoch_end", state)
        if ctx.is_chief:
            save_checkpoint(Path(spec.checkpoint_dir), epoch,
                            {"model": model.state_dict(), "optimizer": base_opt.state_dict(),
                             "rng": torch.get_rng_state(), "history": history},
                            before_rename=lambda tmp: callbacks.fire("before_checkpoint_commit", state, tmp))
            ctx.report(EventType.EPOCH, **{k2: (round(v, 5) if isinstance(v, float) else v) for k2, v in entry.items()})
    callbacks.fire("on_train_end", state)
    if ctx.is_chief:
        save_model(model, spec.model_spec, Path(spec.model_dir))
    return {"rank": ctx.rank, "digest": parameter_digest(model), "steps_per_epoch": plan.steps,
            "rows_per_shard": plan.rows_per_shard, "device": str(device), "pid": os.getpid(),
            "first_step_at": state.first_step_at or time.time(), "extras": state.extras,
            "history": history if ctx.is_chief else None}
