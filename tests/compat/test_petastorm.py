"""sparkdl's materialized datasets are Petastorm datasets: Petastorm 0.13.1 itself, in
its own environment (pyarrow 14, numpy 1.26: it cannot be imported beside Spark >= 4.1),
opens a dataset that Spark and sparkdl wrote and reads exactly the rows, in file order,
that sparkdl's pyarrow reader reads; sharded Petastorm's way (whole row groups), its
shards together hold the same rows."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sparkdl.training.rank.reader import ShardReader
from tests.tiers import unavailable

REPO = Path(__file__).resolve().parents[2]
PETASTORM_PYTHON = Path(os.environ.get("SPARKDL_PETASTORM_PYTHON", REPO / ".venv-petastorm" / "bin" / "python"))


@pytest.fixture(scope="module")
def petastorm_python() -> Path:
    if not PETASTORM_PYTHON.exists():
        reason = (f"no Petastorm compatibility env at {PETASTORM_PYTHON}: run `make setup` "
                  "(or set SPARKDL_PETASTORM_PYTHON)")
        unavailable("Petastorm compatibility", reason)
    return PETASTORM_PYTHON


def _petastorm(petastorm_python: Path, path: str, shards: int, out: Path):
    proc = subprocess.run([str(petastorm_python), str(Path(__file__).with_name("read_with_petastorm.py")),
                           f"file://{path}", str(shards), "features", "label", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(out)
    return [(got[f"x{k}"], got[f"y{k}"]) for k in range(shards)]


def _rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows (features, label) in a canonical order, to compare as multisets."""
    both = np.column_stack([x, y.astype(np.float32)])
    return both[np.lexsort(both.T[::-1])]


@pytest.mark.parametrize("split", ["train", "validation"])
def test_petastorm_reads_every_row_as_sparkdl_does(adult_lake, petastorm_python, split, tmp_path):
    _, manifest = adult_lake
    path = manifest.paths[split]
    assert any(n.startswith(("_", ".")) for n in os.listdir(path))  # Spark's _SUCCESS and .crc files are there
    index = manifest.index_of(split)
    batches = list(ShardReader(index, 0, 1, 1).all_rows(1000))
    x, y = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    assert len(y) == manifest.splits[split] == index.rows
    (px, py), = _petastorm(petastorm_python, path, 1, tmp_path / "one.npz")
    assert px.shape == (index.rows, manifest.feature_width)
    assert np.array_equal(px, x) and np.array_equal(py, y), "features or labels differ, or their order"
    shards = _petastorm(petastorm_python, path, 3, tmp_path / "three.npz")  # whole row groups i % 3
    sx, sy = np.concatenate([s[0] for s in shards]), np.concatenate([s[1] for s in shards])
    assert np.array_equal(_rows(sx, sy), _rows(x, y))
