"""Batch scoring with a finished run, inside Spark.

The run's preprocessing PipelineModel is reapplied unchanged; the network is built once
per Python worker (cached by run path) and fed whole Arrow record batches through
``mapInArrow``, never row by row. Input rows that do not parse are quarantined, so
rows in = rows out + quarantined.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from sparkdl.features import FEATURES
from sparkdl.rundir import RunDir
from sparkdl.stages import StageClock

log = logging.getLogger(__name__)

PREDICTION, PROBABILITY, PROBABILITIES = "prediction", "probability", "probabilities"
_MODELS: Dict[str, Tuple[object, dict]] = {}  # per Python worker: run model dir -> (model, spec)


def _cached_model(model_dir: str):
    if model_dir not in _MODELS:
        import torch

        from sparkdl.models import load_model

        torch.set_num_threads(1)
        _MODELS[model_dir] = load_model(model_dir)
    return _MODELS[model_dir]


def predict_batches(batches: Iterator, model_dir: str, classes: List[str], width: int,
                    passthrough: List[str], batch_rows: int = 8192) -> Iterator:
    """mapInArrow body: Arrow batches with ``features`` → passthrough columns, ``prediction``
    (class name), ``probability`` (of that class) and ``probabilities`` (every class, in
    the manifest's class order)."""
    import numpy as np
    import pyarrow as pa
    import torch

    model, _ = _cached_model(model_dir)
    class_arr = np.array(classes, dtype=object)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        col = batch.column(batch.schema.get_field_index(FEATURES))
        flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        if flat.size != batch.num_rows * width:
            raise ValueError(f"a batch of {batch.num_rows} rows holds {flat.size} feature values, not "
                             f"{batch.num_rows} x {width}: the input was not prepared with this run's pipeline")
        x = torch.from_numpy(flat.reshape(batch.num_rows, width))
        probs = []
        with torch.inference_mode():
            for i in range(0, len(x), batch_rows):
                probs.append(torch.softmax(model(x[i:i + batch_rows]).float(), dim=1).numpy())
        p = np.concatenate(probs)
        best = p.argmax(1)
        cols = [batch.column(batch.schema.get_field_index(n)) for n in passthrough]
        cols.append(pa.array(class_arr[best], pa.string()))
        cols.append(pa.array(p[np.arange(len(p)), best].astype(np.float64)))
        cols.append(pa.FixedSizeListArray.from_arrays(pa.array(p.astype(np.float64).ravel()), len(classes))
                    .cast(pa.list_(pa.float64())))
        yield pa.RecordBatch.from_arrays(cols, names=passthrough + [PREDICTION, PROBABILITY, PROBABILITIES])


def predict_frame(df, model_dir: str, classes: List[str], width: int, passthrough: List[str]):
    """Apply the model to a DataFrame holding a ``features`` array column."""
    from functools import partial

    from pyspark.sql.types import ArrayType, DoubleType, StringType, StructField, StructType

    fields = [df.schema[n] for n in passthrough]
    out = StructType(fields + [StructField(PREDICTION, StringType()), StructField(PROBABILITY, DoubleType()),
                               StructField(PROBABILITIES, ArrayType(DoubleType()))])
    fn = partial(predict_batches, model_dir=model_dir, classes=list(classes), width=width,
                 passthrough=list(passthrough))
    return df.select(*passthrough, FEATURES).mapInArrow(fn, out)


@dataclass(frozen=True)
class ScoreReport:
    """What a scoring job did: rows in = scored + quarantined."""

    output: str
    input: int
    scored: int
    quarantined: int
    quarantine_path: Optional[str]
    stages: Dict[str, float] = field(default_factory=dict)


def score(spark, run_dir: "Path | str", input_path: str, output_path: str, fmt: Optional[str] = None,
          keys: Optional[List[str]] = None) -> ScoreReport:
    """Score a DataFrame-readable input with a run; write Parquet predictions."""
    from pyspark.ml import PipelineModel

    from sparkdl.config_loading import parse_config
    from sparkdl.features import to_training_frame
    from sparkdl.ingest import ingest, release
    from sparkdl.materialize import Manifest

    run = RunDir(Path(run_dir))
    cfg = parse_config(run.read_config())
    manifest = Manifest.load(run.manifest)
    data = cfg.data if fmt is None else dataclasses.replace(cfg.data, format=fmt)
    quarantine = f"{output_path.rstrip('/')}.quarantine"
    clock = StageClock()
    with clock.stage("ingest"):
        accepted, report = ingest(spark, data, cfg.schema, input_path, quarantine, key="input",
                                  require_label=False)
    keep = keys or list(cfg.schema.keys) or [c.name for c in cfg.schema.columns]
    with clock.stage("predict_and_write"):  # features, the model and the Parquet write run as one Spark job
        pipeline = PipelineModel.load(str(run.preprocessing))
        feats = to_training_frame(pipeline, accepted, cfg.schema, keep=keep, with_label=False)
        preds = predict_frame(feats, str(run.model), manifest.classes, manifest.feature_width, keep)
        preds.write.mode("overwrite").parquet(output_path)
    with clock.stage("verify"):
        scored = spark.read.parquet(output_path).count()
    release(accepted)
    if scored != report.accepted:
        raise RuntimeError(f"scored {scored} rows but {report.accepted} were accepted: rows were lost")
    log.info("scored %d rows (%d quarantined) into %s", scored, report.quarantined, output_path)
    return ScoreReport(output_path, report.input, scored, report.quarantined, report.quarantine_path,
                       clock.seconds)
