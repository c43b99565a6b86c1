"""The example data shipped in the package: each copy is the published data (by its
sha256), and MNIST's array file writes out as the PNG folder the images job reads."""
import gzip
import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from sparkdl.core.errors import BadDataError
from sparkdl.preparation.examples import resolve_path, shipped, write_mnist_folder

#: The datasets' published sha256 (their READMEs), of the uncompressed files.
PUBLISHED = {
    "adult/adult.data.csv.gz": "99c4f7ae498c576e385020fa5fd258b485528adb4a7bf789ac690cad732af582",
    "adult/adult.test.csv.gz": "4a08166b1e4930b5180b6fd90216416f965240e53ff9bcb29a7920ee2ad88de8",
    "california-housing/housing.csv.gz": "8a3727f4cf54ac1a327f69b1d5b4db54c5834ea81c6e4efc0d163300022a685e",
}
#: sha256 of MNIST-10k's pixels, labels and indices, read from the 10,000 original PNG files.
MNIST_ARRAYS = "e56017f96f3e1778ed343305c9a8bf5d21901e3bff3e9733c492a5f273bed472"
MNIST_PER_LABEL = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_files_are_the_published_data(name):
    data = gzip.open(resolve_path(f"embedded:{name}"), "rb").read()
    assert hashlib.sha256(data).hexdigest() == PUBLISHED[name]


def test_mnist_is_written_out_as_its_png_folder(tmp_path, monkeypatch):
    arrays = np.load(shipped() / "mnist-10k" / "mnist-10k.npz")
    digest = hashlib.sha256(arrays["pixels"].tobytes() + arrays["labels"].tobytes() + arrays["index"].tobytes())
    assert digest.hexdigest() == MNIST_ARRAYS

    monkeypatch.setenv("SPARKDL_CACHE_DIR", str(tmp_path / "cache"))
    folder = resolve_path("embedded:mnist-10k")
    counts = [len(os.listdir(os.path.join(folder, str(label)))) for label in range(10)]
    assert counts == MNIST_PER_LABEL
    first = int(arrays["index"][0])
    image = Image.open(os.path.join(folder, str(int(arrays["labels"][0])), f"{first:05d}.png"))
    assert image.mode == "L" and image.size == (28, 28)
    assert np.array_equal(np.asarray(image), arrays["pixels"][0])  # lossless
    stamp = os.stat(folder).st_mtime_ns
    assert resolve_path("embedded:mnist-10k") == folder and os.stat(folder).st_mtime_ns == stamp  # written once
    assert not [p for p in os.listdir(tmp_path / "cache" / "datasets") if p.startswith(".")]  # no partial folder


def test_a_failed_write_leaves_no_folder(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError, match="No space"):
        write_mnist_folder(tmp_path / "images")
    assert os.listdir(tmp_path) == []


def test_an_unknown_embedded_path_names_what_is_shipped():
    with pytest.raises(BadDataError, match=r"embedded:nope.csv.*adult/adult.data.csv.gz.*embedded:mnist-10k"):
        resolve_path("embedded:nope.csv")
    assert resolve_path("/data/x.csv") == "/data/x.csv"
