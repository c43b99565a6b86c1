"""Spark ML persistence for a run's Transformer: ``model.save(path)`` /
``Model.load(path)``, alone or as a stage of a saved ``PipelineModel``.

A saved model is a directory in Spark ML's layout: ``metadata/part-00000`` (one JSON line:
class, uid, Params, Spark version, and sparkdl's own state) beside ``run/``, a complete
copy of the run (network, preprocessing, config, manifest, metrics), so the copy scores
without the lake it came from. The directory is written beside its final path and
renamed into place: a reader never sees half of one, and ``write().overwrite()`` swaps
the old one out whole. Paths are files on a local or mounted file system (the lake's).
"""
from __future__ import annotations

import importlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Dict

from pyspark.ml.util import DefaultParamsWriter, MLReader, MLWriter

from sparkdl.core.errors import LakeError
from sparkdl.core.lake import COMMIT_MARKER, absolute, publish_dirs, staging_path

log = logging.getLogger(__name__)

METADATA = "metadata"
RUN = "run"
#: The metadata's key for what a model class keeps besides its Params.
STATE = "sparkdl"


def _local(path: str) -> Path:
    if "://" in path and not path.startswith("file://"):
        raise LakeError(f"cannot save or load a sparkdl model at {path!r}: give a path on a local or mounted file "
                        "system (the lake's), e.g. /dbfs/... rather than dbfs:/...")
    return Path(absolute(path[len("file://"):] if path.startswith("file://") else path))


class RunModelWriter(MLWriter):
    """Writes a run's Transformer (see the module docstring)."""

    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def save(self, path: str) -> None:
        final = _local(path)
        if final.exists() and not self.shouldOverwrite:
            raise LakeError(f"{final} already exists; use model.write().overwrite().save(path) to replace it")
        stage = staging_path(final)
        shutil.rmtree(stage, ignore_errors=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copytree(self.instance.run.path, stage / RUN)
            meta = json.loads(DefaultParamsWriter._get_metadata_to_save(
                self.instance, self.sparkSession, extraMetadata={STATE: self.instance.saved_state()}))
            (stage / METADATA).mkdir()
            (stage / METADATA / "part-00000").write_text(json.dumps(meta) + "\n")
            (stage / METADATA / "_SUCCESS").touch()
            (stage / COMMIT_MARKER).touch()
            publish_dirs([(stage, final)])
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        log.info("saved %s to %s", type(self.instance).__name__, final)


def read_metadata(path: Path) -> Dict[str, Any]:
    parts = sorted((path / METADATA).glob("part-*"))
    if not parts or not (path / RUN).is_dir():
        raise LakeError(f"{path} is not a saved sparkdl model (it needs {METADATA}/part-* and {RUN}/); "
                        "save one with model.save(path)")
    return json.loads(parts[0].read_text().splitlines()[0])


class RunModelReader(MLReader):
    """Reads what :class:`RunModelWriter` wrote, as the class that wrote it (a subclass
    of the reading class)."""

    def __init__(self, cls: type):
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        where = _local(path)
        meta = read_metadata(where)
        module, _, name = meta["class"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        if not issubclass(cls, self.cls):
            raise LakeError(f"{where} holds a {meta['class']}, not a {self.cls.__name__}: load it with "
                            f"{name}.load(path)")
        model = cls.from_saved(where / RUN, meta.get(STATE) or {})
        model._resetUid(meta["uid"])
        for param, value in meta.get("paramMap", {}).items():  # defaults are the class's own
            if model.hasParam(param):
                model.set(model.getParam(param), value)
        return model
