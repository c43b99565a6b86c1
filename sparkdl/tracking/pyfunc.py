"""A run as an MLflow ``pyfunc`` model that scores raw input rows.

Its artifacts are the run's ``model/`` (weights and spec) and ``portable.json`` (the
fitted preprocessing as numbers, :mod:`sparkdl.preparation.portable`); its signature is the declared
input columns. ``predict`` returns, per row, ``prediction`` (and for a classifier
``probability`` and ``probabilities``) and ``score_error``: the reason a row was not
scored (a value that does not parse, an infinite number), null for a scored row. The
arithmetic after the features is :func:`sparkdl.serving.predict.network_outputs`, the one
``sparkdl score`` runs.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict, List

import mlflow.pyfunc
import pandas as pd

from sparkdl.core.columns import PREDICTION, PROBABILITIES, PROBABILITY, SCORE_ERROR
from sparkdl.core.config import JobConfig
from sparkdl.core.rundir import SPEC, RunDir
from sparkdl.core.types import MLFLOW_TYPE

_MODEL_CODE = """import mlflow.models

from sparkdl.tracking.pyfunc import RunPyfunc

mlflow.models.set_model(RunPyfunc())
"""


class RunPyfunc(mlflow.pyfunc.PythonModel):
    """Loaded by MLflow from the artifacts :func:`log_pyfunc` writes."""

    def load_context(self, context) -> None:
        from sparkdl.preparation.portable import PortableFeatures

        self.model_dir = context.artifacts["network"]
        self.features = PortableFeatures.load(context.artifacts["preprocessing"])
        self.spec = json.loads((Path(self.model_dir) / SPEC).read_text())
        self.classes: List[str] = list(self.spec.get("classes") or [])

    def predict(self, context, model_input: pd.DataFrame, params=None):  # a hint MLflow takes as-is
        import numpy as np

        from sparkdl.core.columns import PREDICTION, PROBABILITIES, PROBABILITY, SCORE_ERROR
        from sparkdl.serving.predict import chosen_class, network_outputs

        features, indices, reasons = self.features.transform(model_input)
        ok = np.array([r is None for r in reasons], bool)
        inputs = [features[ok]] + ([indices[ok]] if indices is not None else [])
        p = network_outputs(self.model_dir, inputs)
        out = pd.DataFrame(index=model_input.index)
        if self.spec.get("task") == "regression":
            pred = np.full(len(ok), np.nan)  # a bad row's NaN comes with its score_error
            pred[ok] = p
            out[PREDICTION] = pred
        else:
            best = chosen_class(p, len(self.classes), self.spec)
            names = np.full(len(ok), None, dtype=object)
            names[ok] = np.array(self.classes, dtype=object)[best]
            prob = np.full(len(ok), np.nan)
            prob[ok] = p[np.arange(len(p)), best]
            every: List[Any] = [None] * len(ok)
            for i, row in zip(np.flatnonzero(ok), p):
                every[i] = row.tolist()
            out[PREDICTION], out[PROBABILITY], out[PROBABILITIES] = names, prob, every
        out[SCORE_ERROR] = reasons
        return out


def portable_features(run: RunDir, cfg: JobConfig):
    """The run's preprocessing as numbers: ``portable.json``, which ``prepare`` writes beside
    the PipelineModel; for a dataset prepared before it did, read out of the PipelineModel
    with the driver's Spark session, or a small one of this process (a run launched by
    torchrun trains without Spark)."""
    import dataclasses

    from sparkdl.core.rundir import PORTABLE_FILE
    from sparkdl.core.session import get_spark
    from sparkdl.preparation.embeddings import load_plan
    from sparkdl.preparation.features import load_preprocessing
    from sparkdl.preparation.multivalued import load_scaling
    from sparkdl.preparation.portable import PortableFeatures, export

    prepared = run.preprocessing / PORTABLE_FILE
    if prepared.is_file():
        return PortableFeatures.load(prepared)
    # the active session when there is one; else one of this process only, on loopback
    get_spark(dataclasses.replace(cfg.spark, master="local[1]", conf={
        **cfg.spark.conf, "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}))
    return export(load_preprocessing(run.preprocessing), cfg.schema, cfg.features, cfg.data,
                  load_plan(run.preprocessing), load_scaling(run.preprocessing))


def signature(cfg: JobConfig, task: str):
    """Inputs: the declared columns the network reads; outputs: what ``predict`` returns."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, Array, ColSpec, Schema

    schema = cfg.schema
    inputs = Schema([ColSpec(MLFLOW_TYPE[c.type] or AnyType(), c.name, required=True) for c in schema.columns
                     if c.name in schema.inputs])
    if task == "regression":
        outputs = [ColSpec("double", PREDICTION)]
    else:
        outputs = [ColSpec("string", PREDICTION), ColSpec("double", PROBABILITY),
                   ColSpec(Array("double"), PROBABILITIES)]
    return ModelSignature(inputs, Schema(outputs + [ColSpec("string", SCORE_ERROR, required=False)]))


def requirements() -> List[str]:
    """What the model needs where it is loaded (named here, so MLflow does not load the
    model in a subprocess to guess)."""
    import importlib.metadata as md

    names = ["sparkdl-torch", "torch", "numpy", "pandas", "pyarrow", "mlflow"]
    out = []
    for name in names:
        try:
            out.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError:
            out.append(name)
    return out


def log_pyfunc(run: RunDir, cfg: JobConfig):
    """Log ``run`` as a pyfunc model named ``model`` in the active MLflow run; returns its
    ``ModelInfo``."""
    from sparkdl.preparation.materialize import Manifest

    manifest = Manifest.load(run.manifest)
    portable = portable_features(run, cfg)
    if portable.width != manifest.feature_width:
        raise RuntimeError(f"the exported preprocessing gives {portable.width} features, the run's model reads "
                           f"{manifest.feature_width}")
    with tempfile.TemporaryDirectory() as tmp:
        path = portable.save(Path(tmp))
        network = Path(tmp) / "network"
        shutil.copytree(run.model, network)
        spec: Dict[str, Any] = json.loads((network / SPEC).read_text())
        spec.setdefault("classes", list(manifest.classes))
        (network / SPEC).write_text(json.dumps(spec))
        code = Path(tmp) / "sparkdl_run_model.py"  # MLflow's models-from-code: no pickled object
        code.write_text(_MODEL_CODE)
        with warnings.catch_warnings():  # advice for models without a signature or with typed predict(): not ours
            warnings.filterwarnings("ignore", message=".*input example was not")
            return mlflow.pyfunc.log_model(
                name="model", python_model=str(code),
                artifacts={"network": str(network), "preprocessing": str(path)},
                signature=signature(cfg, manifest.task), pip_requirements=requirements())
