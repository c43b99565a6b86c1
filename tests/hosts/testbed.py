"""Several hosts on one machine: network namespaces on bridges, over ``ip`` and ``tc``.

A :class:`Testbed` owns everything it creates, all named with its own prefix
(``sdh<id>``): one bridge per network, one namespace per host, a veth pair per host
and network. Each host gets a hostname (its own UTS namespace) and an ``/etc/hosts``
of its own (``/etc/netns/<ns>/hosts``, which ``ip netns exec`` mounts) naming every
host it shares a network with. Addresses come from 198.18.0.0/15 only, on interfaces
the testbed made; no namespace has a default route, so nothing leaves the bridges.

Teardown kills every process in the testbed's namespaces and removes the namespaces,
links and files; it runs on ``close()``, on SIGTERM/SIGINT of the owning process, at
interpreter exit, and, for an owner killed outright, on the next testbed's start (each
testbed records its owner's pid).
"""
from __future__ import annotations

import atexit
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

log = logging.getLogger(__name__)

PREFIX = "sdh"
#: The test-bed address range (RFC 2544); every network is a /24 inside it.
TESTBED_RANGE = ipaddress.ip_network("198.18.0.0/15")
STATE_DIR = Path(os.environ.get("SPARKDL_TESTBED_STATE", "/run/sparkdl-testbeds"))
NETNS_ETC = Path("/etc/netns")
COMMAND_TIMEOUT_S = 30


class TestbedUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, or no CAP_SYS_ADMIN/CAP_NET_ADMIN)."""


def _ip(*args: str, ns: Optional[str] = None, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return out


def _tc(*args: str, ns: Optional[str] = None) -> None:
    cmd = ["ip", "netns", "exec", ns, "tc", *args] if ns else ["tc", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")


def check_permitted() -> None:
    """Raise :class:`TestbedUnavailable` with the reason and the fix where namespaces,
    bridges or ``tc`` cannot be used; return quietly where they can."""
    for tool in ("ip", "tc", "unshare"):
        if shutil.which(tool) is None:
            raise TestbedUnavailable(f"'{tool}' is not installed: the multi-host tests need iproute2 and "
                                     f"util-linux ('apt-get install iproute2 util-linux').")
    probe = f"{PREFIX}probe{os.getpid()}"
    out = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    if out.returncode != 0:
        raise TestbedUnavailable(
            f"cannot create a network namespace ({out.stderr.strip() or 'ip netns add failed'}; running as uid "
            f"{os.getuid()}). The multi-host tests need root, or CAP_SYS_ADMIN and CAP_NET_ADMIN in a container "
            f"started with --privileged.")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=COMMAND_TIMEOUT_S)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftovers(prefix: str = PREFIX) -> Dict[str, List[str]]:
    """Namespaces, links and processes named with ``prefix`` that exist now."""
    namespaces = [line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines()
                  if line.startswith(prefix) and not line.startswith(f"{PREFIX}probe")]
    links = [name for name in os.listdir("/sys/class/net") if name.startswith(prefix)]
    pids = []
    for ns in namespaces:
        pids += _ip("netns", "pids", ns, check=False).stdout.split()
    return {"namespaces": namespaces, "links": links, "processes": pids}


def sweep_abandoned() -> List[str]:
    """Tear down testbeds whose owning process is gone (killed before it could clean up)."""
    swept = []
    if not STATE_DIR.is_dir():
        return swept
    for state in STATE_DIR.glob("*.json"):
        try:
            record = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        if _alive(int(record.get("owner", 0))):
            continue
        _remove(record.get("prefix", ""), record.get("namespaces", []))
        state.unlink(missing_ok=True)
        swept.append(record.get("prefix", ""))
    return swept


def _kill_namespace(ns: str, grace_s: float = 5.0) -> None:
    pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p) and not _zombie(p)]
            time.sleep(0.1)
        if not pids:
            return


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _remove(prefix: str, namespaces: Sequence[str]) -> None:
    if not prefix.startswith(PREFIX):
        return
    for ns in namespaces:
        _kill_namespace(ns)
        _ip("netns", "del", ns, check=False)
        shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)
    for name in os.listdir("/sys/class/net"):
        if name.startswith(prefix):
            _ip("link", "del", name, check=False)


@dataclass
class Network:
    """One bridge and its /24."""

    name: str
    bridge: str
    subnet: ipaddress.IPv4Network
    index: int
    next_host: int = 10

    def allocate(self) -> str:
        address = str(self.subnet.network_address + self.next_host)
        self.next_host += 1
        return address


@dataclass
class Host:
    """One namespaced host: a name, an address on each of its networks, its processes."""

    bed: "Testbed"
    name: str
    ns: str
    #: network name → (address, interface in the host, the veth's other end on the bridge)
    links: Dict[str, tuple] = field(default_factory=dict)
    procs: List[subprocess.Popen] = field(default_factory=list)

    @property
    def ip(self) -> str:
        """The host's address on the testbed's first network where it has one (the
        network its Spark daemons bind and advertise), else on its own first."""
        first = next(iter(self.bed.networks))
        return self.links[first][0] if first in self.links else next(iter(self.links.values()))[0]

    def address(self, network: str) -> str:
        return self.links[network][0]

    def interface(self, network: Optional[str] = None) -> str:
        return self.links[network or next(iter(self.links))][1]

    def _wrap(self, cmd: Sequence[str]) -> List[str]:
        # its own hostname (a UTS namespace) and its own /etc/hosts (ip netns exec mounts it)
        return ["ip", "netns", "exec", self.ns, "unshare", "--uts", "sh", "-c",
                f'hostname {self.name} && exec "$@"', "sh", *cmd]

    def popen(self, cmd: Sequence[str], env: Optional[dict] = None, log_path: Optional[Path] = None,
              **kwargs) -> subprocess.Popen:
        """Start ``cmd`` inside this host (output to ``log_path`` when given)."""
        if log_path is not None:
            kwargs.setdefault("stdout", open(log_path, "ab"))
            kwargs.setdefault("stderr", subprocess.STDOUT)
        proc = subprocess.Popen(self._wrap(cmd), env=env, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, cmd: Sequence[str], timeout: float, env: Optional[dict] = None, check: bool = False,
            **kwargs) -> subprocess.CompletedProcess:
        """Run ``cmd`` inside this host to completion (bounded by ``timeout``)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self._wrap(cmd), env=env, timeout=timeout, check=check, **kwargs)

    def pids(self) -> List[int]:
        return [int(p) for p in _ip("netns", "pids", self.ns, check=False).stdout.split()]

    def kill(self) -> None:
        """Kill every process in this host (a host that dies, not a process)."""
        _kill_namespace(self.ns, grace_s=0.0)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def cut(self, network: Optional[str] = None) -> None:
        """Unplug this host from ``network`` (all of them by default): packets are dropped,
        connections stall as on a real failed link."""
        for net in ([network] if network else list(self.links)):
            _ip("link", "set", self.links[net][2], "down")

    def restore(self, network: Optional[str] = None) -> None:
        for net in ([network] if network else list(self.links)):
            _ip("link", "set", self.links[net][2], "up")

    def shape(self, rate_bit_s: float, network: Optional[str] = None) -> None:
        """Limit this host's link to ``rate_bit_s`` in both directions (token bucket filter
        on the host's interface and on the bridge's end of its veth)."""
        net = network or next(iter(self.links))
        _, inside, outside = self.links[net]
        # the bucket must hold a whole offloaded segment (64 KiB) and a kernel tick of traffic
        burst = max(256 * 1024, int(rate_bit_s / 8 / 100))
        spec = ["root", "tbf", "rate", f"{int(rate_bit_s)}bit", "burst", str(burst), "latency", "100ms"]
        _tc("qdisc", "replace", "dev", inside, *spec, ns=self.ns)
        _tc("qdisc", "replace", "dev", outside, *spec)

    def unshape(self, network: Optional[str] = None) -> None:
        net = network or next(iter(self.links))
        _, inside, outside = self.links[net]
        subprocess.run(["ip", "netns", "exec", self.ns, "tc", "qdisc", "del", "dev", inside, "root"],
                       capture_output=True, timeout=COMMAND_TIMEOUT_S)
        subprocess.run(["tc", "qdisc", "del", "dev", outside, "root"], capture_output=True, timeout=COMMAND_TIMEOUT_S)

    def bytes_sent(self, network: Optional[str] = None) -> int:
        """Bytes this host has sent on ``network`` (what the bridge's end received)."""
        outside = self.links[network or next(iter(self.links))][2]
        return int(Path(f"/sys/class/net/{outside}/statistics/rx_bytes").read_text())


class Testbed:
    """Hosts on bridges, all removed by :meth:`close` (or by the next testbed if the
    owner is killed outright)."""

    def __init__(self):
        check_permitted()
        sweep_abandoned()
        self.id = secrets.token_hex(2)
        self.prefix = f"{PREFIX}{self.id}"
        self.networks: Dict[str, Network] = {}
        self.hosts: Dict[str, Host] = {}
        self._closed = False
        self._lock = threading.Lock()
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self._state = STATE_DIR / f"{self.prefix}.json"
        self._record()
        atexit.register(self.close)
        self._previous_handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.close()
        previous = self._previous_handlers.get(signum)
        if callable(previous):
            previous(signum, frame)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise SystemExit(128 + signum)

    def _record(self) -> None:
        record = {"owner": os.getpid(), "prefix": self.prefix, "namespaces": [h.ns for h in self.hosts.values()]}
        self._state.write_text(json.dumps(record))

    def network(self, name: str) -> Network:
        """A bridge with the next /24 of 198.18.0.0/15 (created on first use)."""
        if name in self.networks:
            return self.networks[name]
        index = len(self.networks)
        subnets = list(TESTBED_RANGE.subnets(new_prefix=24))
        subnet = subnets[(index % 2) * 256 + index // 2]  # 198.18.0.0/24, 198.19.0.0/24, 198.18.1.0/24, ...
        bridge = f"{self.prefix}b{index}"
        _ip("link", "add", bridge, "type", "bridge")
        _ip("link", "set", bridge, "up")
        net = self.networks[name] = Network(name, bridge, subnet, index)
        return net

    def host(self, name: str, networks: Sequence[str] = ("lan",)) -> Host:
        """A new host named ``name`` with one interface on each of ``networks``."""
        ns = f"{self.prefix}-{name}"
        _ip("netns", "add", ns)
        host = self.hosts[name] = Host(self, name, ns)
        self._record()
        _ip("link", "set", "lo", "up", ns=ns)
        for i, net_name in enumerate(networks):
            net = self.network(net_name)
            outside = f"{self.prefix}h{len(self.hosts) - 1}n{net.index}"
            inside = f"eth{i}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns)
            _ip("link", "set", outside, "master", net.bridge)
            _ip("link", "set", outside, "up")
            address = net.allocate()
            _ip("addr", "add", f"{address}/{net.subnet.prefixlen}", "dev", inside, ns=ns)
            _ip("link", "set", inside, "up", ns=ns)
            host.links[net_name] = (address, inside, outside)
        self._write_hosts_files()
        return host

    def _write_hosts_files(self) -> None:
        for host in self.hosts.values():
            lines = ["127.0.0.1 localhost"]
            for other in self.hosts.values():
                shared = [n for n in self.networks if n in other.links and n in host.links]
                if shared:
                    lines.append(f"{other.address(shared[0])} {other.name}")
            directory = NETNS_ETC / host.ns
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "hosts").write_text("\n".join(lines) + "\n")

    def close(self) -> None:
        """Kill every process in every host; remove namespaces, links, files (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _remove(self.prefix, [h.ns for h in self.hosts.values()])
        for host in self.hosts.values():
            for proc in host.procs:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self._state.unlink(missing_ok=True)
        for sig, previous in self._previous_handlers.items():
            try:
                signal.signal(sig, previous)
            except (ValueError, TypeError):
                pass

    def __enter__(self) -> "Testbed":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
