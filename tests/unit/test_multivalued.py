"""Many-valued columns without Spark: the quarantine's reasons per kind of bad value, the
batch form (dense blocks, sparse slots, bags' slots, padding), the vectors' moments merged
over any split into batches, pandas values as Arrow, and the network's bag tables."""
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkdl.core.config.loading import parse_config
from sparkdl.core.errors import ConfigError
from sparkdl.preparation.assembly import bag_slots, row_inputs
from sparkdl.preparation.embeddings import EmbeddedColumn, EmbeddingPlan
from sparkdl.preparation.multivalued import (
    ManyColumn,
    VectorScaling,
    _moments_batches,
    as_arrow,
    column_reasons,
    dense_block,
    merge_moments,
    reasons_of,
    scaled,
    sparse_slots,
)

VECTOR = pa.struct([("type", pa.int8()), ("size", pa.int32()), ("indices", pa.list_(pa.int32())),
                    ("values", pa.list_(pa.float64()))])


def dense(values):
    return {"type": 1, "size": None, "indices": None, "values": values}


def sparse(size, indices, values):
    return {"type": 0, "size": size, "indices": indices, "values": values}


def reasons(arr, kind, role, size=None, max_items=None):
    out = [None] * len(arr)
    column_reasons(arr, "c", kind, role, size, max_items, out)
    return out


# ---------------------------------------------------------------- reasons

def test_vector_reasons_name_the_column_and_the_fault():
    arr = pa.array([dense([1.0, 2.0, 3.0]), dense([1.0, 2.0]), sparse(3, [0, 2], [1.0, 5.0]), sparse(4, [0], [1.0]),
                    None, dense([1.0, float("nan"), 0.0]), dense([1e39, 0.0, 0.0]), sparse(3, [0, 7], [1.0, 1.0]),
                    sparse(3, [2, 0, 2], [1.0, 1.0, 1.0]), sparse(3, [2, 0], [1.0, 1.0])], VECTOR)
    got = reasons(arr, "vector", "vectors", size=3)
    assert got[0] is None and got[2] is None
    assert got[1] == "column 'c': a vector of 2 values, not its declared size 3"
    assert got[3] == "column 'c': a vector of 4 values, not its declared size 3"
    assert got[4] == "column 'c': is missing (a vector has no imputation)"
    assert got[5] == "column 'c': holds a value that is not a finite number"
    assert "beyond float32's range" in got[6]
    assert got[7] == "column 'c': holds an index outside its size 3"
    assert got[8] == "column 'c': holds an index twice" and got[9] is None  # unsorted is fine


def test_sparse_vectors_may_be_missing_but_not_hold_more_non_zeros_than_their_slots():
    arr = pa.array([None, sparse(10, [1, 2, 3], [1.0, 0.0, 2.0]), sparse(10, [1, 2, 3], [1.0, 3.0, 2.0]),
                    dense([0.0] * 9 + [1.0])], VECTOR)
    got = reasons(arr, "vector", "sparse", size=10, max_items=2)
    assert got[:2] == [None, None] and got[3] is None  # zeros take no slot; a dense row of one non-zero fits
    assert got[2] == "column 'c': holds 3 non-zero values, more than its max_items 2"


def test_number_array_reasons():
    arr = pa.array([[1.0, 2.0], [1.0], [1.0, None], None, [float("inf"), 0.0]], pa.list_(pa.float64()))
    got = reasons(arr, "array<double>", "vectors", size=2)
    assert got == [None, "column 'c': holds 1 values, not its declared size 2", "column 'c': holds a null value",
                   "column 'c': is missing (a vector has no imputation)",
                   "column 'c': holds a value that is not a finite number"]


def test_bag_reasons_and_a_missing_bag_is_empty():
    arr = pa.array([["a", "b"], None, [], ["a", None], ["a", "b", "c"]], pa.list_(pa.string()))
    assert reasons(arr, "array<string>", "bags", max_items=2) == [
        None, None, None, "column 'c': holds a null item", "column 'c': holds 3 items, more than its max_items 2"]


def test_first_bad_column_gives_the_reason():
    many = [ManyColumn("v", "array<float>", "vectors", 2), ManyColumn("b", "array<string>", "bags", None, 1)]
    cols = {"v": pa.array([[1.0], [1.0, 2.0], [1.0, 2.0]], pa.list_(pa.float64())),
            "b": pa.array([["x", "y"], ["x", "y"], ["x"]], pa.list_(pa.string()))}
    got = reasons_of(cols, many, 3)
    assert got[0].startswith("column 'v'") and got[1].startswith("column 'b'") and got[2] is None


# ---------------------------------------------------------------- the batch form

def test_dense_block_reads_dense_and_sparse_rows_alike():
    arr = pa.array([dense([1.0, 2.0, 3.0]), sparse(3, [2], [7.0]), None, sparse(3, [], [])], VECTOR)
    np.testing.assert_array_equal(dense_block(arr, "vector", 3),
                                  [[1, 2, 3], [0, 0, 7], [0, 0, 0], [0, 0, 0]])


def test_sparse_slots_keep_non_zero_entries_in_order_and_pad_with_the_size():
    arr = pa.array([sparse(5, [0, 3, 4], [1.0, 0.0, 2.0]), None, dense([0.0, 0.0, 3.0, 0.0, 0.0])], VECTOR)
    idx, weights = sparse_slots(arr, 5, 3)
    np.testing.assert_array_equal(idx, [[0, 4, 5], [5, 5, 5], [2, 5, 5]])
    np.testing.assert_array_equal(weights, [[1, 2, 0], [0, 0, 0], [3, 0, 0]])


def test_bag_slots_index_known_items_pad_with_the_size_and_unknown_is_zero():
    column = EmbeddedColumn("b", "index", 4, 2, 3, vocabulary=["a", "b", "c"], items=3)
    arr = pa.array([["c", "a"], None, ["z"], []], pa.list_(pa.string()))
    np.testing.assert_array_equal(bag_slots(arr, column), [[3, 1, 4], [4, 4, 4], [0, 4, 4], [4, 4, 4]])


def test_row_inputs_order_vectors_then_weights_and_slots_in_plan_order():
    plan = EmbeddingPlan([EmbeddedColumn("c", "index", 3, 2, 2, vocabulary=["u", "v"]),
                          EmbeddedColumn("s", "vector", 6, 2, 6, items=2, weighted=True)])
    scaling = [VectorScaling("v", "array<double>", 2, "standard", [1.0, 0.0], [0.5, 1.0])]
    cols = {"c": pa.array(["v", None]), "s": pa.array([sparse(6, [5], [9.0]), None], VECTOR),
            "v": pa.array([[3.0, 4.0], [1.0, -1.0]], pa.list_(pa.float64()))}
    extra, idx = row_inputs(cols, plan, scaling, 2)
    np.testing.assert_array_equal(extra, [[1.0, 4.0, 9.0, 0.0], [0.0, -1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(idx, [[2, 5, 6], [0, 6, 6]])


# ---------------------------------------------------------------- scaling

@settings(max_examples=60, deadline=None)
@given(rows=st.integers(2, 300), size=st.integers(1, 5), seed=st.integers(0, 2**16),
       cuts=st.lists(st.integers(0, 300), max_size=8))
def test_moments_merged_over_any_batches_equal_numpy(rows, size, seed, cuts):
    """Invariant: the split's mean, sample std, min and max do not depend on how Spark
    cut it into Arrow batches (empty batches included)."""
    x = np.random.default_rng(seed).normal(3.0, 100.0, (rows, size))
    bounds = sorted({0, rows, *[min(c, rows) for c in cuts]})
    batches = [pa.RecordBatch.from_arrays([pa.array(x[a:b].tolist(), pa.list_(pa.float64()))], names=["v"])
               for a, b in zip(bounds[:-1], bounds[1:])] + [
        pa.RecordBatch.from_arrays([pa.array([], pa.list_(pa.float64()))], names=["v"])]
    half = len(batches) // 2  # two partitions: batches merged within each, the partitions on the driver
    parts = [b.to_pylist()[0]["moments"][0] for part in (batches[:half], batches[half:])
             for b in _moments_batches(iter(part), [("v", "array<double>", size)])]
    assert len(parts) == 2
    n, mean, m2, lo, hi = merge_moments(parts, size)
    assert n == rows
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.sqrt(m2 / (n - 1)), x.std(0, ddof=1), rtol=1e-9)
    np.testing.assert_array_equal(lo, x.min(0))
    np.testing.assert_array_equal(hi, x.max(0))


def test_scaled_follows_spark_ml_scalers():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_array_equal(scaled(x, np.array([2.0, 5.0]), np.array([0.5, 0.0]), "standard"),
                                  [[-0.5, 0.0], [0.5, 0.0]])
    np.testing.assert_array_equal(scaled(x, np.array([1.0, 5.0]), np.array([0.5, 0.0]), "minmax"),
                                  [[0.0, 0.5], [1.0, 0.5]])
    assert scaled(x, 0, 0, "none") is x


# ---------------------------------------------------------------- pandas values (the MLflow model)

def test_as_arrow_reads_pyspark_vectors_dicts_and_lists_alike():
    from pyspark.ml.linalg import Vectors

    values = [Vectors.sparse(4, [1], [2.0]), Vectors.dense([1.0, 0.0, 0.0, 3.0]), sparse(4, [3], [1.0]),
              [0.0, 1.0, 0.0, 0.0], np.array([1.0, 2.0, 3.0, 4.0]), None, float("nan")]
    block = dense_block(as_arrow(values, "vector"), "vector", 4)
    np.testing.assert_array_equal(block, [[0, 2, 0, 0], [1, 0, 0, 3], [0, 0, 0, 1], [0, 1, 0, 0], [1, 2, 3, 4],
                                          [0] * 4, [0] * 4])
    assert as_arrow([None], "vector").null_count == 1


def test_as_arrow_bags_as_the_text_ingest_counted():
    assert as_arrow([[7.0, 8], None, [1, None]], "array<long>").to_pylist() == [["7", "8"], None, ["1", None]]
    assert as_arrow([np.array(["a", "b"])], "array<string>").to_pylist() == [["a", "b"]]
    assert as_arrow([[1, "x", None]], "array<double>").to_pylist() == [[1.0, None, None]]


def test_as_arrow_gives_a_reason_for_a_value_of_no_such_shape():
    """The MLflow model takes what a client sends: text where a list belongs, a scalar, a
    broken sparse vector each get a reason, and the other rows are read as they are."""
    why = [None] * 4
    arr = as_arrow(["a,b", 7, ["a"], None], "array<string>", "items", why)
    assert arr.to_pylist() == [None, None, ["a"], None]
    assert why[0] == "column 'items': holds a str, not array<string>: give a list, an array or a vector"
    assert why[1].startswith("column 'items': holds a int, not") and why[2:] == [None, None]
    why = [None] * 3
    as_arrow([sparse(4, [1, 2], [1.0]), "1,2", [1.0, "x"]], "vector", "v", why)
    assert why[0] == "column 'v': not vector (a sparse vector of 2 indices and 1 values)"
    assert why[1].startswith("column 'v': holds a str, not vector") and why[2].startswith("column 'v': not vector")
    nan = as_arrow([[1.0, float("nan")], np.array([1.0, np.nan])], "array<double>")
    assert reasons(nan, "array<double>", "vectors", size=2) == ["column 'c': holds a value that is not a finite "
                                                                "number"] * 2
    assert as_arrow([np.array([1.0, np.nan])], "array<long>").to_pylist() == [["1", None]]  # pandas' null id


# ---------------------------------------------------------------- the network

def test_a_weighted_bag_is_a_linear_layer_on_the_sparse_vector():
    import torch

    from sparkdl.core.models import _tables

    torch.manual_seed(0)
    size, items, dense_width = 7, 3, 2
    tables = _tables([{"name": "s", "size": size, "dim": 4, "items": items, "weighted": True},
                      {"name": "b", "size": 5, "dim": 4, "items": 2}], dense_width)
    arr = pa.array([sparse(size, [0, 6], [2.0, -1.0]), None, sparse(size, [1, 2, 3], [1.0, 1.0, 0.5])], VECTOR)
    idx, weights = sparse_slots(arr, size, items)
    bag = np.array([[1, 5], [5, 5], [2, 3]], np.int32)
    x = torch.cat([torch.ones(3, dense_width), torch.from_numpy(weights)], dim=1)
    out = tables.inputs(x, torch.from_numpy(np.concatenate([idx, bag], axis=1)).long())
    expected = torch.from_numpy(dense_block(arr, "vector", size)) @ tables[0].weight[:size]
    torch.testing.assert_close(out[:, dense_width:dense_width + 4], expected)
    b = tables[1].weight
    torch.testing.assert_close(out[:, dense_width + 4:], torch.stack([b[1], torch.zeros(4), (b[2] + b[3]) / 2]))
    torch.testing.assert_close(out[:, :dense_width], torch.ones(3, dense_width))


# ---------------------------------------------------------------- configuration

BASE = {"data": {"format": "parquet", "train": "/data/t"},
        "schema": {"columns": [{"name": "v", "type": "array<float>", "size": 4},
                               {"name": "s", "type": "vector", "size": 100, "max_items": 5},
                               {"name": "b", "type": "array<string>"}, {"name": "y", "type": "string"}],
                   "vectors": ["v"], "sparse": ["s"], "bags": ["b"], "label": "y", "classes": ["a", "b"]}}


def _config(columns=None, data=None, **schema):
    import copy

    raw = copy.deepcopy(BASE)
    if columns is not None:
        raw["schema"]["columns"] = columns
    raw["schema"].update(schema)
    raw["data"].update(data or {})
    return raw


def test_many_valued_roles_parse_with_their_limits():
    cfg = parse_config(_config())
    assert cfg.schema.features == ["v", "s", "b"] and cfg.schema.many == ["v", "s", "b"]
    assert cfg.schema.column("b").items == 64 and cfg.schema.column("s").items == 5


@pytest.mark.parametrize("raw, path, words", [
    (_config(columns=[{"name": "v", "type": "array<float>"}] + BASE["schema"]["columns"][1:]),
     "schema.columns.v.size", "set size"),
    (_config(columns=BASE["schema"]["columns"][:3] + [{"name": "y", "type": "string", "size": 2}]),
     "schema.columns.y.size", "not string"),
    (_config(columns=[{"name": "v", "type": "array<float>", "size": 4, "max_items": 2}]
             + BASE["schema"]["columns"][1:]), "schema.columns.v.max_items", "not array<float>"),
    (_config(columns=BASE["schema"]["columns"][:1] + [{"name": "s", "type": "vector", "size": 100}]
             + BASE["schema"]["columns"][2:]), "schema.columns.s.max_items", "set max_items"),
    (_config(vectors=["v", "s"]), "schema", "more than one role"),
    (_config(columns=[{"name": "v", "type": "vector", "size": 262144}] + BASE["schema"]["columns"][1:]),
     "schema.vectors[0]", "move it to schema.sparse"),
    (_config(vectors=["b"], bags=[]), "schema.vectors[0]", "takes array<double> or array<float> or vector"),
    (_config(categorical=["b"], bags=[]), "schema.categorical[0]", "holds many values"),
    (_config(label="v", vectors=[]), "schema.label", "one value per row"),
    (_config(data={"format": "csv"}), "schema.columns", "CSV field cannot"),
    (_config(data={"format": "json"}), "schema.columns", "JSON cannot hold"),
    (dict(_config(), features={"columns": {"b": {"encoding": "onehot"}}}), "features.columns.b.encoding",
     "cannot be one-hot"),
    (dict(_config(), features={"columns": {"s": {"hash_buckets": 10}}}), "features.columns.s.hash_buckets",
     "no hash buckets"),
])
def test_many_valued_config_errors_name_the_setting(raw, path, words):
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert e.value.path == path and words in str(e.value)
