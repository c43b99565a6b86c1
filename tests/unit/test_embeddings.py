"""Embedding indices: frequency-ordered vocabularies with a shared unknown index, bounded
hashing, and the width rule."""
import numpy as np

from sparkdl.core.columns import MISSING
from sparkdl.preparation.embeddings import EmbeddedColumn, EmbeddingPlan, default_dim, index_values


def test_indexed_values_map_by_frequency_and_unknowns_share_zero():
    col = EmbeddedColumn("city", "index", size=4, dim=3, cardinality=5, vocabulary=["Paris", MISSING, "Oslo"])
    got = index_values(["Oslo", None, "Paris", "Lima", "oslo"], col)
    assert got.dtype == np.int32 and got.tolist() == [3, 2, 1, 0, 0]


def test_hashed_values_stay_in_the_table_and_are_stable():
    col = EmbeddedColumn("url", "hash", size=97, dim=8, cardinality=10 ** 6)
    values = [f"https://example.org/{i}" for i in range(2000)] + [None]
    a, b = index_values(values, col), index_values(list(values), col)
    assert np.array_equal(a, b) and a.min() >= 0 and a.max() < 97 and len(set(a.tolist())) > 90
    assert index_values(["x"], col)[0] == index_values(["x"], col)[0]  # same text, same bucket


def test_width_rule_and_plan_round_trip(tmp_path):
    assert [default_dim(n) for n in (3, 10, 100, 10_000, 10 ** 6)] == [3, 6, 21, 50, 50]
    plan = EmbeddingPlan([EmbeddedColumn("a", "index", 3, 2, 2, ["x", "y"]), EmbeddedColumn("b", "hash", 64, 4, 900)])
    path = plan.save(tmp_path / "pre")
    again = EmbeddingPlan.load(path)
    assert again == plan and again.specs() == [{"name": "a", "size": 3, "dim": 2}, {"name": "b", "size": 64, "dim": 4}]
    assert "vocabulary" not in plan.columns[0].summary()
