"""A finished run as a Spark ML ``Transformer``: its preprocessing and its network, applied
to any DataFrame that holds the raw input columns.

``transform(df)`` checks the columns first (a missing or wrongly typed input column is a
:class:`~sparkdl.core.config.ConfigError` naming it, before any Spark job), then validates
each row the way ingest does (text trimmed, the declared null values, each value parsed
as its declared type, non-finite numbers refused) and adds the predictions. A row that
fails validation is kept, with null predictions and its reason in ``score_error``: no row
is dropped or scored from a value the model never saw in that form. ``sparkdl score`` is
this Transformer after ingest (which quarantines bad rows to files instead)::

    model = sparkdl.load_run("adult-20261124-...", lake="/lake")
    model.transform(spark.table("applicants")).createOrReplaceTempView("scored")
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence

from pyspark.ml import Transformer
from pyspark.ml.util import MLReadable, MLWritable

from sparkdl.core.champions import resolve_run
from sparkdl.core.columns import SCORE_ERROR
from sparkdl.core.config import JobConfig
from sparkdl.core.errors import ConfigError
from sparkdl.core.lake import Lake, require_run
from sparkdl.core.rundir import RunDir
from sparkdl.core.types import SPARK_INPUTS

#: Where scoring keeps a many-valued column as the caller gave it, while its checked copy is read.
_KEPT = "_sparkdl_given_"

log = logging.getLogger(__name__)


def load_run(run: "Path | str", lake: Optional[str] = None) -> "RunModel":
    """The run at path ``run``, or with ``lake``, the run of that id in the lake, or the
    model in service there: ``load_run("champion:adult", lake="/lake")``."""
    return RunModel(resolve_run(Lake(lake) if lake else None, str(run)))


class RunModel(Transformer, MLWritable, MLReadable):
    """Preprocessing + network of one committed run (see the module docstring).
    ``save(path)`` / ``RunModel.load(path)`` keep a self-contained copy
    (:mod:`~sparkdl.serving.persistence`)."""

    def __init__(self, run_path: "Path | str"):
        super().__init__()
        from sparkdl.core.config.loading import parse_config
        from sparkdl.preparation.materialize import Manifest

        self.run = RunDir(require_run(run_path))
        self.config: JobConfig = parse_config(self.run.read_config())
        self.manifest = Manifest.load(self.run.manifest)
        self._preprocessing = None

    @classmethod
    def from_saved(cls, run_path: Path, state: dict) -> "RunModel":
        """The model a saved directory holds: its run copy and what :meth:`saved_state` kept."""
        return cls(run_path)

    def saved_state(self) -> dict:
        """What a subclass keeps in a saved model's metadata besides its Params."""
        return {"run_id": self.run.name}

    def write(self):
        from sparkdl.serving.persistence import RunModelWriter

        return RunModelWriter(self)

    @classmethod
    def read(cls):
        from sparkdl.serving.persistence import RunModelReader

        return RunModelReader(cls)

    def preprocessing(self):
        """The run's PipelineModel, embedding plan and vector scalings, loaded on first use and
        kept: loading a PipelineModel runs a Spark job per stage (2–3 s for Adult's), once per
        model, not per call."""
        if self._preprocessing is None:
            from sparkdl.preparation.embeddings import load_plan
            from sparkdl.preparation.features import load_preprocessing
            from sparkdl.preparation.multivalued import load_scaling

            where = self.run.preprocessing
            self._preprocessing = (load_preprocessing(where), load_plan(where), load_scaling(where))
        return self._preprocessing

    @property
    def input_columns(self) -> List[str]:
        """The declared columns the network reads (not the label or the validation indicator)."""
        return self.config.schema.inputs

    def check_input(self, df) -> None:
        """A clear error for a missing or unusable input column, before any Spark job."""
        if self.manifest.image is not None:
            raise ConfigError("data.format", f"run {self.run.name} was trained on image files: score files with "
                                             "`sparkdl score` (a DataFrame of decoded images is not supported)")
        types = dict(df.dtypes)
        missing = [n for n in self.input_columns if n not in types]
        if missing:
            raise ConfigError("input", f"the DataFrame has no column(s) {missing}, which run {self.run.name} reads; "
                                       f"it has {sorted(types)}. Rename or add them (schema.columns of the run)")
        for c in self.config.schema.columns:
            allowed = SPARK_INPUTS[c.type]
            if c.name in types and allowed is not None and types[c.name] not in allowed:
                raise ConfigError("input", f"column '{c.name}' is {types[c.name]}, but run {self.run.name} reads it "
                                           f"as {c.type}: cast it to {c.type} (or to string, parsed row by row)")
        clash = [n for n in self.output_columns if n in types]
        if clash:
            raise ConfigError("input", f"the DataFrame already has column(s) {clash}, which scoring adds: "
                                       "drop or rename them first")

    @property
    def output_columns(self) -> List[str]:
        from sparkdl.serving.predict import prediction_fields

        return [f.name for f in prediction_fields(self.manifest.task)] + [SCORE_ERROR]

    def _transform(self, dataset):
        from pyspark.sql import functions as F

        from sparkdl.core.columns import CORRUPT, FILE, RAW, REASON
        from sparkdl.preparation.ingest import validate

        self.check_input(dataset)
        schema, data = self.config.schema, self.config.data
        declared = [c.name for c in schema.columns]
        absent = {n: F.lit(None).cast("string") for n in schema.not_inputs if n not in dataset.columns}
        df = dataset.withColumns(absent) if absent else dataset  # Connect refuses an empty withColumns
        # validation turns a vector into its plain struct: the caller gets the column it gave back
        kept = {n: _KEPT + n for n in schema.many if n in dataset.columns}
        carry = [n for n in dataset.columns if n not in declared]
        rows = df.select(*[F.col(f"`{n}`") for n in declared], *[F.col(f"`{n}`") for n in carry],
                         *[F.col(f"`{n}`").alias(k) for n, k in kept.items()],
                         F.lit(None).cast("string").alias(RAW), F.lit(None).cast("string").alias(FILE),
                         F.lit(None).cast("string").alias(CORRUPT))
        checked = validate(rows, schema, data.null_values, require_label=False, non_finite=data.non_finite,
                           carry=carry + list(kept.values()))
        keep = [kept.get(n, n) for n in dataset.columns]
        out = self.predict_rows(checked, keep + [REASON], reason=REASON)
        given = dict(zip(keep, dataset.columns))
        return out.select(*[F.col(f"`{c}`").alias(given.get(c, SCORE_ERROR if c == REASON else c))
                            for c in out.columns])

    def predict_rows(self, rows, keep: Sequence[str], reason: Optional[str] = None):
        """``keep`` columns of validated, typed ``rows`` plus the predictions (null where
        the ``reason`` column is set): the run's PipelineModel, then the network in an
        Arrow UDF, one pass."""
        from sparkdl.core.rundir import PLAN_FILE
        from sparkdl.preparation.features import to_training_frame
        from sparkdl.serving.predict import predict_frame

        pipeline, plan, scaling = self.preprocessing()
        feats = to_training_frame(pipeline, rows, self.config.schema, keep=list(keep), with_label=False,
                                  embeddings=plan, plan_path=str(self.run.preprocessing / PLAN_FILE) if plan else None,
                                  scaling=scaling)
        return predict_frame(feats, str(self.run.model), self.manifest, list(keep), reason=reason)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.run.path})"
