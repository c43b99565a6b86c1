"""Rank side of a launch: one barrier task (or one process another launcher started,
:mod:`~sparkdl.training.launch.process_rank`) becomes one rank of the chosen backend
(Horovod or torch.distributed: :mod:`sparkdl.training.backends`). :func:`run_rank` is
the rank's life whatever started it; a :class:`Placement` says what started it.

Each task derives the same host plan from the barrier tasks' addresses; the rank-0
task hosts the backend's rendezvous and shares its port (:mod:`sparkdl.training.launch.exchange`:
through the driver's event channel, or Spark's ``allGather`` where executors cannot reach
the driver); every task joins the group, runs the user function, and leaves. Failures
are sent to the driver at once with their traceback tail. The stage is a barrier
``mapInArrow`` (classic and Spark Connect alike); each rank's pickled result comes back
as a few small rows (:data:`RESULT_SCHEMA`).
"""
from __future__ import annotations

import logging
import os
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from sparkdl.core.config import LaunchConfig
from sparkdl.core.stopwatch import Laps
from sparkdl.training.backends.base import Peers
from sparkdl.training.launch.devices import select_device, task_resources
from sparkdl.training.launch.events import EventClient, EventType
from sparkdl.training.launch.exchange import THROUGH_DRIVER, Exchange, exchange_for
from sparkdl.training.launch.failures import classify_rank_exception, memory_hint
from sparkdl.training.launch.plan import RankSlot, host_plan, hosts_string, interface_for, resolve_ip

log = logging.getLogger(__name__)

TRACEBACK_TAIL_LINES = 25

#: The barrier stage's rows: a rank's pickled result in parts of at most RESULT_CHUNK bytes
#: (Spark Connect streams results in batches; small rows keep every batch small).
RESULT_SCHEMA = "rank int, part int, chunk binary"
RESULT_CHUNK = 1 << 20


@dataclass(frozen=True)
class LaunchSettings:
    """What every task needs from the driver (small and picklable)."""

    event_address: Optional[str]
    token: str
    launch: LaunchConfig = LaunchConfig()
    attempt: int = 1
    #: ``horovod`` or ``torch`` (``train.backend``), and torch's ``train.strategy``.
    backend: str = "horovod"
    strategy: str = "ddp"
    #: How ranks share launch values (``driver``: the event channel; ``spark``: allGather).
    exchange: str = THROUGH_DRIVER
    #: A lake directory ranks write their events to when they cannot reach the driver.
    spool: Optional[str] = None


@dataclass
class RankContext:
    """What the user function gets: its place in the world, its device, and a way to report."""

    slot: RankSlot
    attempt: int
    device: str
    events: EventClient
    #: The joined backend: broadcasts, sums, and the model and optimizer wrapping.
    backend: Any = None
    #: Seconds each launch step took on this rank (rendezvous, imports, joining the group),
    #: so the user function can add its own and report where time to the first step went.
    startup: Dict[str, float] = field(default_factory=dict)
    #: CPU cores this rank may use (its task's ``spark.task.cpus``; under another launcher,
    #: the machine's cores shared among the ranks on it).
    cpus: int = 1

    @property
    def rank(self) -> int:
        return self.slot.rank

    @property
    def size(self) -> int:
        return self.slot.size

    @property
    def local_rank(self) -> int:
        return self.slot.local_rank

    @property
    def partition(self) -> int:
        return self.slot.partition

    @property
    def is_chief(self) -> bool:
        return self.slot.rank == 0

    def report(self, type: EventType, **fields: Any) -> None:
        """Send an event (e.g. ``EventType.EPOCH``) to the driver, which logs it as it arrives."""
        self.events.send(type, **fields)


def traceback_tail(exc: BaseException, lines: int = TRACEBACK_TAIL_LINES) -> str:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _report_error(events: EventClient, exc: BaseException, in_user_code: bool, attempt: int) -> None:
    hint = memory_hint(exc)
    text = " ".join(str(exc).split())  # one line: the driver's summaries show the first
    events.send(EventType.ERROR, exception=f"{type(exc).__name__}: {text}" + (f" ({hint})" if hint else ""),
                traceback=traceback_tail(exc), kind=classify_rank_exception(exc, in_user_code).value,
                attempt=attempt)


def result_batch(rank: int, payload: bytes):
    """A rank's pickled result as ``RESULT_SCHEMA`` rows."""
    import pyarrow as pa

    parts = [payload[i:i + RESULT_CHUNK] for i in range(0, len(payload), RESULT_CHUNK)] or [b""]
    return pa.RecordBatch.from_arrays(
        [pa.array([rank] * len(parts), pa.int32()), pa.array(range(len(parts)), pa.int32()),
         pa.array(parts, pa.binary())], names=["rank", "part", "chunk"])


class Placement(ABC):
    """Where a rank comes from: its launcher's number for it, every rank's address, the
    resources it was given and how ranks share launch values. A Spark barrier task is one
    placement; a process started by torchrun, mpirun or srun is another
    (:mod:`sparkdl.training.launch.process_rank`)."""

    #: The launcher's number for this rank (a barrier task's partition), 0..size-1.
    partition: int
    #: The launch attempt this rank belongs to (the driver's, plus a launcher's own restarts).
    attempt: int
    #: Whether MPI started this rank (``mpirun``): the backend may let MPI join the ranks.
    mpi: bool = False

    @abstractmethod
    def addresses(self, events: EventClient) -> List[str]:
        """Every rank's ``host:port`` (or host), in launcher order."""

    @abstractmethod
    def exchange(self, events: EventClient, slot: RankSlot) -> Exchange:
        """How this launch's ranks share rank 0's rendezvous port."""

    def resources(self) -> Dict[str, List[str]]:
        """Accelerators assigned to this rank, as {name: addresses}."""
        return {}

    @abstractmethod
    def cpus(self, slot: RankSlot) -> int:
        """CPU cores this rank may use."""


class BarrierPlacement(Placement):
    """A task of the barrier stage (``BarrierTaskContext``)."""

    def __init__(self, settings: LaunchSettings):
        from pyspark import BarrierTaskContext

        self.context = BarrierTaskContext.get()
        self.partition, self.attempt, self.kind = self.context.partitionId(), settings.attempt, settings.exchange

    def addresses(self, events: EventClient) -> List[str]:
        return [info.address for info in self.context.getTaskInfos()]

    def exchange(self, events: EventClient, slot: RankSlot) -> Exchange:
        return exchange_for(self.kind, events, self.context, slot.rank, slot.size)

    def resources(self) -> Dict[str, List[str]]:
        return task_resources()

    def cpus(self, slot: RankSlot) -> int:
        return max(1, int(self.context.cpus()))


def run_rank(fn: Callable[[RankContext], Any], settings: LaunchSettings, placement: Placement) -> Tuple[int, Any]:
    """Join the ranks of one launch, run ``fn`` and leave; (rank, fn's result). Every error
    is sent to the driver with its traceback tail before it is raised."""
    pid = placement.partition
    laps = Laps()
    events = EventClient(settings.event_address, settings.token, rank=pid, spool=settings.spool)
    backend = None
    started = reported = False
    try:
        plan = host_plan(placement.addresses(events))
        slot = plan[pid]
        events.rank = slot.rank
        events.send(EventType.STARTED, partition=pid, host=slot.hostname, pid=os.getpid(), attempt=placement.attempt,
                    spooled=events.spooling)
        laps.lap("host_plan")
        from sparkdl.training.backends import backend_named

        backend = backend_named(settings.backend, settings.strategy)
        chief = next(s for s in plan if s.rank == 0)
        my_ip = resolve_ip(slot.hostname)
        peers = Peers(slot.rank, slot.size, slot.local_rank, resolve_ip(chief.hostname), interface_for(my_ip),
                      dict(settings.launch.env), hosts_string(plan),
                      frozenset(resolve_ip(s.hostname) for s in plan), slot, placement.mpi)
        import torch

        laps.lap("import_torch")
        device, note = select_device(placement.resources(), torch.cuda.is_available(),
                                     torch.cuda.device_count() if torch.cuda.is_available() else 0,
                                     backend.gpu_collectives(), backend.name)
        if note:
            events.send(EventType.LOG, level="warning", message=note)
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        started = True
        backend.start(peers, placement.exchange(events, slot), settings.launch.rendezvous_timeout_s,
                      settings.launch.progress_timeout_s, device)
        laps.lap("join_group")
        if backend.world() != (slot.rank, slot.size):
            raise RuntimeError(f"{backend.name} gave rank/size {backend.world()}, the plan said "
                               f"{(slot.rank, slot.size)}")
        rc = RankContext(slot, placement.attempt, device, events, backend, laps.seconds,
                         placement.cpus(slot))
        ok = False
        try:
            result = fn(rc)
            ok = True
        except BaseException as exc:
            # Report before leaving the group: leaving makes every peer fail too, and the
            # driver must hear this rank's own error first.
            _report_error(events, exc, in_user_code=True, attempt=placement.attempt)
            reported = True
            raise
        finally:
            started = False
            backend.stop(ok)
        events.send(EventType.DONE)
        return slot.rank, result
    except BaseException as exc:
        if not reported:
            _report_error(events, exc, in_user_code=False, attempt=placement.attempt)
        raise
    finally:
        if started:  # failed while joining: leave what was set up (the rendezvous, a store)
            try:
                backend.stop(False)
            except Exception as e:  # the error being raised is the one to report
                log.warning("rank %s could not leave the %s group cleanly: %s", pid, backend.name, e)
        events.close()


def run_barrier_task(fn: Callable[[RankContext], Any], settings: LaunchSettings,
                     _batches: Iterator[Any]) -> Iterator[Any]:
    """Body of each barrier task (``DataFrame.mapInArrow(..., barrier=True)``)."""
    import cloudpickle

    rank, result = run_rank(fn, settings, BarrierPlacement(settings))
    yield result_batch(rank, cloudpickle.dumps(result))
