"""The testbed itself: hosts that reach each other by name, networks that stay apart,
links that are shaped, cut and restored, hosts that die, and nothing left behind."""
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hosts.testbed import TESTBED_RANGE, leftovers

REPO = Path(__file__).resolve().parents[2]
CONNECT = ("import socket, sys\n"
           "try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()\n"
           "except OSError as e:\n    print(type(e).__name__); sys.exit(1)\n")
LISTEN = ("import socket, sys\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(8); print('listening', flush=True)\n"
          "while True:\n    s.accept()[0].close()\n")


def _connects(host, target, port=9000, timeout_s=2.0) -> bool:
    return host.run([sys.executable, "-c", CONNECT, target, str(port), str(timeout_s)], timeout=30).returncode == 0


@pytest.fixture(scope="module")
def three(bed):
    a, b = bed.host("alpha"), bed.host("beta", ("lan", "side"))
    c = bed.host("gamma", ("side",))
    server = b.popen([sys.executable, "-u", "-c", LISTEN, "9000"], stdout=subprocess.PIPE)
    assert server.stdout.readline().strip() == b"listening"
    return a, b, c


def test_hosts_have_their_own_names_and_addresses_and_reach_each_other_by_name(three):
    a, b, c = three
    assert a.run(["hostname"], timeout=10).stdout.strip() == "alpha"
    for host in three:
        for address, _, _ in host.links.values():
            assert ipaddress.ip_address(address) in TESTBED_RANGE
    assert f"{b.address('lan')} beta" in a.run(["cat", "/etc/hosts"], timeout=10).stdout
    assert f"{b.address('side')} beta" in c.run(["cat", "/etc/hosts"], timeout=10).stdout
    assert _connects(a, "beta") and _connects(c, "beta")


def test_networks_stay_apart_and_there_is_no_way_out(three):
    a, b, c = three
    assert not _connects(c, a.ip)  # gamma is on the side network only, and beta does not route
    route = a.run(["ip", "route"], timeout=10).stdout
    assert "default" not in route


def test_a_cut_link_drops_packets_until_it_is_restored(three):
    a, b, _ = three
    a.cut()
    try:
        out = a.run([sys.executable, "-c", CONNECT, b.address("lan"), "9000", "1"], timeout=30)
        assert out.returncode == 1 and "timeout" in out.stdout.lower()  # dropped, not refused
    finally:
        a.restore()
    assert _connects(a, "beta", timeout_s=5)


def test_a_shaped_link_has_a_token_bucket_both_ways(three):
    a, _, _ = three
    a.shape(100e6)
    try:
        inside = a.run(["tc", "qdisc", "show", "dev", a.interface()], timeout=10).stdout
        outside = subprocess.run(["tc", "qdisc", "show", "dev", a.links["lan"][2]], capture_output=True,
                                 text=True, timeout=10).stdout
        assert "tbf" in inside and "rate 100Mbit" in inside and "rate 100Mbit" in outside
    finally:
        a.unshape()
    assert "tbf" not in a.run(["tc", "qdisc", "show", "dev", a.interface()], timeout=10).stdout


def test_killing_a_host_kills_everything_in_it(bed):
    host = bed.host("doomed")
    host.popen(["sleep", "600"]), host.popen(["sh", "-c", "sleep 600 & sleep 600"])
    time.sleep(0.5)
    assert len(host.pids()) >= 3
    host.kill()
    assert host.pids() == []


OWNER = """
import json, sys, time
sys.path.insert(0, {repo!r})
from tests.hosts.testbed import Testbed
bed = Testbed()
for name in ("one", "two"):
    bed.host(name).popen(["sleep", "600"])
print(json.dumps({{"prefix": bed.prefix}}), flush=True)
{end}
"""


@pytest.mark.parametrize("how", ["exception", "SIGINT", "SIGTERM", "SIGKILL"])
def test_nothing_is_left_behind_however_the_owner_ends(hosts_permitted, how):
    end = "raise RuntimeError('a failed test')" if how == "exception" else "time.sleep(600)"
    owner = subprocess.Popen([sys.executable, "-c", OWNER.format(repo=str(REPO), end=end)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    prefix = json.loads(owner.stdout.readline())["prefix"]
    assert leftovers(prefix)["namespaces"] and leftovers(prefix)["processes"]
    if how != "exception":
        owner.send_signal(getattr(signal, how))
    owner.wait(timeout=60)
    if how == "SIGKILL":  # no chance to clean up: the next testbed sweeps what it left
        assert leftovers(prefix)["namespaces"]
        from tests.hosts.testbed import Testbed

        Testbed().close()
    assert leftovers(prefix) == {"namespaces": [], "links": [], "processes": []}
    assert not any(p.startswith(prefix) for p in os.listdir("/etc/netns")) if os.path.isdir("/etc/netns") else True


def test_without_the_privilege_it_says_so_instead_of_hanging(hosts_permitted):
    out = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-c",
                          f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
                          "from tests.hosts.testbed import check_permitted\ncheck_permitted()"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "TestbedUnavailable" in out.stderr and "need root, or CAP_SYS_ADMIN" in out.stderr
