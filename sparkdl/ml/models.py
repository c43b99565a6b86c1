"""What the estimators return: a committed run as a Spark ML model that reads the
DataFrame the estimator was fitted on (vectors and all) and writes Spark ML's columns, so
evaluators, ``Pipeline`` and ``CrossValidator`` use it like any other model. Scoring is
the run's own (:class:`~sparkdl.serving.transformer.RunModel`); persistence too."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List

from pyspark.ml.param.shared import HasPredictionCol

from sparkdl.core.columns import PREDICTION, PROBABILITIES, PROBABILITY
from sparkdl.core.errors import ParamError
from sparkdl.ml.frames import ORIGINAL, FrameLayout
from sparkdl.ml.params import ClassifierOutputParams, with_accessors
from sparkdl.serving.transformer import RunModel


class DeepModel(RunModel, HasPredictionCol):
    """A fitted estimator's run with the layout of the DataFrame it was fitted on."""

    def __init__(self, run_path: "Path | str", layout: FrameLayout):
        super().__init__(run_path)
        self.layout = layout
        self._setDefault(predictionCol="prediction")

    @classmethod
    def from_saved(cls, run_path: Path, state: dict) -> "DeepModel":
        return cls(run_path, FrameLayout(**state["layout"]))

    def saved_state(self) -> dict:
        return {**super().saved_state(), "layout": dataclasses.asdict(self.layout)}

    @property
    def run_id(self) -> str:
        return self.run.name

    def outputs(self) -> Dict[str, object]:
        """Output column name -> its value from the run's own scoring columns."""
        from pyspark.sql import functions as F

        return {self.getOrDefault(self.predictionCol): F.col(PREDICTION).cast("double")}

    def _transform(self, dataset):
        from pyspark.sql import functions as F

        outputs = self.outputs()
        clash = sorted(set(outputs) & set(dataset.columns))
        if clash:
            raise ParamError("predictionCol", f"the DataFrame already has column(s) {clash}, which this model "
                                              "adds: set other output column names or drop them", type(self).__name__)
        if self.layout.image:  # decoded on the executors; a row that does not decode keeps its reason
            from sparkdl.core.columns import REASON, SCORE_ERROR
            from sparkdl.ml.images import decoded

            rows = decoded(dataset, self.layout.image, self.config.data.image)
            scored = self.predict_rows(rows, list(dataset.columns) + [REASON], reason=REASON)
            scored, made = scored.withColumnRenamed(REASON, SCORE_ERROR), set()
        else:  # vectors expanded, and columns cast as fitting cast them; the user's come back as they were
            projected = self.layout.project(dataset, with_label=False)
            scored = super()._transform(projected)
            made = set(projected.columns) - set(dataset.columns)
        keep = [c for c in scored.columns if c not in made and c not in (PREDICTION, PROBABILITY, PROBABILITIES)]
        originals = [c for c in scored.columns if c.startswith(ORIGINAL)]
        out = scored.select(*[F.col(f"`{c}`") for c in keep + originals], *[v.alias(k) for k, v in outputs.items()])
        return FrameLayout.restore(out, keep + list(outputs))


@with_accessors
class DeepRegressionModel(DeepModel):
    """A fitted :class:`~sparkdl.ml.estimators.DeepRegressor`: ``prediction`` in the label's units."""


@with_accessors
class DeepClassificationModel(DeepModel, ClassifierOutputParams):
    """A fitted :class:`~sparkdl.ml.estimators.DeepClassifier` (outputs: see
    :class:`~sparkdl.ml.params.ClassifierOutputParams`)."""

    @property
    def classes(self) -> List[str]:
        return self.manifest.classes

    @property
    def numClasses(self) -> int:  # noqa: N802 (Spark ML's name)
        return len(self.classes)

    def outputs(self) -> Dict[str, object]:
        from pyspark.ml.functions import array_to_vector
        from pyspark.sql import functions as F

        try:
            [float(c) for c in self.classes]
            value = F.col(PREDICTION).cast("double")
        except ValueError:  # text classes: the class's index in ``classes``
            value = (F.array_position(F.array(*[F.lit(c) for c in self.classes]), F.col(PREDICTION)) - 1).cast("double")
        # a row that did not score has no probabilities (array_to_vector fails on a null)
        vector = F.when(F.col(PROBABILITIES).isNotNull(), array_to_vector(F.col(PROBABILITIES)))
        named = {self.getOrDefault(self.predictionCol): value,
                 self.getOrDefault(self.predictedLabelCol): F.col(PREDICTION),
                 self.getOrDefault(self.probabilityCol): vector,
                 self.getOrDefault(self.rawPredictionCol): vector}
        return {k: v for k, v in named.items() if k}
