"""Images from files in the lake: MNIST from its PNG folder on two ranks with the CNN, with
a damaged PNG and a stray text file quarantined and counted; scoring a folder."""
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sparkdl.core.config.loading import load_config
from sparkdl.preparation.examples import write_mnist_folder
from sparkdl.serving.score import score
from sparkdl.workflow import run_job

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A copy of the 10,000 PNGs with two bad files dropped in."""
    folder = write_mnist_folder(tmp_path_factory.mktemp("mnist") / "images")
    png = (folder / "3" / "00018.png").read_bytes()
    (folder / "3" / "truncated.png").write_bytes(png[:len(png) // 3])
    (folder / "5" / "notes.txt").write_text("scanned on the 4th; ask Ana about the 9s\n")
    return folder


@pytest.fixture(scope="module")
def mnist_run(spark_cluster, images, tmp_path_factory):
    cfg = load_config(REPO / "conf" / "mnist.yaml", [f"data.train={images}"])
    return run_job(cfg, str(tmp_path_factory.mktemp("mnist-lake")), spark=spark_cluster)


def test_mnist_from_png_files_reaches_97_percent_and_quarantines_bad_files(mnist_run):
    from sparkdl.preparation.materialize import Manifest

    m = mnist_run.metrics
    manifest = Manifest.load(mnist_run.path / "manifest.json")
    print(f"\nMNIST from PNG files: test accuracy {m.held_out['accuracy']:.4f} on {m.held_out['rows']} images "
          f"(logistic regression {m.baseline['logistic_regression']['accuracy']:.4f}), stages {m.stages}")
    assert manifest.rows == {"input": 10002, "accepted": 10000, "quarantined": 2}
    assert sum(manifest.splits.values()) == 10000 and 1900 <= manifest.splits["test"] <= 2100
    bad = pq.read_table(manifest.quarantine["train"]["quarantine_path"]).to_pandas()
    reasons = {path.rsplit("/", 1)[-1]: reason for path, reason in zip(bad["file"], bad["reason"])}
    assert reasons["truncated.png"].startswith("image: does not decode as an image (OSError")
    assert reasons["notes.txt"] == "image: is not an image file (Pillow recognizes no image format in it)"
    assert manifest.image["shape"] == [1, 28, 28] and manifest.columns["dtype"] == "uint8"
    stored = pq.read_schema(next((mnist_run.path.parent.parent / "datasets").rglob("train/*.parquet")))
    assert str(stored.field("features").type) == "binary"  # uint8 pixels, 4x smaller than float32
    assert m.held_out["split"] == "test" and m.held_out["accuracy"] >= 0.97
    assert (mnist_run.path / "confusion.png").is_file()


def test_scoring_a_folder_writes_path_prediction_and_probabilities(spark_cluster, mnist_run, images, tmp_path):
    folder = tmp_path / "incoming"
    for label in ("1", "7"):
        (folder / label).mkdir(parents=True)
        for f in sorted((images / label).glob("0*.png"))[:50]:
            shutil.copy(f, folder / label / f.name)
    (folder / "7" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    report = score(spark_cluster, mnist_run.path, str(folder), str(tmp_path / "preds"))
    assert report.input == 101 and report.scored == 100 and report.quarantined == 1
    out = pq.read_table(tmp_path / "preds").to_pandas()
    assert list(out.columns) == ["path", "prediction", "probability", "probabilities"]
    truth = out["path"].str.split("/").str[-2]
    assert (out["prediction"] == truth).mean() >= 0.95 and out["probabilities"].map(len).eq(10).all()
    bad = pq.read_table(str(tmp_path / "preds") + ".quarantine").to_pandas()
    assert bad["file"].str.endswith("broken.png").all()
