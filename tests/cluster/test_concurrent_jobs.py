"""Two jobs writing the same lake at once: both commit under distinct ids, and the
dataset pointer always names a complete dataset."""
import threading
from concurrent.futures import ThreadPoolExecutor

from sparkdl.core.config.loading import load_config
from sparkdl.core.lake import Lake, is_committed
from sparkdl.workflow import prepare, train
from tests.conftest import REPO


def test_two_jobs_on_one_lake_commit_distinct_complete_results(spark_cluster, tmp_path):
    cfg = load_config(REPO / "conf" / "synthetic.yaml", ["data.options.rows=20000", "train.epochs=1",
                                                         "train.ranks=1", "materialize.max_ranks=2"])
    lake = Lake(str(tmp_path / "lake"))
    seen, stop = [], threading.Event()

    def watch_pointer():  # every read of CURRENT, while both write, names a committed dataset
        while not stop.is_set():
            try:
                seen.append(is_committed(lake.current_dataset(cfg.name)))
            except Exception:  # not published yet
                pass

    watcher = threading.Thread(target=watch_pointer, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            manifests = list(pool.map(lambda _: prepare(cfg, str(lake.root), spark_cluster), range(2)))
            assert manifests[0].dataset_id != manifests[1].dataset_id
            runs = list(pool.map(lambda m: train(cfg, str(lake.root), spark=spark_cluster, manifest=m), manifests))
    finally:
        stop.set()
        watcher.join(5)
    assert seen and all(seen)
    assert lake.current_dataset(cfg.name).name in {m.dataset_id for m in manifests}
    assert runs[0].run_id != runs[1].run_id
    assert sorted(p.name for p in lake.list_runs()) == sorted(r.run_id for r in runs)
    assert all(r.metrics.train["epochs"] == 1 for r in runs)
    # each job's model is in the lake's own MLflow store (the tracking URI is one per process:
    # the jobs take turns pointing it there, so neither logs into the other's or ./mlflow.db)
    import json

    from mlflow.tracking import MlflowClient

    for r in runs:
        ids = json.loads((r.path / "mlflow.json").read_text())
        assert ids["tracking_uri"] == f"sqlite:///{lake.root / 'mlflow' / 'mlflow.db'}"
        model = MlflowClient(ids["tracking_uri"]).get_logged_model(ids["model_uri"].split("/")[-1])
        assert model.source_run_id == ids["run_id"]
