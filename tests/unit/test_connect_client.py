"""What a Spark Connect client needs without a SparkContext: the event spool in the lake,
the launch exchange through Spark's barrier context, slots from the server's settings,
and the remote endpoint in the config and on the command line."""
import json
import threading

import pytest

from sparkdl.core.config.loading import load_config
from sparkdl.core.errors import ConfigError
from sparkdl.core.session import redacted, slots_from_conf
from sparkdl.training.launch.events import EventClient, EventServer, EventType
from sparkdl.training.launch.exchange import SparkExchange


def test_a_rank_that_cannot_connect_spools_and_the_driver_follows(tmp_path):
    spool = tmp_path / "events" / "attempt-1"
    with EventServer("127.0.0.1", "tok", spool=str(spool)) as server:
        # nobody listens on port 1: refused at once, so the rank falls back to the spool
        client = EventClient("127.0.0.1:1", "tok", rank=1, connect_timeout_s=0.5, spool=str(spool))
        assert client.spooling
        client.send(EventType.STARTED, host="h")
        client.send(EventType.EPOCH, epoch=1, loss=0.25)
        first, second = server.get(timeout=1), server.get(timeout=1)
        assert (first.type, second.type, second.get("loss"), second.rank) == (
            EventType.STARTED, EventType.EPOCH, 0.25, 1)
        assert second.received is not None and server.get(timeout=0.2) is None
        client.close()


def test_the_follower_waits_for_whole_lines_and_drops_foreign_ones(tmp_path):
    with EventServer("127.0.0.1", "tok", spool=str(tmp_path)) as server:
        line = EventClient(None, "tok", rank=0)  # no driver address, no spool: logs only
        assert not line.spooling
        whole = b'{"type": "epoch", "rank": 0, "time": 1.0, "token": "tok", "epoch": 3}\n'
        with open(tmp_path / "0.jsonl", "ab") as f:
            f.write(b'{"type": "epoch", "rank": 0, "time": 1.0, "token": "other", "epoch": 9}\n')
            f.write(whole[:20])
            f.flush()
            assert server.get(timeout=0.2) is None  # a foreign token, and half a line
            f.write(whole[20:])
            f.flush()
            event = server.get(timeout=0.5)
        assert event.type is EventType.EPOCH and event.get("epoch") == 3


def test_a_missing_spool_directory_is_no_error(tmp_path):
    with EventServer("127.0.0.1", "tok", spool=str(tmp_path / "not-yet")) as server:
        assert server.get(timeout=0.1) is None


class _BarrierContext:
    """Spark's barrier context for three tasks in one process: allGather answers in
    partition order once every task has called it."""

    def __init__(self, n):
        self.n, self.lock, self.messages = n, threading.Condition(), {}
        self.barrier_calls = 0

    def task(self, partition):
        outer = self

        class Task:
            def allGather(self, message):
                with outer.lock:
                    outer.messages[partition] = message
                    outer.lock.notify_all()
                    outer.lock.wait_for(lambda: len(outer.messages) == outer.n, timeout=5)
                    return [outer.messages[p] for p in range(outer.n)]

            def barrier(self):
                outer.barrier_calls += 1

        return Task()


def test_the_spark_exchange_gives_every_rank_rank_zeros_value():
    ctx = _BarrierContext(3)
    plan = {0: 2, 1: 0, 2: 1}  # partition -> rank: rank 0 is not partition 0
    got = {}

    def rank(partition):
        r = plan[partition]
        got[r] = SparkExchange(ctx.task(partition), r).from_chief("port", 4242 if r == 0 else None, 5)

    threads = [threading.Thread(target=rank, args=(p,)) for p in range(3)]
    [t.start() for t in threads]
    [t.join(10) for t in threads]
    assert got == {0: 4242, 1: 4242, 2: 4242}
    assert all(json.loads(m)["value"] in (None, 4242) for m in ctx.messages.values())
    SparkExchange(ctx.task(0), 2).all_arrived("initialized", 5)
    assert ctx.barrier_calls == 1


@pytest.mark.parametrize("conf, slots", [
    ({"spark.master": "local-cluster[3,2,1024]"}, 6),
    ({"spark.master": "local-cluster[2,4,1024]", "spark.task.cpus": "2"}, 4),
    ({"spark.master": "local[3]"}, 3),
    ({"spark.master": "local"}, 1),
    ({"spark.master": "local[*]"}, None),  # the server's CPUs: not known to a client
    ({"spark.master": "yarn", "spark.executor.instances": "4", "spark.executor.cores": "8", "spark.task.cpus": "4"},
     8),
    ({"spark.master": "spark://m:7077", "spark.cores.max": "6"}, 6),
    ({"spark.master": "k8s://https://api:443"}, None),
])
def test_slots_come_from_the_servers_settings_where_they_say(conf, slots):
    assert slots_from_conf(conf.get) == slots


def test_a_connect_url_in_logs_hides_its_token():
    assert redacted("sc://h:443/;use_ssl=true;token=abc123;x=1") == "sc://h:443/;use_ssl=true;token=***;x=1"


def test_spark_remote_is_validated_and_set_from_the_command_line(tmp_path):
    from sparkdl.cli import _config, build_parser

    args = build_parser().parse_args(["run", "conf/adult.yaml", "--lake", str(tmp_path), "--remote",
                                      "sc://localhost:15002"])
    assert _config(args).spark.remote == "sc://localhost:15002"
    with pytest.raises(ConfigError, match="spark.remote.*sc://host:port"):
        load_config("conf/adult.yaml", ["spark.remote=localhost:15002"])


class _Report:
    def __init__(self, stage_id, num_tasks, done_tasks, done):
        self.stage_id, self.num_tasks, self.num_completed_tasks, self.done = stage_id, num_tasks, done_tasks, done


def test_connect_progress_reports_read_like_the_status_tracker():
    from sparkdl.core.progress import ConnectStages

    stages = ConnectStages(spark=None)
    stages([_Report(7, 8, 6, False), _Report(6, 4, 4, True)], 2, "op", False)
    assert stages.getActiveStageIds() == [7]
    info = stages.getStageInfo(7)
    assert (info.numTasks, info.numCompletedTasks, info.numActiveTasks) == (8, 6, 2)
    stages([_Report(7, 8, 8, True)], 0, "op", True)  # the operation ended
    assert stages.getActiveStageIds() == [] and stages.getStageInfo(7) is None


def test_a_rank_error_in_a_connect_failure_is_its_python_exception():
    from sparkdl.training.launch.driver import error_from_spark

    text = ("Job aborted due to stage failure: Could not recover from a failed barrier ResultStage. Most recent "
            "failure reason: Stage failed because barrier task ResultTask(7, 1) finished unsuccessfully.\n"
            "org.apache.spark.api.python.PythonException: [PYTHON_EXCEPTION] An exception was thrown from the "
            "Python worker: Traceback (most recent call last):\n  File \"train.py\", line 20, in g\n"
            "ValueError: boom from rank\n SQLSTATE: 38000\n\n\nJVM stacktrace:\norg.apache.spark.SparkException\n"
            "\tat org.apache.spark.scheduler.DAGScheduler.abortStage(DAGScheduler.scala:4568)")
    err = error_from_spark(RuntimeError(text))
    assert err.exception == "ValueError: boom from rank"
    assert err.traceback_tail.endswith("ValueError: boom from rank") and "line 20, in g" in err.traceback_tail
