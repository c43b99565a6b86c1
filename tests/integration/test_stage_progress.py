"""Progress of the Spark stages prepare and score run, from Spark's status tracker."""
import logging
import time

from sparkdl.core.config import ProgressConfig
from sparkdl.core.progress import SparkStageProgress


def _slow_job(spark, tasks=4, seconds=0.6):
    def slow(batches):
        for batch in batches:
            time.sleep(seconds)
            yield batch

    return spark.range(tasks, numPartitions=tasks).mapInArrow(slow, "id long").count()


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "sparkdl.core.progress"]


def test_a_long_stage_is_logged_with_its_tasks_and_a_short_one_is_not(spark_local, caplog):
    with caplog.at_level(logging.INFO, logger="sparkdl.core.progress"):
        with SparkStageProgress(spark_local, ProgressConfig(display="lines", lines_every_s=0.5), "prepare",
                                poll_s=0.1):
            assert _slow_job(spark_local) == 4
        long_lines = _lines(caplog)
        caplog.clear()
        with SparkStageProgress(spark_local, ProgressConfig(display="lines", lines_every_s=60), "prepare",
                                poll_s=0.1):
            _slow_job(spark_local, tasks=1, seconds=0.3)
    assert long_lines and all(line.startswith("prepare: stage ") and " tasks done, " in line for line in long_lines)
    assert _lines(caplog) == []


def test_a_stage_bar_shows_while_it_runs_and_is_cleared_after_and_display_off_polls_nothing(spark_local, capsys):
    with SparkStageProgress(spark_local, ProgressConfig(display="bar"), "score", poll_s=0.1):
        _slow_job(spark_local, tasks=2, seconds=0.5)
    frames = capsys.readouterr().err.split("\r")
    assert any(f.startswith("score: stage ") and "/2 [" in f for f in frames), frames
    assert frames[-2].strip() == "" and frames[-1] == ""  # the last frame blanks the line: no bar left behind
    with SparkStageProgress(spark_local, ProgressConfig(display="off"), "score") as quiet:
        assert quiet._thread is None
