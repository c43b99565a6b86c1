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

    from sparkdl.core.run_metrics import RunMetrics
    from sparkdl.training.supervisor import RunResult

    metrics = RunMetrics(run_id="r1", history=[], train={"epochs": 0, "ranks": 2}, validation={}, attempts=[],
                         dataset={}, held_out={"split": split, "accuracy": 0.85, "auc": 0.9, "rows": 10})
    return RunResult("r1", Path("/lake/runs/r1"), metrics)


def test_held_out_results_name_the_split_they_came_from():
    from sparkdl.cli import result_lines
    from sparkdl.tracking.report import summary_text

    lines = result_lines(_result("validation")).splitlines()
    assert "evaluated_on=validation" in lines and "validation_accuracy=0.8500" in lines
    assert not any(line.startswith("test_") for line in lines)  # no data.test: never called "test"
    summary = summary_text(_result("validation").metrics)
    assert "held out, validation split (the job has no data.test): accuracy 0.8500" in summary
    assert "test" not in summary.replace("data.test", "")
    assert "test_accuracy=0.8500" in result_lines(_result("test"))


def test_runs_list_names_the_held_out_split(tmp_path, capsys):
    from sparkdl.cli import main
    from sparkdl.core.lake import COMMIT_MARKER
    from sparkdl.core.rundir import RunDir

    run = RunDir(tmp_path / "runs" / "r1")
    run.path.mkdir(parents=True)
    _result("validation").metrics.save(run.metrics)
    (run.path / COMMIT_MARKER).write_text("now")
    assert main(["runs", "list", "--lake", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "validation_accuracy 0.8500" in listed and "test_accuracy" not in listed


def test_metrics_written_before_held_out_was_named_load(tmp_path):
    import json

    from sparkdl.core.run_metrics import METRICS_VERSION, RunMetrics

    old = {"run_id": "r0", "history": [], "train": {}, "validation": {}, "attempts": [], "dataset": {},
           "test": {"split": "validation", "accuracy": 0.8}, "version": 1}
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    m = RunMetrics.load(tmp_path / "metrics.json")
    assert m.held_out == {"split": "validation", "accuracy": 0.8} and m.held_out_split == "validation"
    assert m.version == METRICS_VERSION and "test" not in m.to_dict()


def test_every_error_is_a_sparkdl_error_and_the_cli_exits_with_its_code(monkeypatch, capsys):
    import inspect

    from sparkdl import cli
    from sparkdl.core import errors

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)]
    assert len(classes) > 10 and all(issubclass(c, errors.SparkdlError) for c in classes)
    cases = [(errors.DatasetTooSmallError("the validation split has 3 rows for 4 ranks"), 2),
             (errors.ConfigError("train.epochs", "must be at least 1"), 2),
             (errors.TableError("table t exists: use --table-mode overwrite"), 2),
             (errors.ScoringError("rows were lost"), 1),
             (errors.TrainingError(1, "ValueError: boom", "Traceback ...\nValueError: boom"), 1)]
    for error, code in cases:
        def fail(args, error=error):
            raise error

        monkeypatch.setattr(cli, "_prepare", fail)
        assert cli.main(["prepare", "conf/adult.yaml", "--lake", "/nowhere"]) == code
        err = capsys.readouterr().err
        assert err.startswith("sparkdl: ") and str(error).splitlines()[0] in err
