"""Which executor hosts the driver can still reach, named in the launch's errors where
ranks never start or the cluster's slots vanish (a cut link, a host that died).

The driver remembers every executor endpoint (its block manager's ``host:port``) it has
seen in this process: once Spark has given up on an executor it no longer lists it, and
the error must still say where it was.
"""
from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, List, Set, Tuple

log = logging.getLogger(__name__)

#: How long a probe waits for a TCP connection to an executor.
PROBE_TIMEOUT_S = 2.0

Endpoint = Tuple[str, int]
_seen: Set[Endpoint] = set()
_seen_lock = threading.Lock()


def executor_endpoints(spark) -> Set[Endpoint]:
    """The block-manager endpoints registered now (classic sessions; empty for Connect),
    remembered for :func:`known_endpoints`."""
    from sparkdl.core.session import is_connect

    if is_connect(spark):
        return set()
    try:
        infos = spark.sparkContext._jsc.sc().statusTracker().getExecutorInfos()
        now = {(str(i.host()), int(i.port())) for i in infos}
    except Exception as e:  # a private API moved: the errors lose their detail, nothing else
        log.debug("cannot list executors: %s", e)
        return set()
    with _seen_lock:
        _seen.update(now)
    return now


def known_endpoints(spark) -> Set[Endpoint]:
    """Every endpoint seen in this process, those Spark no longer lists included."""
    executor_endpoints(spark)
    with _seen_lock:
        return set(_seen)


def unreachable(endpoints: Iterable[Endpoint], timeout_s: float = PROBE_TIMEOUT_S) -> List[str]:
    """The hosts among ``endpoints`` that do not accept a TCP connection within ``timeout_s``
    (probed at once), sorted."""
    endpoints = sorted(set(endpoints))
    if not endpoints:
        return []

    def refuses(endpoint: Endpoint) -> bool:
        try:
            socket.create_connection(endpoint, timeout=timeout_s).close()
            return False
        except OSError:
            return True

    with ThreadPoolExecutor(max_workers=min(16, len(endpoints))) as pool:
        down = [e for e, bad in zip(endpoints, pool.map(refuses, endpoints)) if bad]
    return sorted({host for host, _ in down})


def network_note(endpoints: Iterable[Endpoint]) -> str:
    """A sentence naming the hosts among ``endpoints`` this process cannot reach, or ''."""
    hosts = unreachable(endpoints)
    if not hosts:
        return ""
    return (f" From this host, the executors on {', '.join(hosts)} do not answer within {PROBE_TIMEOUT_S:.0f}s: "
            f"the network between the driver and {'that host' if len(hosts) == 1 else 'those hosts'} is down, "
            f"or {'it is' if len(hosts) == 1 else 'they are'} gone.")
