"""Executor side of the barrier stage: one task becomes one Horovod rank.

Each task derives the same host plan from the barrier tasks' addresses; the rank-0
task runs Horovod's rendezvous server (for this job's ranks only: see
:mod:`sparkdl.launch.rendezvous`) and shares its port through the driver's event
channel (Spark's ``allGather`` would cost a second: it polls once a second); every task
exports the HOROVOD_* variables, calls ``hvd.init()`` over Gloo, reports that it did (rank
0 then closes the rendezvous) and runs the user function. Failures are sent to the
driver at once with their traceback tail.
"""
from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional

from sparkdl.config import LaunchConfig
from sparkdl.launch.devices import select_device, task_resources
from sparkdl.launch.events import EventClient, EventType
from sparkdl.launch.failures import classify_rank_exception
from sparkdl.launch.plan import RankSlot, host_plan, hosts_string, interface_for, resolve_ip
from sparkdl.stages import Laps

log = logging.getLogger(__name__)

TRACEBACK_TAIL_LINES = 25


@dataclass(frozen=True)
class LaunchSettings:
    """What every task needs from the driver (small and picklable)."""

    event_address: Optional[str]
    token: str
    launch: LaunchConfig = LaunchConfig()
    attempt: int = 1


@dataclass
class RankContext:
    """What the user function gets: its place in the world, its device, and a way to report."""

    slot: RankSlot
    attempt: int
    device: str
    events: EventClient
    #: Seconds each launch step took on this rank (rendezvous, imports, hvd.init), so the
    #: user function can add its own and report where time to the first step went.
    startup: Dict[str, float] = field(default_factory=dict)

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


def _report_error(events: EventClient, exc: BaseException, in_user_code: bool) -> None:
    events.send(EventType.ERROR, exception=f"{type(exc).__name__}: {exc}", traceback=traceback_tail(exc),
                kind=classify_rank_exception(exc, in_user_code).value)


RENDEZVOUS_PORT = "rendezvous_port"


def _close_rendezvous_when_all_initialized(events: EventClient, rank: int, size: int, server,
                                           timeout_s: float) -> None:
    """Every rank reports that ``hvd.init()`` returned; rank 0, which hosts the rendezvous,
    waits for all of them and stops it: nobody needs it any longer."""
    if rank != 0:
        events.put(f"initialized.{rank}", True)
        return
    for other in range(1, size):
        events.get_value(f"initialized.{other}", timeout_s)
    server.stop()


def run_barrier_task(fn: Callable[[RankContext], Any], settings: LaunchSettings,
                     _rows: Iterator[Any]) -> Iterator[bytes]:
    """Body of each barrier task (used with ``rdd.barrier().mapPartitions``)."""
    import cloudpickle
    from pyspark import BarrierTaskContext

    ctx = BarrierTaskContext.get()
    pid = ctx.partitionId()
    laps = Laps()
    events = EventClient(settings.event_address, settings.token, rank=pid)
    server = None
    reported = False
    try:
        plan = host_plan([info.address for info in ctx.getTaskInfos()])
        slot = plan[pid]
        events.rank = slot.rank
        events.send(EventType.STARTED, partition=pid, host=slot.hostname, pid=os.getpid(), attempt=settings.attempt)
        laps.lap("host_plan")
        chief = next(s for s in plan if s.rank == 0)
        chief_ip = resolve_ip(chief.hostname)
        if slot.rank == 0:
            from sparkdl.launch.rendezvous import GuardedRendezvous

            server = GuardedRendezvous(chief_ip, {resolve_ip(s.hostname) for s in plan})
            server.init(hosts_string(plan), len(plan))
            port = server.port
            events.put(RENDEZVOUS_PORT, port)
        else:
            port = int(events.get_value(RENDEZVOUS_PORT, settings.launch.rendezvous_timeout_s))
        laps.lap("rendezvous")
        my_ip = resolve_ip(slot.hostname)
        iface = interface_for(my_ip)
        env = {
            "HOROVOD_GLOO_RENDEZVOUS_ADDR": chief_ip,
            "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port),
            "HOROVOD_CONTROLLER": "gloo",
            "HOROVOD_CPU_OPERATIONS": "gloo",
            "HOROVOD_GLOO_TIMEOUT_SECONDS": str(int(settings.launch.rendezvous_timeout_s)),
            **slot.env(),
            **settings.launch.env,
        }
        if iface:
            env["HOROVOD_GLOO_IFACE"] = iface
        os.environ.update(env)

        import horovod.torch as hvd
        import torch

        laps.lap("import_torch_horovod")
        device, note = select_device(task_resources(), torch.cuda.is_available(),
                                     torch.cuda.device_count() if torch.cuda.is_available() else 0,
                                     hvd.nccl_built())
        if note:
            events.send(EventType.LOG, level="warning", message=note)
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        hvd.init()
        laps.lap("hvd_init")
        if hvd.rank() != slot.rank or hvd.size() != slot.size:
            raise RuntimeError(f"hvd.init() gave rank {hvd.rank()}/{hvd.size()}, plan said {slot.rank}/{slot.size}")
        _close_rendezvous_when_all_initialized(events, slot.rank, slot.size, server,
                                               settings.launch.rendezvous_timeout_s)
        rc = RankContext(slot, settings.attempt, device, events, laps.seconds)
        try:
            result = fn(rc)
        except BaseException as exc:
            # Report before hvd.shutdown(): the shutdown makes every peer fail too, and the
            # driver must hear this rank's own error first.
            _report_error(events, exc, in_user_code=True)
            reported = True
            raise
        finally:
            hvd.shutdown()
        events.send(EventType.DONE)
        yield cloudpickle.dumps((slot.rank, result))
    except BaseException as exc:
        if not reported:
            _report_error(events, exc, in_user_code=False)
        raise
    finally:
        if server is not None:
            server.stop()
        events.close()
