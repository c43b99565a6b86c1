"""The network applied to featurized rows on the executors.

The network is built once per Python worker (cached by run path) and fed whole Arrow
record batches by a scalar Arrow UDF, never row by row; :func:`network_outputs` is the
arithmetic every scorer shares (Spark, the MLflow pyfunc).
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Tuple

import pyarrow as pa

from sparkdl.core.columns import FEATURES, PREDICTION, PROBABILITIES, PROBABILITY
from sparkdl.core.session import preloading

log = logging.getLogger(__name__)


_MODELS: Dict[str, Tuple[object, dict]] = {}  # per Python worker: run model dir -> (model, spec)


def _cached_model(model_dir: str):
    if model_dir not in _MODELS:
        from sparkdl.core.models import load_model

        _MODELS[model_dir] = load_model(model_dir)
    return _MODELS[model_dir]


def _float64_model(model_dir: str):
    key = model_dir + "#float64"
    if key not in _MODELS:
        import copy

        _MODELS[key] = (copy.deepcopy(_cached_model(model_dir)[0]).double(), None)
    return _MODELS[key][0]


def predict_batch(rows: "pa.StructArray", model_dir: str, classes: List[str], width: int,
                  reason: Optional[str] = None, batch_rows: int = 8192) -> "pa.StructArray":
    """The Arrow UDF's body: rows holding ``features`` (and the embedding indices) →
    ``prediction``: for a classifier the class name (for two classes, the positive class
    at the model's decision threshold, 0.5 unless the run chose another), ``probability``
    (of that class) and ``probabilities`` (every class, in the manifest's order); for a
    regression, the number in the label's units. With ``reason`` (a field naming why a row
    is bad), a bad row is not fed to the network: its predictions are null."""
    import numpy as np
    import pyarrow.compute as pc
    import torch

    from sparkdl.core.arrow import feature_matrix, index_matrix
    from sparkdl.core.columns import INDICES

    torch.set_num_threads(1)  # one task per core: a scoring task's network uses its own core only
    spec = _cached_model(model_dir)[1]
    batch = pa.RecordBatch.from_struct_array(rows)
    names = batch.schema.names
    ok = None if reason is None else pc.is_null(batch.column(names.index(reason))).to_numpy(zero_copy_only=False)
    if ok is not None and ok.all():
        ok = None
    good = batch if ok is None else batch.filter(pa.array(ok))  # a bad row may have no features (an image)
    matrix = feature_matrix(good.column(names.index(FEATURES)), FEATURES, "the rows to score")
    if len(good) and matrix.shape[1] != width:
        raise ValueError(f"the rows to score hold {matrix.shape[1]} feature values each, not {width}: the "
                         "input was not prepared with this run's pipeline")
    inputs = [matrix.reshape(len(good), width)]
    if spec.get("embeddings"):
        inputs.append(index_matrix(good.column(names.index(INDICES)), INDICES, "the rows to score"))
    p = network_outputs(model_dir, inputs, batch_rows)
    if spec.get("task", "classification") == "regression":
        return pa.StructArray.from_arrays([_spread(pa.array(p.ravel()), ok)], names=[PREDICTION])
    best = chosen_class(p, len(classes), spec)
    probabilities = pa.FixedSizeListArray.from_arrays(pa.array(p.ravel()), len(classes)).cast(pa.list_(pa.float64()))
    return pa.StructArray.from_arrays(
        [_spread(pa.array(np.array(classes, dtype=object)[best], pa.string()), ok),
         _spread(pa.array(p[np.arange(len(p)), best]), ok), _spread(probabilities, ok)],
        names=[PREDICTION, PROBABILITY, PROBABILITIES])


def chosen_class(p, n_classes: int, spec: dict):
    """Each row's class index from its probabilities: for two classes the positive one at
    the run's decision threshold, otherwise the most probable."""
    import numpy as np

    if n_classes == 2:
        return (p[:, 1] >= float(spec.get("threshold", 0.5))).astype(np.int64)
    return p.argmax(1)


def _spread(values, ok):
    """``values`` (one per good row) at the good rows' places, null at the bad rows'."""
    if ok is None:
        return values
    import numpy as np

    return values.take(pa.array(np.where(ok, np.cumsum(ok) - 1, 0), mask=~ok))


def network_outputs(model_dir: str, inputs: List, batch_rows: int = 8192):
    """The network's outputs for numpy ``inputs`` (the feature matrix, then the embedding
    indices when the model has tables), as float64 ``predictions`` (probabilities, or the
    regression value in the label's units), ``batch_rows`` at a time. Rows whose float32
    outputs overflow are redone in float64; outputs that are still not finite are an error."""
    import numpy as np
    import torch

    from sparkdl.core.models import predictions

    model, spec = _cached_model(model_dir)
    tensors = [torch.from_numpy(x) for x in inputs]
    parts = []
    with torch.inference_mode():
        for i in range(0, max(len(tensors[0]), 1), batch_rows):  # an empty input still gives its shape
            parts.append(predictions(model(*[t[i:i + batch_rows] for t in tensors]), spec).numpy())
    p = np.concatenate(parts).astype(np.float64)
    finite = _finite_rows(p)
    if not finite.all():  # float32 overflowed inside the network on extreme inputs: redo those in float64
        with torch.inference_mode():
            redo = predictions(_float64_model(model_dir)(tensors[0][~finite].double(),
                                                         *[t[~finite] for t in tensors[1:]]), spec).numpy()
        p[~finite] = redo.reshape(p[~finite].shape)
        finite = _finite_rows(p)
    if not finite.all():
        raise ValueError(f"the model gave NaN or infinite outputs for {int((~finite).sum())} of {len(p)} rows "
                         f"(the inputs are finite): the run's model is broken; check its training loss history")
    return p


def _finite_rows(p):
    """Per row, whether all its outputs are finite (an empty batch included)."""
    import numpy as np

    return np.isfinite(p).all(axis=tuple(range(1, p.ndim))) if p.ndim > 1 else np.isfinite(p)


def prediction_fields(task: str) -> List:
    """The columns scoring adds: ``prediction`` (a number for regression; the class, its
    probability and every class's probability for classification)."""
    from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField

    if task == "regression":
        return [StructField(PREDICTION, DoubleType())]
    return [StructField(PREDICTION, StringType()), StructField(PROBABILITY, DoubleType()),
            StructField(PROBABILITIES, ArrayType(DoubleType()))]


def predict_frame(df, model_dir: str, manifest, passthrough: List[str], reason: Optional[str] = None):
    """``passthrough`` columns of a DataFrame holding a ``features`` array column, plus the
    model's predictions (null where the ``reason`` column is set). A scalar Arrow UDF: only
    the network's inputs travel to Python; the other columns stay in the JVM."""
    from functools import partial

    from pyspark.sql import functions as F
    from pyspark.sql.functions import arrow_udf
    from pyspark.sql.types import StructType

    fields = prediction_fields(manifest.task)
    inputs = [FEATURES] + ([manifest.columns["indices"]] if manifest.columns.get("indices") else [])
    body = partial(predict_batch, model_dir=model_dir, classes=list(manifest.classes),
                   width=manifest.feature_width, reason=reason)

    def predict(rows: pa.Array) -> pa.Array:
        return body(rows)

    network = arrow_udf(predict, StructType(fields))
    keep = [F.col(f"`{n}`") for n in passthrough]
    with preloading(df.sparkSession):
        scored = df.select(*keep, network(F.struct(*[F.col(f"`{n}`") for n in inputs + ([reason] if reason else [])]))
                           .alias("_p"))
    return scored.select(*keep, *[F.col(f"_p.{f.name}") for f in fields])
