"""The example data shipped in the package, named by ``embedded:`` paths in a config.

Files are used where they lie (``embedded:adult/adult.data.csv.gz``). MNIST-10k ships as
one compressed array file and ``embedded:mnist-10k`` is the PNG folder written from it,
once per machine, into sparkdl's cache (``SPARKDL_CACHE_DIR``, default
``~/.cache/sparkdl``): the images job reads real files, as it would from a lake.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from sparkdl.core.errors import BadDataError

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
#: The embedded folders written from an array file: name -> (array file, writer).
MNIST = "mnist-10k"


def cache_dir() -> Path:
    """Where files derived from the shipped data are kept."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sparkdl"
    return Path(os.environ.get("SPARKDL_CACHE_DIR", default))


def shipped() -> Path:
    return Path(str(resources.files("sparkdl").joinpath("datasets")))


def write_mnist_folder(path: "str | os.PathLike[str]") -> Path:
    """Write the 10,000 MNIST test images as ``path/<label>/<index>.png`` (8-bit grayscale,
    28 x 28), the layout the images job reads; the folder appears whole or not at all."""
    import numpy as np
    from PIL import Image

    target = Path(path)
    arrays = np.load(shipped() / MNIST / f"{MNIST}.npz")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for label in range(10):
            (tmp / str(label)).mkdir()
        for pixels, label, index in zip(arrays["pixels"], arrays["labels"], arrays["index"]):
            Image.fromarray(pixels, mode="L").save(tmp / str(int(label)) / f"{int(index):05d}.png", optimize=False)
        try:
            tmp.rename(target)
        except OSError:  # another process wrote it first: theirs is the same
            if not target.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %d MNIST images to %s", len(arrays["labels"]), target)
    return target


def resolve_path(path: str) -> str:
    """``embedded:NAME/FILE`` → the file shipped in the package; ``embedded:mnist-10k`` → its
    PNG folder; any other path unchanged."""
    if not path.startswith(EMBEDDED_PREFIX):
        return path
    rel = path[len(EMBEDDED_PREFIX):].strip("/")
    if rel == MNIST:
        folder = cache_dir() / "datasets" / MNIST
        return str(folder if folder.is_dir() else write_mnist_folder(folder))
    resolved = shipped().joinpath(*rel.split("/"))
    if not resolved.is_file():
        names = sorted(str(p.relative_to(shipped())) for p in shipped().rglob("*") if p.is_file()
                       and p.suffix != ".md" and p.suffix != ".npz")
        raise BadDataError(f"embedded dataset file {path!r} does not exist; shipped: "
                           f"{names + [EMBEDDED_PREFIX + MNIST + ' (a folder of PNG files)']}")
    return str(resolved)
