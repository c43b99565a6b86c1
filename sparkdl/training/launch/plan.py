"""The rank plan from the barrier tasks' real addresses, for either backend (pure logic,
no Spark, no JVM).

Every task computes the same plan from ``BarrierTaskContext.getTaskInfos()``, so the
placement is right on a multi-host cluster: ranks on one host are contiguous, and
local/cross ranks follow Horovod's assignment (which torch.distributed's local ranks
match). Each backend turns a slot into its own settings.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence


@dataclass(frozen=True)
class RankSlot:
    """Where one barrier task sits among the ranks."""

    partition: int
    hostname: str
    rank: int
    size: int
    local_rank: int
    local_size: int
    cross_rank: int
    cross_size: int


def host_of(address: str) -> str:
    """'host:port' (or '[v6]:port') → host."""
    if address.startswith("["):
        return address[1:address.index("]")]
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address


def host_plan(task_addresses: Sequence[str]) -> List[RankSlot]:
    """One RankSlot per partition, in partition order.

    Hosts are ordered by their first partition; within a host, partitions keep their
    order. Ranks are numbered host by host, as Horovod's ``get_host_assignments`` does.
    """
    hosts = [host_of(a) for a in task_addresses]
    order: List[str] = []
    members: Dict[str, List[int]] = {}
    for pid, h in enumerate(hosts):
        if h not in members:
            order.append(h)
            members[h] = []
        members[h].append(pid)
    size = len(hosts)
    cross_size_at = {}  # local_rank -> number of hosts having that local rank
    for h in order:
        for lr in range(len(members[h])):
            cross_size_at[lr] = cross_size_at.get(lr, 0) + 1
    slots: Dict[int, RankSlot] = {}
    rank = 0
    cross_seen: Dict[int, int] = {}
    for h in order:
        for lr, pid in enumerate(members[h]):
            cr = cross_seen.get(lr, 0)
            cross_seen[lr] = cr + 1
            slots[pid] = RankSlot(pid, h, rank, size, lr, len(members[h]), cr, cross_size_at[lr])
            rank += 1
    return [slots[p] for p in range(size)]


def hosts_string(plan: Sequence[RankSlot]) -> str:
    """The plan as 'host:slots,...' (Horovod's hosts string)."""
    counts: Dict[str, int] = {}
    for s in sorted(plan, key=lambda s: s.rank):
        counts[s.hostname] = counts.get(s.hostname, 0) + 1
    return ",".join(f"{h}:{n}" for h, n in counts.items())


def resolve_ip(host: str) -> str:
    """Hostname or IP → IPv4/IPv6 address string."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return socket.gethostbyname(host)


def interface_for(ip: str, interfaces: Optional[Dict[str, List[str]]] = None) -> Optional[str]:
    """Name of the network interface that carries ``ip`` (the NIC that reaches the other tasks).

    ``interfaces`` maps interface names to their addresses; by default it is read with psutil.
    """
    if interfaces is None:
        import psutil

        interfaces = {name: [a.address.split("%")[0] for a in addrs]
                      for name, addrs in psutil.net_if_addrs().items()}
    for name, addrs in interfaces.items():
        if ip in addrs:
            return name
    if ipaddress.ip_address(ip).is_loopback:
        return next((n for n, addrs in interfaces.items() if "127.0.0.1" in addrs or "::1" in addrs), None)
    return None


def route_address(host: str, port: int) -> str:
    """This machine's address on its route to ``host`` (no packet is sent); its hostname's
    address when there is no route."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((socket.gethostbyname(host), port))
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostbyname(socket.gethostname())
