"""Ranks started by a launcher other than Spark: ``torchrun`` and OpenMPI's ``mpirun``
train the Adult job on the dataset ``sparkdl prepare`` made, and the run is committed into
the lake as a Spark launch commits it (metrics, model, MLflow), so ``sparkdl score``
cannot tell. torchrun's own restarts resume a killed rank from the run's checkpoint;
under mpirun, the run's retries do."""
import json
import shutil

import pyarrow.parquet as pq
import pytest

from sparkdl.core.rundir import MLFLOW_FILE
from sparkdl.serving.score import score
from sparkdl.testing.faults import FaultSpec
from sparkdl.workflow import train


@pytest.fixture(scope="module")
def torchrun_run(adult_config, adult_lake, tmp_path_factory):
    """4 epochs on 2 torchrun ranks; rank 1 is SIGKILLed in epoch 3 and torchrun restarts both."""
    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 4, "train.ranks": 2, "train.launch.launcher": "torchrun",
                                    "train.launch.launcher_restarts": 1})
    # no session passed: training under another launcher needs none (the test's own is there for MLflow's export)
    return train(cfg, str(tmp_path_factory.mktemp("torchrun-lake")), manifest=manifest,
                 callbacks=[FaultSpec(rank=1, epoch=3, step=20, mode="kill")])


def _scored_accuracy(spark, run, adult_config, out) -> float:
    score(spark, run.path, adult_config.data.test, str(out))
    preds = pq.read_table(out, columns=["class", "prediction"]).to_pandas()
    return float((preds["class"].str.rstrip(".") == preds["prediction"]).mean())


def test_torchrun_resumes_a_killed_rank_and_commits_a_run_that_scores(spark_cluster, torchrun_run, adult_run,
                                                                        adult_config, tmp_path):
    m = torchrun_run.metrics
    # torchrun restarted both ranks (attempt 2 of the launch); they resumed from epoch 2's checkpoint
    assert [h["epoch"] for h in m.history] == [1, 2, 3, 4] and [h["attempt"] for h in m.history] == [1, 1, 2, 2]
    assert len(m.attempts) == 1 and m.attempts[0]["error"] is None  # the driver's retries were not needed
    assert m.train["ranks"] == 2 and m.train["identical_parameters"] is True
    assert (torchrun_run.path / "model").is_dir() and (torchrun_run.path / "preprocessing").is_dir()
    assert json.loads((torchrun_run.path / MLFLOW_FILE).read_text())["run_id"]
    mine = _scored_accuracy(spark_cluster, torchrun_run, adult_config, tmp_path / "torchrun")
    spark_launched = _scored_accuracy(spark_cluster, adult_run, adult_config, tmp_path / "spark")
    assert mine >= 0.85 and abs(mine - spark_launched) <= 0.02, (mine, spark_launched)


@pytest.mark.skipif(shutil.which("mpirun") is None,
                    reason="OpenMPI is not installed (Debian: apt-get install openmpi-bin)")
def test_mpirun_trains_and_a_killed_rank_resumes_through_the_runs_retry(spark_cluster, adult_config, adult_lake,
                                                                          adult_run, tmp_path, caplog):
    """Horovod under mpirun: its MPI controller where Horovod was built with MPI (make setup
    does where OpenMPI's mpicxx is installed), its Gloo controller otherwise, saying why."""
    import horovod.torch as hvd

    lake, manifest = adult_lake
    cfg = adult_config.with_values({"train.epochs": 4, "train.ranks": 2, "train.launch.launcher": "mpirun"})
    run = train(cfg, str(tmp_path / "lake"), manifest=manifest, callbacks=[FaultSpec(rank=1, epoch=3, step=20,
                                                                                     mode="kill")])
    controller = "Horovod's MPI controller, hvd.mpi_enabled()=True" if hvd.mpi_built() else "built without MPI"
    assert controller in caplog.text  # rank 0's first line, as the driver logs it
    m = run.metrics
    # mpirun stopped the other rank; the driver launched mpirun again, resuming from epoch 2
    assert [h["attempt"] for h in m.history] == [1, 1, 2, 2] and m.attempts[1]["resumed_from_epoch"] == 2
    assert m.train["identical_parameters"] is True
    assert json.loads((run.path / MLFLOW_FILE).read_text())["run_id"]
    mine = _scored_accuracy(spark_cluster, run, adult_config, tmp_path / "mpirun")
    spark_launched = _scored_accuracy(spark_cluster, adult_run, adult_config, tmp_path / "spark")
    assert mine >= 0.85 and abs(mine - spark_launched) <= 0.02, (mine, spark_launched)
