"""The driver's bounded waits, with a stand-in for the Spark stage (the real one is in tests/cluster)."""
import threading
import time

from sparkdl.core.config import LaunchConfig
from sparkdl.core.errors import FailureKind, TrainingError, TrainingTimeoutError
from sparkdl.training.launch.driver import _watch
from sparkdl.training.launch.events import EventClient, EventServer
from sparkdl.training.launch.failures import root_cause


class _Stage(threading.Thread):
    """Stands in for the barrier stage's thread: runs until cancelled."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.error = None

    def run(self):
        self.stop.wait(30)

    def cancel(self):
        self.stop.set()


def test_a_rank_that_never_arrives_is_a_timeout_naming_it():
    stage = _Stage()
    stage.start()
    with EventServer("127.0.0.1", "t") as server:
        EventClient(server.address, "t", rank=0).send("started")
        t0 = time.monotonic()
        launch = LaunchConfig(start_timeout_s=1.0, cancel_grace_s=5)
        err = _watch(stage, server, 2, launch, lambda e: None, t0)
    assert isinstance(err, TrainingTimeoutError) and err.missing_ranks == [1]
    assert "1 of 2 ranks started" in str(err) and "train.launch.start_timeout_s" in str(err)
    assert time.monotonic() - t0 < 10 and stage.stop.is_set()


def test_silence_after_start_is_a_progress_timeout():
    stage = _Stage()
    stage.start()
    with EventServer("127.0.0.1", "t") as server:
        for r in (0, 1):
            EventClient(server.address, "t", rank=r).send("started")
        err = _watch(stage, server, 2, LaunchConfig(progress_timeout_s=1.0, cancel_grace_s=5),
                     lambda e: None, time.monotonic())
    assert isinstance(err, TrainingTimeoutError) and "train.launch.progress_timeout_s" in str(err)


def test_root_cause_beats_peer_symptoms():
    symptom = TrainingError(0, "HorovodInternalError: Horovod has been shut down", kind=FailureKind.PEER)
    cause = TrainingError(1, "ValueError: bad batch")
    assert root_cause([symptom, cause]) is cause
    assert root_cause([symptom]) is symptom


def test_events_sent_before_the_stage_ends_all_reach_a_slow_handler():
    stage = _Stage()
    seen = []

    def slow(event):  # a remote tracking server, say
        time.sleep(0.3)
        seen.append(event.get("epoch"))

    with EventServer("127.0.0.1", "t") as server:
        client = EventClient(server.address, "t", rank=0)
        client.send("started")
        for epoch in (1, 2, 3):
            client.send("epoch", epoch=epoch)
        stage.stop.set()
        stage.start()  # ends at once: the events are still queued
        err = _watch(stage, server, 1, LaunchConfig(), slow, time.monotonic())
    assert err is None and seen == [None, 1, 2, 3]


def _restarted_ranks(server, last_error: bool):
    """Two ranks of a launcher that restarts them: rank 1 fails in attempt 1, both start again
    in attempt 2, and there rank 0 fails too if ``last_error`` (events of different ranks
    may arrive in any order: the first error may come after the restart)."""
    ranks = [EventClient(server.address, "t", rank=r) for r in (0, 1)]
    for r in ranks:
        r.send("started", attempt=1)
    ranks[1].send("error", exception="InjectedFault: first", traceback="", kind="user", attempt=1)
    for r in ranks:
        r.send("started", attempt=2)
    if last_error:
        ranks[0].send("error", exception="ValueError: second", traceback="", kind="user", attempt=2)


def test_a_launcher_that_restarts_its_ranks_outlives_their_errors():
    launch = LaunchConfig(launcher="torchrun", launcher_restarts=1, cancel_grace_s=5)
    stage = _Stage()
    stage.start()
    with EventServer("127.0.0.1", "t") as server:
        _restarted_ranks(server, last_error=False)
        threading.Timer(1.5, stage.cancel).start()  # the launcher exits 0 after the restart
        assert _watch(stage, server, 2, launch, lambda e: None, time.monotonic(), until_exit=True) is None
    stage = _Stage()
    stage.error = RuntimeError("torchrun exited with code 1")
    stage.start()
    with EventServer("127.0.0.1", "t") as server:
        _restarted_ranks(server, last_error=True)
        threading.Timer(1.5, stage.cancel).start()
        err = _watch(stage, server, 2, launch, lambda e: None, time.monotonic(), until_exit=True)
    assert err.rank == 0 and "second" in str(err)  # the last attempt's error, not the one restarted past
