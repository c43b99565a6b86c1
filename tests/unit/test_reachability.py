"""Which executor hosts answer from the driver: named in launch errors."""
import socket

from sparkdl.training.launch.reachability import network_note, unreachable


def test_hosts_that_do_not_accept_a_connection_are_named_and_those_that_do_are_not():
    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        closed.bind(("127.0.0.2", 0))  # bound, never listening: connections are refused
        up, down = listening.getsockname(), closed.getsockname()
        assert unreachable([up, down, down]) == ["127.0.0.2"]
        assert unreachable([up]) == [] and network_note([up]) == ""
        note = network_note([down])
        assert "the executors on 127.0.0.2 do not answer" in note and "that host is down" in note
