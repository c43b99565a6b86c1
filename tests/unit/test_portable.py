"""The portable preprocessing's row validation and arithmetic, without Spark (its equality
with Spark's pipeline on real data is tested in tests/cluster/test_mlflow.py)."""
import math

import numpy as np
import pandas as pd
import pytest

from sparkdl.preparation.portable import PortableFeatures


def _features(**over):
    base = dict(types={"x": "double", "n": "int", "c": "string", "b": "boolean"}, numeric=["x", "n", "b"],
                surrogates=[10.0, 3.0, 0.0], scaler="standard", shift=[10.0, 2.0, 0.5], scale=[0.5, 1.0, 2.0],
                onehot={"c": ["red", "blue"]}, null_values=["?", ""])
    return PortableFeatures(**{**base, **over})


def test_values_are_trimmed_nulls_imputed_scaled_and_categories_one_hot():
    rows = pd.DataFrame({"x": [" 12 ", "?", None], "n": ["4", 5, float("nan")], "c": [" blue", "green", None],
                         "b": ["yes", True, "0"]})
    features, indices, reasons = _features().transform(rows)
    assert reasons == [None, None, None] and indices is None
    expected = np.array([[(12 - 10) * 0.5, 4 - 2, (1 - 0.5) * 2, 0, 1],   # blue
                         [0.0, 5 - 2, (1 - 0.5) * 2, 0, 0],                # x imputed; green unseen: all zeros
                         [0.0, 3 - 2, (0 - 0.5) * 2, 0, 0]], np.float32)   # missing category: all zeros
    assert features.dtype == np.float32 and (features == expected).all()


@pytest.mark.parametrize("column, value, reason", [
    ("x", "abc", "column 'x': 'abc' is not a double"),
    ("x", "1_000", "column 'x': '1_000' is not a double"),
    ("x", math.inf, "column 'x': 'inf' is not a finite number"),
    ("x", "1e39", "column 'x': '1e39' is beyond float32's range (|x| <= 3.403e+38)"),
    ("n", "4.5", "column 'n': '4.5' is not a int"),
    ("b", "maybe", "column 'b': 'maybe' is not a boolean"),
])
def test_a_bad_value_names_its_column_and_the_row_is_not_featurized(column, value, reason):
    rows = pd.DataFrame({"x": ["1", "2"], "n": [1, 2], "c": ["red", "red"], "b": [True, False]}, dtype=object)
    rows.loc[1, column] = value
    features, _, reasons = _features().transform(rows)
    assert reasons == [None, reason]
    assert (features[1] == 0).all() and features[0, 3] == 1.0


def test_non_finite_as_missing_is_imputed():
    rows = pd.DataFrame({"x": [math.inf], "n": [1], "c": ["red"], "b": [True]})
    features, _, reasons = _features(non_finite="missing").transform(rows)
    assert reasons == [None] and features[0, 0] == 0.0  # the surrogate 10, scaled


def test_minmax_scales_by_range_and_a_constant_column_is_half():
    f = _features(scaler="minmax", shift=[0.0, 0.0, 0.0], scale=[0.25, 0.0, 1.0])
    features, _, _ = f.transform(pd.DataFrame({"x": [2.0], "n": [7], "c": ["red"], "b": [False]}))
    assert list(features[0, :3]) == [0.5, 0.5, 0.0]


def test_a_missing_column_is_named():
    with pytest.raises(KeyError, match=r"no column\(s\) \['c'\]"):
        _features().transform(pd.DataFrame({"x": [1.0], "n": [1], "b": [True]}))


def test_pandas_missing_values_are_missing_in_every_column_type():
    rows = pd.DataFrame({"x": [np.float32("nan")], "n": [pd.NA], "c": [np.nan], "b": [None]})
    f = _features(onehot={"c": ["red", "nan"]})  # a category spelled "nan" must not catch a missing value
    features, _, reasons = f.transform(rows)
    assert reasons == [None]
    assert list(features[0]) == [0.0, 1.0, -1.0, 0.0, 0.0]  # surrogates, scaled; the text column: no category
