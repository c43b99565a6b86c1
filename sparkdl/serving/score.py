"""Batch scoring with a finished run, inside Spark: the driver's score job.

The run's preprocessing PipelineModel is reapplied unchanged and the network runs in
:mod:`sparkdl.serving.predict`. Input rows that do not parse (or hold NaN/infinite
numbers) are quarantined, so rows in = rows out + quarantined. Predictions and
quarantine are staged (:mod:`sparkdl.serving.outputs`: a directory or a table) and published
together only when those counts add up: a failed or interrupted scoring job leaves the
previous output as it was.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from sparkdl.core.config import DataConfig
from sparkdl.core.errors import ConfigError, ScoringError
from sparkdl.core.lake import absolute
from sparkdl.core.progress import SparkStageProgress
from sparkdl.core.spark_errors import python_exception_line
from sparkdl.core.stopwatch import StageClock
from sparkdl.core.tables import TableMode, name_problem
from sparkdl.preparation.ingest import ingest, release
from sparkdl.serving.outputs import scoring_output
from sparkdl.serving.transformer import RunModel

log = logging.getLogger(__name__)


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
