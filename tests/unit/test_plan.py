import pytest
from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts

from sparkdl.training.backends.horovod import horovod_env
from sparkdl.training.launch.plan import host_of, host_plan, hosts_string, interface_for


@pytest.mark.parametrize("addresses", [
    ["10.0.0.1:4000", "10.0.0.1:4001"],
    ["a:1", "b:1", "a:2"],
    ["b:1", "a:1", "b:2", "c:9", "a:3"],
    ["h:1"],
])
def test_plan_matches_horovods_own_assignment(addresses):
    plan = host_plan(addresses)
    expected = {s.rank: s for s in get_host_assignments(parse_hosts(hosts_string(plan)), len(plan))}
    assert sorted(s.rank for s in plan) == list(range(len(addresses)))
    for pid, slot in enumerate(plan):
        assert slot.partition == pid
        assert slot.hostname == host_of(addresses[pid])
        ref = expected[slot.rank]
        assert (slot.hostname, slot.local_rank, slot.local_size, slot.cross_rank, slot.cross_size, slot.size) == \
            (ref.hostname, ref.local_rank, ref.local_size, ref.cross_rank, ref.cross_size, ref.size)


def test_ranks_on_one_host_are_contiguous():
    plan = host_plan(["a:1", "b:1", "a:2", "b:2"])
    assert [s.rank for s in plan] == [0, 2, 1, 3]
    assert horovod_env(plan[2])["HOROVOD_LOCAL_RANK"] == "1"


def test_host_of_handles_ipv6():
    assert host_of("[::1]:7077") == "::1"
    assert host_of("host:1") == "host"


def test_interface_for_picks_the_nic_with_the_address():
    ifaces = {"lo": ["127.0.0.1"], "eth0": ["10.1.2.3"], "eth1": ["192.168.0.5"]}
    assert interface_for("10.1.2.3", ifaces) == "eth0"
    assert interface_for("127.0.1.1", ifaces) == "lo"
    assert interface_for("10.9.9.9", ifaces) is None
