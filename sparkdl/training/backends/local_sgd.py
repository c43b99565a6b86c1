"""Local SGD (Lin et al., "Don't use large mini-batches, use local SGD"): after
``warmup_steps`` of ordinary gradient averaging, each rank steps on its own gradients
and the ranks average their parameters every ``period`` steps, so a step sends nothing
and every ``period``-th sends the model once.

The torch backend averages with torch's own averagers (``PeriodicModelAverager``, or
``HierarchicalModelAverager`` when ``host_period`` also averages within each host);
Horovod's :class:`HorovodAverager` keeps the same schedule with one grouped allreduce.
At each epoch's end the ranks average once more, buffers included, so validation,
checkpoints and the saved model see one model. Each rank's optimizer state stays its
own, and checkpoints keep every rank's.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List

log = logging.getLogger(__name__)


def averaged_tensors(net) -> List[Any]:
    """What an epoch-end average covers: the trainable parameters and the floating-point
    buffers (batch-norm statistics, which each rank updates on its own batches)."""
    return _trainable(net) + [b for b in net.buffers() if b.is_floating_point()]


def host_groups(hosts: str) -> int:
    """Ranks per host of a plan ``host:slots,...``; hierarchical averaging needs the same
    number on every host (its groups are contiguous ranks of one size)."""
    counts = {int(part.rsplit(":", 1)[1]) for part in hosts.split(",")}
    if len(counts) != 1:
        raise ValueError(f"train.local_sgd.host_period needs the same number of ranks on every host, and the plan "
                         f"is {hosts}: remove train.local_sgd.host_period, or give every host as many slots")
    return counts.pop()


def _trainable(net) -> List[Any]:
    return [p for p in net.parameters() if p.requires_grad]


class TorchLocalSgd:
    """torch's averagers on the default process group, over ``net``'s trainable parameters."""

    def __init__(self, cfg, net, hosts: str, size: int):
        from collections import OrderedDict

        from torch.distributed.algorithms.model_averaging import averagers, hierarchical_model_averager

        self.params = _trainable(net)
        self.warmup_steps = cfg.warmup_steps
        if cfg.host_period is None:
            self.averager = averagers.PeriodicModelAverager(period=cfg.period, warmup_steps=cfg.warmup_steps)
        else:
            per_host = host_groups(hosts)
            if per_host == 1:
                log.warning("train.local_sgd.host_period: every host has one rank, so only the global average runs")
            groups = OrderedDict([(cfg.host_period, per_host), (cfg.period, size)])
            self.averager = hierarchical_model_averager.HierarchicalModelAverager(groups, cfg.warmup_steps)

    def syncing_gradients(self) -> bool:
        return self.averager.step < self.warmup_steps

    def after_step(self) -> None:
        self.averager.average_parameters(self.params)

    def average_now(self, net) -> None:
        import torch.distributed as dist
        from torch.distributed.algorithms.model_averaging import utils

        utils.average_parameters(iter(averaged_tensors(net)), dist.group.WORLD)

    def state_dict(self) -> Dict[str, Any]:
        return {"step": self.averager.step}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.averager.step = int(state["step"])


class HorovodAverager:
    """The same schedule as torch's ``PeriodicModelAverager`` (average after step
    ``warmup_steps`` and every ``period`` steps from there), with Horovod's grouped
    allreduce, over ``net``'s trainable parameters."""

    def __init__(self, cfg, net):
        self.params = _trainable(net)
        self.period, self.warmup_steps = cfg.period, cfg.warmup_steps
        self.step = 0

    def syncing_gradients(self) -> bool:
        return self.step < self.warmup_steps

    def after_step(self) -> None:
        if self.step >= self.warmup_steps and (self.step - self.warmup_steps) % self.period == 0:
            _horovod_average([p.data for p in self.params], "local_sgd")
        self.step += 1

    def average_now(self, net) -> None:
        _horovod_average([t.data for t in averaged_tensors(net)], "local_sgd.epoch")

    def state_dict(self) -> Dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.step = int(state["step"])


def _horovod_average(tensors: List[Any], name: str) -> None:
    import horovod.torch as hvd

    if tensors:
        hvd.grouped_allreduce_(tensors, op=hvd.Average, name=name)
