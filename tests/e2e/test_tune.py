"""``sparkdl tune`` on the Adult job, 10 trials on local-cluster[2,1,1024]: trials run two at
a time, the median pruner stops some after an epoch, the dataset is prepared once, and a
driver killed mid-search (SIGKILL to its process group) is resumed by the same command
with no finished trial run again; the best trial is reported against the job as given.
The space is the shipped one, with the pruner on after 2 trials rather than 4."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TRIALS = 10
EPOCHS = 2


def _space(directory: Path) -> Path:
    space = yaml.safe_load((REPO / "conf" / "spaces" / "adult.yaml").read_text())
    space["startup_trials"] = 2
    path = directory / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def _command(lake: Path):
    return [sys.executable, "-m", "sparkdl.cli", "tune", str(REPO / "conf" / "adult.yaml"), "--lake", str(lake),
            "--space", str(_space(lake.parent)), "--trials", str(TRIALS),
            "--set", f"train.epochs={EPOCHS}", "--set", "train.ranks=1", "--set", "spark.conf.spark.ui.enabled=false"]


def _env():
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    env.pop("SPARK_HOME", None)
    return env


def _study(lake: Path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(lake / "studies" / "adult" / "journal.log")))
    return optuna.load_study(study_name="adult", storage=storage)


def test_a_search_runs_trials_at_once_prunes_prepares_once_and_resumes_after_its_driver_died(tmp_path):
    from optuna.trial import TrialState

    lake = tmp_path / "lake"
    log_path = tmp_path / "first.log"
    with open(log_path, "w") as log:
        first = subprocess.Popen(_command(lake), env=_env(), stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        staged = lake / "runs"
        deadline = time.monotonic() + 600
        while True:  # kill it once 4 trials are done and a running trial has checkpointed an epoch
            assert first.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "4 trials did not finish within 600 s"
            done = len(re.findall(r"trial \d+ (finished|pruned)", log_path.read_text()))
            if done >= 4 and list(staged.glob(".staging-*/checkpoints/epoch-*.pt")):
                break
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    before = {t.number: t.user_attrs["run_id"] for t in _study(lake).trials
              if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert len(before) >= 4

    second = subprocess.run(_command(lake), env=_env(), capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-4000:]
    printed = dict(line.split("=", 1) for line in second.stdout.splitlines() if "=" in line)
    assert "was running when the search's driver stopped: it runs again" in second.stderr

    study = _study(lake)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == TRIALS and int(printed["complete"]) + int(printed["pruned"]) == TRIALS
    assert {n: r for n, r in before.items()} == {t.number: t.user_attrs["run_id"] for t in finished
                                                 if t.number in before}  # none of them ran again
    assert len({t.user_attrs["run_id"] for t in finished}) == TRIALS  # every trial its own run
    # and its own point: the resumed driver's sampler drew new ones, not its first ones again
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == TRIALS
    assert printed["failed"] == "0" and int(printed["requeued"]) >= 1
    assert int(printed["pruned"]) >= 1
    pruned = next(t for t in finished if t.state == TrialState.PRUNED)
    pruned_run = json.loads((lake / "runs" / pruned.user_attrs["run_id"] / "metrics.json").read_text())
    assert pruned_run["train"]["epochs"] < EPOCHS and pruned_run["train"]["stopped_by_driver"]["reason"].startswith(
        "pruned by the search")
    # the trial cut off by the kill resumed its staged run from its checkpoint
    requeued = [t for t in finished if "requeued_from" in t.user_attrs]
    assert requeued and any(json.loads((lake / "runs" / t.user_attrs["run_id"] / "metrics.json").read_text())
                            ["attempts"][0]["resumed_from_epoch"] >= 1 for t in requeued)

    datasets = [p for p in (lake / "datasets" / "adult").iterdir() if p.is_dir()]
    assert len(datasets) == 1  # prepared once, by the first driver; the second reused it
    runs = [json.loads((lake / "runs" / t.user_attrs["run_id"] / "metrics.json").read_text()) for t in finished]
    assert {r["dataset"]["id"] for r in runs} == {datasets[0].name}
    stages = sorted((a["started_unix"], a["started_unix"] + a["seconds"]) for r in runs for a in r["attempts"])
    assert printed["trials_at_once"] == "2"
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(stages, stages[1:]))  # two at a time

    assert printed["untuned_trial"] == "0" and float(printed["untuned_test_accuracy"]) >= 0.84
    assert float(printed["best_test_accuracy"]) >= 0.84
    summary = json.loads((lake / "studies" / "adult" / "search.json").read_text())
    assert summary["best"]["run_id"] == printed["best_run_id"] and Path(printed["plot"]).stat().st_size > 10_000
    # each trial's MLflow run nests under the search's
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{lake / 'mlflow' / 'mlflow.db'}")
    parent = study.user_attrs["mlflow_parent_run"]
    children = client.search_runs([client.get_experiment_by_name("adult").experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent}'")
    assert {t.user_attrs["run_id"] for t in finished} <= {r.data.tags["sparkdl.run_id"] for r in children}
    assert client.get_run(parent).info.status == "FINISHED"
