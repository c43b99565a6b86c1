"""The job's steps as one Python API, shared by the CLI, jobs/ and notebooks."""
from __future__ import annotations

import logging

from sparkdl.config import JobConfig
from sparkdl.lake import Lake
from sparkdl.materialize import MANIFEST, Manifest, materialize
from sparkdl.session import get_spark

log = logging.getLogger(__name__)


def prepare(cfg: JobConfig, lake: str, spark=None) -> Manifest:
    """Ingest, featurize and materialize ``cfg``'s data into ``lake``; return the manifest."""
    spark = spark or get_spark(cfg.spark)
    manifest = materialize(spark, cfg, Lake(lake))
    log.info("manifest: %s/%s", manifest.paths["dataset"], MANIFEST)
    return manifest


def current_manifest(cfg: JobConfig, lake: str) -> Manifest:
    """The manifest of the dataset ``cfg`` last prepared in ``lake``."""
    return Manifest.load(Lake(lake).current_dataset(cfg.name))



