"""How a launch's ranks share its few small values: rank 0's rendezvous port, and "every
rank has joined the group".

Through the driver's event channel where every executor reaches the driver (a classic
session: a millisecond each), or through Spark's own barrier ``allGather``/``barrier``
where they may not (a Spark Connect client: about a second each, as Spark's barrier
coordinator is polled once a second). The driver picks one for all ranks: both sides of
an exchange must use the same. A barrier call has no timeout of its own; the driver's
``train.launch.start_timeout_s`` bounds the launch either way.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from sparkdl.training.launch.events import EventClient

#: ``LaunchSettings.exchange`` values.
THROUGH_DRIVER = "driver"
THROUGH_SPARK = "spark"


class Exchange(ABC):
    """Small values shared by one launch's ranks."""

    @abstractmethod
    def from_chief(self, key: str, value: Any, timeout_s: float) -> Any:
        """Rank 0 gives ``value`` (others pass None); every rank returns rank 0's value."""

    @abstractmethod
    def all_arrived(self, key: str, timeout_s: float) -> None:
        """Called by every rank; rank 0 returns once every rank has called it."""


class DriverExchange(Exchange):
    """Values put to and got from the driver's event server. ``prefix`` keeps a launch's
    values apart from an earlier one's under the same server (a launcher that restarts
    its ranks itself)."""

    def __init__(self, events: EventClient, rank: int, size: int, prefix: str = ""):
        self.events, self.rank, self.size, self.prefix = events, rank, size, prefix

    def from_chief(self, key: str, value: Any, timeout_s: float) -> Any:
        if self.rank == 0:
            self.events.put(self.prefix + key, value)
            return value
        return self.events.get_value(self.prefix + key, timeout_s)

    def all_arrived(self, key: str, timeout_s: float) -> None:
        if self.rank != 0:
            self.events.put(f"{self.prefix}{key}.{self.rank}", True)
            return
        for other in range(1, self.size):
            self.events.get_value(f"{self.prefix}{key}.{other}", timeout_s)


class SparkExchange(Exchange):
    """Values gathered through the barrier task context (no connection to the driver)."""

    def __init__(self, context, rank: int):
        self.context, self.rank = context, rank

    def from_chief(self, key: str, value: Any, timeout_s: float) -> Any:
        mine = json.dumps({"key": key, "rank": self.rank, "value": value if self.rank == 0 else None})
        gathered = [json.loads(m) for m in self.context.allGather(mine)]  # in partition order, not rank order
        return next(g["value"] for g in gathered if g["rank"] == 0 and g["key"] == key)

    def all_arrived(self, key: str, timeout_s: float) -> None:
        self.context.barrier()


def exchange_for(kind: str, events: EventClient, context, rank: int, size: int) -> Exchange:
    """The exchange the driver chose (``THROUGH_DRIVER`` or ``THROUGH_SPARK``)."""
    return SparkExchange(context, rank) if kind == THROUGH_SPARK else DriverExchange(events, rank, size)
