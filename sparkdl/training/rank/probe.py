"""What each rank holds and how it spends its steps, for the benchmarks: the bytes of the
parameters, gradients and optimizer state it holds (a DTensor's local part), its Python
worker's peak resident and virtual memory (``VmHWM``, ``VmPeak``: what a limit of
``spark.executor.pyspark.memory`` bounds), and the share of its steps spent outside its
layers' forward and backward (timed by module hooks): the optimizer, the loss, the
exchanges, and waiting, a pipeline's bubble among it."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Dict, List

from sparkdl.training.backends.torchdist import local_part
from sparkdl.training.rank.callbacks import Callback, LoopState


class RankProbe(Callback):
    """Each rank's memory and time outside its layers, written to ``<directory>/rank-<r>.json``."""

    def __init__(self, directory: str):
        self.directory = directory

    def on_train_start(self, state: LoopState) -> None:
        self._busy = self._in_steps = 0.0
        self._steps = 0.0
        self._handles = []
        self._starts: Dict[int, float] = {}
        for layer in _leaves(state.model):
            key = id(layer)
            self._handles += [
                layer.register_forward_pre_hook(lambda m, a, k=key: self._start(k)),
                layer.register_forward_hook(lambda m, a, o, k=key: self._stop(k)),
                layer.register_full_backward_pre_hook(lambda m, g, k=key: self._start(-k)),
                layer.register_full_backward_hook(lambda m, gi, go, k=key: self._stop(-k)),
            ]

    def _start(self, key: int) -> None:
        self._starts[key] = time.perf_counter()

    def _stop(self, key: int) -> None:
        began = self._starts.pop(key, None)
        if began is not None:
            self._busy += time.perf_counter() - began

    def on_step_start(self, state: LoopState) -> None:
        if state.step == 0:  # the last epoch's steps are the ones measured
            self._busy = self._in_steps = 0.0
            self._steps = 0.0
        self._step_began = time.perf_counter()

    def on_step_end(self, state: LoopState) -> None:
        self._steps += time.perf_counter() - self._step_began
        self._in_steps = self._busy  # what validation's forward passes add after the last step is not a step's

    def on_train_end(self, state: LoopState) -> None:
        for h in self._handles:
            h.remove()
        out = {"rank": state.rank, "state_bytes": _state_bytes(state.model, state.optimizer),
               "peak_rss_mib": _status("VmHWM"), "peak_virtual_mib": _status("VmPeak"),
               "outside_layers_share": round(1 - self._in_steps / max(self._steps, 1e-9), 3)}
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        (Path(self.directory) / f"rank-{state.rank}.json").write_text(json.dumps(out))


def _leaves(net) -> List[Any]:
    """The modules with parameters of their own (each layer once)."""
    return [m for m in net.modules() if any(True for _ in m.parameters(recurse=False))]


def _state_bytes(net, opt) -> int:
    """Bytes of the parameters, gradients and optimizer state this rank holds."""
    import torch

    total = 0
    for p in net.parameters():
        total += local_part(p).numel() * p.element_size()
        if p.grad is not None:
            total += local_part(p.grad).numel() * p.grad.element_size()
    for entry in opt.state.values():
        total += sum(local_part(v).numel() * v.element_size() for v in entry.values() if torch.is_tensor(v))
    return total


def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+)", text).group(1)) // 1024
