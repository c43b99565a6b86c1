"""The rank loop's seam: a few events, and callbacks that act on them.

A callback overrides the events it needs; the loop calls only those (no cost per step
for a callback that ignores steps). Callbacks read :class:`LoopState` and write only
what they own: their results go in ``state.extras``, which comes back to the driver with
the rank's result. Callbacks run on every rank (``state.rank`` says which), are pickled
to the executors with the rest of the training spec, and must therefore be small.

Events, in order: ``on_train_start`` (model, optimizer and readers ready, after any
resume), then per step ``on_step_start`` and ``on_step_end``, per epoch
``on_epoch_end`` (after validation; ``state.history[-1]`` is the epoch's entry), on
rank 0 ``before_checkpoint_commit`` (the checkpoint is written under a temporary name
and not yet renamed into place), then ``on_epoch_reported`` (the epoch is checkpointed
and the driver has its metrics: where a callback waits for the driver's answer), and
finally ``on_train_end``.

A callback with state that must survive a restart returns it from ``state_dict`` (and
takes it back in ``load_state_dict``): it is saved in every checkpoint and restored on
every rank when a run resumes. A callback that sets ``state.stop_reason`` in
``on_epoch_end`` or ``on_epoch_reported`` ends training after that epoch; it must set it
on every rank alike (decide on rank 0 and ``state.broadcast`` the decision).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from sparkdl.core.stopwatch import Laps


class LoopEvent(str, enum.Enum):
    """The loop's events, in order; each is the name of the :class:`Callback` method it calls."""

    ON_TRAIN_START = "on_train_start"
    ON_STEP_START = "on_step_start"
    ON_STEP_END = "on_step_end"
    ON_EPOCH_END = "on_epoch_end"
    BEFORE_CHECKPOINT_COMMIT = "before_checkpoint_commit"
    ON_EPOCH_REPORTED = "on_epoch_reported"
    ON_TRAIN_END = "on_train_end"


@dataclass
class LoopState:
    """What the loop shares with callbacks."""

    rank: int
    size: int
    attempt: int
    epochs: int
    #: The rank's launch stopwatch (host plan, rendezvous, imports, hvd.init, setup, ...).
    startup: Laps
    epoch: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    history: List[Dict[str, Any]] = field(default_factory=list)
    #: Wall-clock time of this rank's first optimizer step in this attempt.
    first_step_at: Optional[float] = None
    #: Callbacks' results, returned to the driver with the rank's result.
    extras: Dict[str, Any] = field(default_factory=dict)
    #: Sends an event to the driver (``report(EventType.LOG, level=..., message=...)``).
    report: Callable[..., None] = lambda *a, **k: None
    #: Rank 0's object on every rank: ``broadcast(obj, name)`` (a collective: all ranks call it).
    broadcast: Callable[[Any, str], Any] = lambda obj, name: obj
    #: The network and the optimizer that steps it (the learning rate is in its param_groups).
    model: Any = None
    optimizer: Any = None
    #: Set (on every rank alike) to end training after this epoch; says why.
    stop_reason: Optional[str] = None
    #: The step's loss (a detached 0-d tensor on the device), set before ``on_step_end``;
    #: None on a rank that computes no loss (a pipeline's earlier stages).
    loss: Any = None
    #: The step's batch as the reader gave it (tensors on the CPU: features [, indices], labels),
    #: set before ``on_step_start``.
    batch: Any = None
    #: Data-parallel replicas (``size`` unless ranks split one model between them).
    replicas: int = 0
    #: The rank that reports step progress: the first whose steps compute the loss.
    reporting_rank: int = 0

    @property
    def data_parallel_size(self) -> int:
        return self.replicas or self.size

    def log(self, message: str, level: str = "info") -> None:
        """A log line on the driver."""
        from sparkdl.training.launch.events import EventType

        self.report(EventType.LOG, level=level, message=message)


class Callback:
    """Base class: one no-op method per event. Override the ones you need."""

    def on_train_start(self, state: LoopState) -> None:
        pass

    def on_step_start(self, state: LoopState) -> None:
        pass

    def on_step_end(self, state: LoopState) -> None:
        pass

    def on_epoch_end(self, state: LoopState) -> None:
        pass

    def before_checkpoint_commit(self, state: LoopState, tmp_path: Path) -> None:
        pass

    def on_epoch_reported(self, state: LoopState) -> None:
        pass

    def on_train_end(self, state: LoopState) -> None:
        pass

    def state_dict(self) -> Optional[Dict[str, Any]]:
        """State to keep in checkpoints (None: nothing)."""
        return None

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass


class Callbacks:
    """Dispatches each event to the callbacks that override it, in the order given."""

    def __init__(self, callbacks: Sequence[Callback]):
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"{cb!r} is not a sparkdl.training.rank.callbacks.Callback")
        self._hooks = {event: [getattr(cb, event.value) for cb in callbacks
                               if getattr(type(cb), event.value) is not getattr(Callback, event.value)]
                       for event in LoopEvent}
        self.on_step_start_hooks = self._hooks[LoopEvent.ON_STEP_START]
        self.on_step_end_hooks = self._hooks[LoopEvent.ON_STEP_END]

        self._all = list(callbacks)

    def fire(self, event: LoopEvent, state: LoopState, *args: Any) -> None:
        for hook in self._hooks[LoopEvent(event)]:
            hook(state, *args)

    def state_dict(self) -> Dict[str, Any]:
        """Each stateful callback's state, keyed by position and class."""
        out = {}
        for i, cb in enumerate(self._all):
            st = cb.state_dict()
            if st is not None:
                out[f"{i}:{type(cb).__name__}"] = st
        return out

    def load_state_dict(self, states: Dict[str, Any]) -> None:
        for i, cb in enumerate(self._all):
            key = f"{i}:{type(cb).__name__}"
            if key in states:
                cb.load_state_dict(states[key])


class StartupTimer(Callback):
    """Times the launch up to the first optimizer step on each rank (the first batch's
    arrival and the first step, after the launch's own laps) and returns the laps in
    ``state.extras["startup"]``; rank 0 also logs them. Used by the benchmarks."""

    def on_step_start(self, state: LoopState) -> None:
        if state.first_step_at is None and "first_batch" not in state.startup.seconds:
            state.startup.lap("first_batch")

    def on_step_end(self, state: LoopState) -> None:
        if "first_step" not in state.startup.seconds:
            state.startup.lap("first_step")
            if state.rank == 0:
                state.log("startup (s): " + ", ".join(f"{k} {v:.2f}" for k, v in state.startup.seconds.items()))

    def on_train_end(self, state: LoopState) -> None:
        state.extras["startup"] = dict(state.startup.seconds)
