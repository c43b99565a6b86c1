"""sparkdl's materialized datasets are Petastorm datasets: Petastorm 0.13.1 itself, in
its own environment (pyarrow 14, numpy 1.26: it cannot be imported beside Spark >= 4.1),
opens a dataset that Spark and sparkdl wrote, and gives every shard exactly the rows, in
exactly the order, that sparkdl's pyarrow reader gives that rank."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sparkdl.training.rank.reader import ShardPlan, ShardReader, shard_rows
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


@pytest.mark.parametrize("split", ["train", "validation"])
def test_petastorm_reads_every_row_of_every_shard_as_sparkdl_does(adult_lake, petastorm_python, split, tmp_path):
    _, manifest = adult_lake
    path, shards = manifest.paths[split], 3
    assert any(n.startswith(("_", ".")) for n in os.listdir(path))  # Spark's _SUCCESS and .crc files are there
    out = tmp_path / "petastorm.npz"
    proc = subprocess.run([str(petastorm_python), str(Path(__file__).with_name("read_with_petastorm.py")),
                           f"file://{path}", str(shards), "features", "label", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = np.load(out)
    rows = shard_rows(path, shards)
    assert sum(rows) == manifest.splits[split]
    for rank in range(shards):
        batches = list(ShardReader(path, rank, shards, ShardPlan(rows, 1, 1), 0, 0, 0).all_rows(1000))
        x, y = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
        assert got[f"x{rank}"].shape == (rows[rank], manifest.feature_width)
        assert np.array_equal(got[f"x{rank}"], x), f"shard {rank}: features differ"
        assert np.array_equal(got[f"y{rank}"], y), f"shard {rank}: labels differ"
