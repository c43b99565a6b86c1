import pytest

from sparkdl.core.errors import TrainingError
from sparkdl.training.launch.driver import error_from_spark
from sparkdl.training.launch.events import Event, EventClient, EventServer, EventType


def test_events_round_trip_and_wrong_token_is_ignored():
    with EventServer("127.0.0.1", "secret") as server:
        intruder = EventClient(server.address, "wrong", rank=9)
        intruder.send("epoch", epoch=99)
        client = EventClient(server.address, "secret", rank=1)
        client.send("epoch", epoch=1, loss=0.5)
        event = server.get(timeout=5)
        assert event.type is EventType.EPOCH and event.rank == 1 and event.get("loss") == 0.5
        assert "token" not in event.fields
        assert server.get(timeout=0.3) is None
        assert server.refused == ["127.0.0.1"]  # the intruder's connection was closed and logged
        intruder.send("epoch", epoch=100)  # nothing more is read from it
        assert server.get(timeout=0.3) is None
        client.close(), intruder.close()


def test_client_without_driver_does_not_raise():
    EventClient("127.0.0.1:1", "t", rank=0, connect_timeout_s=0.5).send("epoch", epoch=1)


def test_training_error_pickles_with_rank_and_tail():
    import pickle

    err = pickle.loads(pickle.dumps(TrainingError(3, "ValueError: bad", "line1\nline2")))
    assert err.rank == 3 and "rank 3 failed: ValueError: bad" in str(err) and "line2" in str(err)


def test_py4j_wall_becomes_python_traceback_tail():
    wall = ("An error occurred while calling o1.collect.\n: org.apache.spark.SparkException: Job aborted\n"
            "Traceback (most recent call last):\n  File \"x.py\", line 3, in f\n    boom()\n"
            "ZeroDivisionError: division by zero\n\n\tat org.apache.spark.api.python.BasePythonRunner...")
    err = error_from_spark(RuntimeError(wall))
    assert err.exception == "ZeroDivisionError: division by zero"
    assert "boom()" in err.traceback_tail and "org.apache" not in err.traceback_tail


def test_server_listens_on_one_address_and_advertises_another():
    with EventServer("0.0.0.0", "t", advertise="127.0.0.1") as server:
        assert server.address.startswith("127.0.0.1:")
        EventClient(server.address, "t", rank=0).send("started")
        assert server.get(timeout=5).type is EventType.STARTED


def test_ranks_exchange_values_through_the_driver_without_polling():
    import threading
    import time

    from sparkdl.core.errors import ExchangeError

    with EventServer("127.0.0.1", "t") as server:
        waiter, giver = EventClient(server.address, "t", rank=1), EventClient(server.address, "t", rank=0)
        got = {}
        t = threading.Thread(target=lambda: got.update(port=waiter.get_value("rendezvous_port", 10)))
        t0 = time.monotonic()
        t.start()
        time.sleep(0.2)
        giver.put("rendezvous_port", 4242)
        t.join(5)
        assert got == {"port": 4242} and time.monotonic() - t0 < 1.0  # answered on arrival, not on a poll
        giver.send("epoch", epoch=1)  # events still flow; exchanges never show up as events
        assert server.get(timeout=2).type is EventType.EPOCH and server.get(timeout=0.2) is None
        with pytest.raises(ExchangeError, match="waited 0s for 'finished.3'"):
            waiter.get_value("finished.3", 0.3)
    with pytest.raises(ExchangeError, match="cannot reach the driver's event server at 127.0.0.1:1"):
        EventClient("127.0.0.1:1", "t", rank=2, connect_timeout_s=0.5).get_value("rendezvous_port", 1)


def test_one_encoder_and_decoder_drop_bad_lines_and_unknown_types():
    line = Event(EventType.EPOCH, 2, 123.5, {"loss": 0.25}).encode("tok")
    assert Event.decode(line, "tok") == Event(EventType.EPOCH, 2, 123.5, {"loss": 0.25})
    assert Event.decode(line, "other") is None  # another run's token
    assert Event.decode(b'{"type": "epoc", "token": "tok"}\n', "tok") is None  # a typo'd type is not an event
    assert Event.decode(b"not json\n", "tok") is None
    with pytest.raises(ValueError):
        EventClient(None, "tok", rank=0).send("epoc")  # and cannot be sent

