"""High-cardinality categorical columns: one-hot past the limit is refused before the
pipeline runs; embedded columns are indexed or hashed into an int array column."""
import numpy as np
import pyarrow.parquet as pq
import pytest

from sparkdl.core.config.loading import parse_config
from sparkdl.core.errors import ConfigError
from sparkdl.workflow import prepare


@pytest.fixture(scope="module")
def ids_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 6000
    uid = np.minimum(rng.zipf(1.1, n), 10 ** 6)  # a long tail: about 2,000 distinct values
    lines = ["x,uid,color,y"] + [f"{rng.normal():.4f},u{u},{rng.choice(['red', 'blue'])},{rng.choice(['a', 'b'])}"
                                 for u in uid]
    path = tmp_path_factory.mktemp("ids") / "ids.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cfg(path, **features):
    return parse_config({
        "name": "ids", "data": {"train": str(path), "options": {"header": True}},
        "schema": {"columns": [{"name": "x", "type": "double"}, {"name": "uid", "type": "string"},
                               {"name": "color", "type": "string"}, {"name": "y", "type": "string"}],
                   "numeric": ["x"], "categorical": ["uid", "color"], "label": "y", "classes": ["a", "b"]},
        "materialize": {"max_ranks": 2, "row_groups_per_rank": 2}, "features": features})


def test_one_hot_of_a_wide_column_is_refused_naming_it_before_anything_is_written(spark_local, ids_csv, tmp_path):
    with pytest.raises(ConfigError) as e:
        prepare(_cfg(ids_csv), str(tmp_path / "lake"), spark=spark_local)
    assert e.value.path == "features.columns.uid.encoding"
    assert "column 'uid' has about" in str(e.value) and "encoding: embedding" in str(e.value)
    assert not list((tmp_path / "lake").rglob("*.parquet"))  # refused before the pipeline or any write


def test_embedded_columns_are_indexed_or_hashed_into_an_index_column(spark_local, ids_csv, tmp_path):
    cfg = _cfg(ids_csv, columns={"uid": {"encoding": "embedding", "hash_buckets": 512},
                                 "color": {"encoding": "embedding"}})
    m = prepare(cfg, str(tmp_path / "lake"), spark=spark_local)
    by_name = {e["name"]: e for e in m.embeddings}
    assert by_name["uid"]["kind"] == "hash" and by_name["uid"]["size"] == 512 and by_name["uid"]["cardinality"] > 1000
    assert by_name["color"] == {"name": "color", "kind": "index", "size": 3, "dim": 3, "cardinality": 2}
    assert m.feature_width == 1 and m.columns["indices"] == "categories"
    table = pq.read_table(m.paths["train"])
    idx = np.array(table.column("categories").to_pylist())
    assert idx.shape == (m.splits["train"], 2) and idx[:, 0].max() < 512 and set(idx[:, 1]) == {1, 2}
