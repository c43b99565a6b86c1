"""The training loop on each rank (runs inside a barrier task, after ``hvd.init()``).

Parameters and optimizer state start identical on every rank (rank 0 broadcasts, after
resuming from the latest complete checkpoint if there is one); gradients are averaged
with Horovod's ring-allreduce (``DistributedOptimizer``), optionally fp16-compressed
and accumulated over several backward passes; mixed precision uses autocast. Every
rank runs the same number of steps per epoch, validation metrics are summed across
ranks, and rank 0 writes a checkpoint each epoch and the final model.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from sparkdl.config import TrainConfig
from sparkdl.launch.task import RankContext
from sparkdl.models import build_model, freeze, load_matching, save_model, WEIGHTS
from sparkdl.stages import Laps
from sparkdl.train.checkpoints import load_latest, save_checkpoint
from sparkdl.train.faults import FaultSpec
from sparkdl.train.reader import ShardPlan, ShardReader

log = logging.getLogger(__name__)


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
    fault: Optional[FaultSpec] = None
    features: str = "features"
    label: str = "label"
    extra: Dict[str, Any] = field(default_factory=dict)


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


def train_rank(spec: TrainSpec, ctx: RankContext) -> Dict[str, Any]:
    """Train on this rank; rank 0 returns the history. Every rank returns its parameter digest."""
    import horovod.torch as hvd
    import torch
    import torch.nn.functional as F

    t = spec.train
    laps = Laps(ctx.startup)
    torch.set_num_threads(_task_cpus())
    torch.manual_seed(t.seed * 1000 + ctx.rank)
    device = torch.device(ctx.device)
    model = build_model(spec.model_spec)
    if spec.init_from:
        state = torch.load(Path(spec.init_from) / WEIGHTS, map_location="cpu", weights_only=True)
        loaded, skipped = load_matching(model, state)
        if ctx.is_chief:
            ctx.report("log", level="info", message=f"fine-tuning from {spec.init_from}: {len(loaded)} tensors "
                                                    f"loaded, {len(skipped)} new {skipped[:6]}")
    frozen = freeze(model, t.freeze)
    model.to(device)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    base_opt = _optimizer(t.optimizer, [p for _, p in named], t.lr * lr_scale(ctx.size, t.lr_scaling), t.weight_decay)
    laps.lap("model_and_optimizer")

    start_epoch, history = 0, []
    if ctx.is_chief:
        state = load_latest(Path(spec.checkpoint_dir))
        if state is not None:
            model.load_state_dict(state["model"])
            base_opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
            start_epoch, history = int(state["epoch"]), list(state["history"])
            ctx.report("log", level="info", message=f"resuming from the checkpoint of epoch {start_epoch}")
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(base_opt, root_rank=0)
    start_epoch, history = hvd.broadcast_object((start_epoch, history), root_rank=0, name="resume")
    laps.lap("resume_and_broadcast")

    k = t.backward_passes_per_step
    compression = hvd.Compression.fp16 if t.compression == "fp16" else hvd.Compression.none
    opt = hvd.DistributedOptimizer(base_opt, named_parameters=named, compression=compression,
                                   backward_passes_per_step=k, op=hvd.Average)
    plan = ShardPlan.for_dataset(spec.train_path, ctx.size, t.batch_size, multiple_of=k)
    to_tensors = lambda x, y: (torch.from_numpy(x), torch.from_numpy(y))  # noqa: E731
    reader = ShardReader(spec.train_path, ctx.rank, ctx.size, plan, t.shuffle_buffer, t.seed, t.prefetch_batches,
                         spec.features, spec.label, to_tensors)
    laps.lap("shard_plan")
    val_reader = ShardReader(spec.validation_path, ctx.rank, ctx.size, plan, 0, t.seed, 0,
                             spec.features, spec.label, to_tensors)
    use_cuda = device.type == "cuda"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.mixed_precision)
    scaler = torch.amp.GradScaler("cuda") if (amp_dtype is torch.float16 and use_cuda) else None
    if ctx.is_chief:
        ctx.report("log", level="info", message=(
            f"{ctx.size} ranks x {plan.steps} steps/epoch x batch {t.batch_size} (shards {plan.rows_per_shard} rows); "
            f"lr {t.lr * lr_scale(ctx.size, t.lr_scaling):g}; compression {t.compression}; accumulation {k}; "
            f"precision {t.mixed_precision}; device {device}; frozen {len(frozen)} tensors"))

    first_step_at = None
    for epoch in range(start_epoch + 1, t.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), dtype=torch.float64)
        rows = 0
        for step, (x, y) in enumerate(reader.epoch(epoch)):
            if first_step_at is None:
                laps.lap("first_batch")
            if spec.fault is not None:
                spec.fault.at_step(ctx.rank, epoch, step, ctx.attempt)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = F.cross_entropy(model(x).float(), y)
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
            if first_step_at is None:
                first_step_at = time.time()
                laps.lap("first_step")
                if ctx.is_chief:
                    ctx.report("log", level="info", message="startup (s): " + ", ".join(
                        f"{k} {v:.2f}" for k, v in laps.seconds.items()))
        seconds = time.perf_counter() - t0
        total_loss, total_rows = _allreduce_sums([float(loss_sum), float(rows)], f"train.{epoch}")
        metrics = evaluate(model, val_reader, device, max(t.batch_size, 1024), epoch)
        entry = {"epoch": epoch, "loss": total_loss / max(total_rows, 1), **metrics,
                 "samples_per_sec": total_rows / max(seconds, 1e-9), "seconds": seconds,
                 "steps": plan.steps, "attempt": ctx.attempt}
        history.append(entry)
        if ctx.is_chief:
            hook = spec.fault.during_checkpoint(ctx.rank, epoch, ctx.attempt) if spec.fault else None
            save_checkpoint(Path(spec.checkpoint_dir), epoch,
                            {"model": model.state_dict(), "optimizer": base_opt.state_dict(),
                             "rng": torch.get_rng_state(), "history": history}, before_rename=hook)
            ctx.report("epoch", **{k2: (round(v, 5) if isinstance(v, float) else v) for k2, v in entry.items()})
    if ctx.is_chief:
        save_model(model, spec.model_spec, Path(spec.model_dir))
    return {"rank": ctx.rank, "digest": parameter_digest(model), "steps_per_epoch": plan.steps,
            "rows_per_shard": plan.rows_per_shard, "device": str(device), "pid": os.getpid(),
            "first_step_at": first_step_at or time.time(), "startup": laps.seconds,
            "history": history if ctx.is_chief else None}
