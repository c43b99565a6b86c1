"""Every row once per epoch at the size where dealing whole row groups left most of each
epoch out: 5 M synthetic rows with the default materialize settings, 2 ranks, 1 epoch.
The run's metrics say what it covered, and the rows the ranks trained on (keyed by a rank
callback) hold no duplicate."""
import json
from pathlib import Path

import numpy as np

from sparkdl.core.config.loading import load_config
from sparkdl.testing.row_keys import RowKeys
from sparkdl.training.supervisor import train
from sparkdl.workflow import prepare

CONF = Path(__file__).resolve().parents[2] / "conf" / "synthetic.yaml"


def test_five_million_rows_are_each_trained_on_once_in_an_epoch(spark_at_scale, tmp_path):
    # the default layout; the numeric columns alone and a small network at batch 1024 keep the
    # run's CPU to what dealing the rows needs
    cfg = load_config(CONF, ["data.options.rows=5000000", "schema.categorical=[]", "model.hidden=[16]",
                             "train.epochs=1", "train.ranks=2", "train.batch_size=1024", "train.tensorboard=false"])
    lake = str(tmp_path / "lake")
    manifest = prepare(cfg, lake, spark=spark_at_scale)
    index = manifest.index_of("train")
    assert index is not None and index.rows == manifest.splits["train"] > 4_400_000
    groups = [g.rows for g in index.groups()]
    assert max(groups) - min(groups) <= max(groups) // 1000  # a layout that balances by itself: equal row groups

    keys = tmp_path / "keys"
    result = train(cfg, lake, spark=spark_at_scale, manifest=manifest, callbacks=[RowKeys(str(keys))])
    metrics = json.loads((result.path / "metrics.json").read_text())
    epoch = metrics["history"][0]
    rows, batch = manifest.splits["train"], cfg.train.batch_size
    print(f"\n5 M rows: {rows:,} training rows, coverage {epoch['coverage']}, rows per rank "
          f"{epoch['rows_per_rank']}, {epoch['samples_per_sec']:,.0f} samples/s")
    assert epoch["coverage"] >= 0.999 and metrics["train"]["coverage"] == epoch["coverage"]
    assert epoch["rows_per_rank"] == [epoch["steps"] * batch] * 2
    assert rows - sum(epoch["rows_per_rank"]) < 2 * batch

    trained = [np.load(keys / f"rank-{r}-epoch-1.npy") for r in (0, 1)]
    assert [len(k) for k in trained] == epoch["rows_per_rank"]
    every = np.concatenate(trained)
    assert len(np.unique(every)) == len(every)  # no row twice, within a rank or across the two
