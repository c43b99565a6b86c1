import subprocess
import sys

import pytest

from sparkdl.cli import main


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "sparkdl.cli", "--help"], capture_output=True, text=True, check=True)
    for cmd in ("prepare", "train", "run", "score", "runs"):
        assert cmd in out.stdout


def test_console_script_is_installed():
    from pathlib import Path

    script = Path(sys.executable).parent / "sparkdl"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "prepare" in out.stdout


def test_missing_arguments_exit_2():
    with pytest.raises(SystemExit) as e:
        main(["train"])
    assert e.value.code == 2


def _result(split):
    from pathlib import Path

    from sparkdl.run_metrics import RunMetrics
    from sparkdl.supervisor import RunResult

    metrics = RunMetrics(run_id="r1", history=[], train={"epochs": 0, "ranks": 2}, validation={}, attempts=[],
                         dataset={}, test={"split": split, "accuracy": 0.85, "auc": 0.9, "rows": 10})
    return RunResult("r1", Path("/lake/runs/r1"), metrics)


def test_held_out_results_name_the_split_they_came_from():
    from sparkdl.cli import result_lines
    from sparkdl.report import summary_text

    lines = result_lines(_result("validation")).splitlines()
    assert "evaluated_on=validation" in lines and "validation_accuracy=0.8500" in lines
    assert not any(line.startswith("test_") for line in lines)  # no data.test: never called "test"
    summary = summary_text(_result("validation").metrics)
    assert "held out, validation split (the job has no data.test): accuracy 0.8500" in summary
    assert "test" not in summary.replace("data.test", "")
    assert "test_accuracy=0.8500" in result_lines(_result("test"))


def test_runs_list_names_the_held_out_split(tmp_path, capsys):
    from sparkdl.cli import main
    from sparkdl.lake import COMMIT_MARKER
    from sparkdl.rundir import RunDir

    run = RunDir(tmp_path / "runs" / "r1")
    run.path.mkdir(parents=True)
    _result("validation").metrics.save(run.metrics)
    (run.path / COMMIT_MARKER).write_text("now")
    assert main(["runs", "list", "--lake", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "validation_accuracy 0.8500" in listed and "test_accuracy" not in listed
