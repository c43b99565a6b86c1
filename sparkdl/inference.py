"""Batch scoring with a finished run, inside Spark.

The run's preprocessing PipelineModel is reapplied unchanged; the network is built once
per Python worker (cached by run path) and fed whole Arrow record batches by a scalar
Arrow UDF, never row by row. Input rows that do not parse (or hold NaN/infinite
numbers) are quarantined, so rows in = rows out + quarantined. Predictions and
quarantine are staged (:mod:`sparkdl.outputs`: a directory or a table) and published
together only when those counts add up: a failed or interrupted scoring job leaves the
previous output as it was.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pyarrow as pa

from sparkdl.config import ConfigError, DataConfig
from sparkdl.features import FEATURES
from sparkdl.lake import absolute
from sparkdl.spark_errors import python_exception_line
from sparkdl.stages import StageClock
from sparkdl.tables import TableMode, name_problem

log = logging.getLogger(__name__)


class ScoringError(RuntimeError):
    """Scoring could not produce a complete, trustworthy output; nothing was published."""

PREDICTION, PROBABILITY, PROBABILITIES = "prediction", "probability", "probabilities"
_MODELS: Dict[str, Tuple[object, dict]] = {}  # per Python worker: run model dir -> (model, spec)


def _cached_model(model_dir: str):
    if model_dir not in _MODELS:
        from sparkdl.models import load_model

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

    from sparkdl.embeddings import INDICES
    from sparkdl.rank.reader import feature_matrix, index_matrix

    torch.set_num_threads(1)  # one task per core: a scoring task's network uses its own core only
    spec = _cached_model(model_dir)[1]
    batch = pa.RecordBatch.from_struct_array(rows)
    names = batch.schema.names
    ok = None if reason is None else pc.is_null(batch.column(names.index(reason))).to_numpy(zero_copy_only=False)
    if ok is not None and ok.all():
        ok = None
    matrix = feature_matrix(batch.column(names.index(FEATURES)), FEATURES, "the rows to score")
    if len(batch) and matrix.shape[1] != width:
        raise ValueError(f"the rows to score hold {matrix.shape[1]} feature values each, not {width}: the "
                         "input was not prepared with this run's pipeline")
    inputs = [matrix.reshape(len(batch), width)]
    if spec.get("embeddings"):
        inputs.append(index_matrix(batch.column(names.index(INDICES)), INDICES, "the rows to score"))
    p = network_outputs(model_dir, [x if ok is None else x[ok] for x in inputs], batch_rows)
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

    from sparkdl.models import predictions

    model, spec = _cached_model(model_dir)
    tensors = [torch.from_numpy(x) for x in inputs]
    parts = []
    with torch.inference_mode():
        for i in range(0, max(len(tensors[0]), 1), batch_rows):  # an empty input still gives its shape
            parts.append(predictions(model(*[t[i:i + batch_rows] for t in tensors]), spec).numpy())
    p = np.concatenate(parts).astype(np.float64)
    finite = np.isfinite(p).reshape(len(p), -1).all(axis=1)
    if not finite.all():  # float32 overflowed inside the network on extreme inputs: redo those in float64
        with torch.inference_mode():
            redo = predictions(_float64_model(model_dir)(tensors[0][~finite].double(),
                                                         *[t[~finite] for t in tensors[1:]]), spec).numpy()
        p[~finite] = redo.reshape(p[~finite].shape)
        finite = np.isfinite(p).reshape(len(p), -1).all(axis=1)
    if not finite.all():
        raise ValueError(f"the model gave NaN or infinite outputs for {int((~finite).sum())} of {len(p)} rows "
                         f"(the inputs are finite): the run's model is broken; check its training loss history")
    return p


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
    scored = df.select(*keep, network(F.struct(*[F.col(f"`{n}`") for n in inputs + ([reason] if reason else [])]))
                       .alias("_p"))
    return scored.select(*keep, *[F.col(f"_p.{f.name}") for f in fields])


@dataclass(frozen=True)
class ScoreReport:
    """What a scoring job did: rows in = scored + quarantined."""

    output: str
    input: int
    scored: int
    quarantined: int
    quarantine_path: Optional[str]
    stages: Dict[str, float] = field(default_factory=dict)


def input_data_config(data: DataConfig, input_path: str, fmt: Optional[str]) -> DataConfig:
    """How to read the rows to score: the run's reading options, for ``input_path``, in
    ``fmt`` when given (a run trained on generated or JDBC data scores files too)."""
    if fmt is None and data.format == "synthetic":
        raise ConfigError("data.format", f"the run was trained on generated data, so scoring {input_path} needs "
                                         "its format: pass --format (csv, json, parquet, ...)")
    fmt = fmt or data.format
    if fmt == "table" and name_problem(input_path):
        raise ConfigError("--input", name_problem(input_path))
    return dataclasses.replace(data, train=input_path, test=None, format=fmt)


def score(spark, run_dir: "Path | str", input_path: str, output_path: Optional[str] = None,
          fmt: Optional[str] = None, keys: Optional[List[str]] = None, *, output_table: Optional[str] = None,
          table_mode: TableMode = "error") -> ScoreReport:
    """Score ``input_path`` (a DataFrame-readable path, or a table with ``fmt="table"`` or
    a run trained on one) with a run. Predictions go to Parquet at ``output_path`` (bad rows
    at ``<output_path>.quarantine``) or to the table ``output_table`` (bad rows in
    ``<output_table>_quarantine``; ``table_mode`` error, overwrite or append). Both are
    published together, once rows in = scored + quarantined; the run, the paths and the
    tables are checked before any Spark job."""
    from sparkdl.ingest import ingest, release
    from sparkdl.outputs import scoring_output
    from sparkdl.progress import SparkStageProgress
    from sparkdl.run_model import RunModel

    model = RunModel(run_dir)
    run, cfg = model.run, model.config
    data = input_data_config(cfg.data, input_path, fmt)
    if data.format != "table":
        input_path = absolute(input_path)
        data = dataclasses.replace(data, train=input_path)
    output = scoring_output(spark, output_path, output_table, table_mode)
    output.check()
    clock = StageClock()
    with SparkStageProgress(spark, cfg.progress, "score"):
        try:
            with clock.stage("ingest"):
                accepted, report = ingest(spark, data, cfg.schema, input_path, output.stage_quarantine, key="input",
                                          require_label=False)
            keep = keys or list(cfg.schema.keys) or [c.name for c in cfg.schema.columns]
            with clock.stage("predict_and_write"):  # features, the model and the write: one Spark job
                preds = model.predict_rows(accepted, keep)
                output.check(preds.schema)
                try:
                    output.stage(preds)
                except Exception as e:  # a Py4J wall: show the Python error the task raised
                    line = python_exception_line(e)
                    if line is None:
                        raise
                    raise ScoringError(f"scoring {input_path} with run {run.name} failed: {line}; nothing was "
                                       f"written to {output.location}") from None
            with clock.stage("verify"):
                scored = output.staged_rows(spark)
            release(accepted)
            if scored + report.quarantined != report.input:
                raise ScoringError(f"rows in {report.input} != scored {scored} + quarantined {report.quarantined}: "
                                   f"rows were lost; nothing was published to {output.location}")
            output.publish()
        finally:
            output.discard()
    log.info("scored %d rows (%d quarantined) into %s", scored, report.quarantined, output.location)
    return ScoreReport(output.location, report.input, scored, report.quarantined, report.quarantine_path,
                       clock.seconds)
