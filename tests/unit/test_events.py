
from sparkdl.launch.driver import error_from_spark
from sparkdl.launch.errors import TrainingError
from sparkdl.launch.events import EventClient, EventServer


def test_events_round_trip_and_wrong_token_is_ignored():
    with EventServer("127.0.0.1", "secret") as server:
        intruder = EventClient(server.address, "wrong", rank=9)
        intruder.send("epoch", epoch=99)
        client = EventClient(server.address, "secret", rank=1)
        client.send("epoch", epoch=1, loss=0.5)
        event = server.get(timeout=5)
        assert event["type"] == "epoch" and event["rank"] == 1 and event["loss"] == 0.5
        assert "token" not in event
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
        assert server.get(timeout=5)["type"] == "started"
