"""Where scoring publishes its predictions and its quarantined rows: a directory of
Parquet or a table in the session's catalog. Both are written under a staging name,
counted, and moved into place only when rows in = scored + quarantined, so a failed or
interrupted job leaves the previous output as it was."""
from __future__ import annotations

import shutil
import uuid
from typing import Optional

from sparkdl.core.columns import QUARANTINE_SUFFIX
from sparkdl.core.errors import LakeError
from sparkdl.core.lake import absolute, local_path, publish_dirs
from sparkdl.core.tables import TableMode, TableWriter, suffixed


class DirectoryOutput:
    """``<path>`` (predictions) and ``<path>.quarantine`` (bad rows), replaced together by
    renames of directories staged beside them."""

    def __init__(self, path: str):
        if "://" in path and not path.startswith("file://"):
            raise LakeError(f"--output {path!r}: scoring publishes to a local or file:// path (a shared file "
                            "system on a cluster); object stores are not supported by this version")
        self.final = local_path(absolute(path.rstrip("/")))
        self.final_quarantine = self.final.with_name(self.final.name + ".quarantine")
        self._stage = self.final.with_name(f".{self.final.name}.staging-{uuid.uuid4().hex[:8]}")

    @property
    def location(self) -> str:
        return str(self.final)

    def check(self, schema=None) -> None:
        """Nothing to refuse: a directory output replaces what was there."""

    def stage_quarantine(self, bad) -> str:
        bad.coalesce(1).write.mode("overwrite").parquet(str(self._stage / "quarantine"))
        return str(self.final_quarantine)

    def stage(self, preds) -> None:
        preds.write.mode("overwrite").parquet(str(self._stage / "predictions"))

    def staged_rows(self, spark) -> int:
        return spark.read.parquet(str(self._stage / "predictions")).count()

    def publish(self) -> None:
        # A missing staged quarantine removes the old one: a rerun leaves no stale bad rows.
        publish_dirs([(self._stage / "quarantine", self.final_quarantine), (self._stage / "predictions", self.final)])

    def discard(self) -> None:
        shutil.rmtree(self._stage, ignore_errors=True)


class TableOutput:
    """Table ``<name>`` (predictions) and ``<name>_quarantine`` (bad rows), written in the
    same ``mode``: ``error`` (neither may exist), ``overwrite`` or ``append``."""

    def __init__(self, spark, name: str, mode: TableMode = "error"):
        self.predictions = TableWriter(spark, name, mode, "--output-table")
        self.quarantine = TableWriter(spark, suffixed(name, QUARANTINE_SUFFIX), mode, "--output-table (its quarantine)")

    @property
    def location(self) -> str:
        return self.predictions.name

    def check(self, schema=None) -> None:
        self.predictions.check(schema)
        self.quarantine.check()

    def stage_quarantine(self, bad) -> str:
        self.quarantine.check(bad.schema)
        self.quarantine.stage(bad)
        return self.quarantine.name

    def stage(self, preds) -> None:
        self.predictions.stage(preds)

    def staged_rows(self, spark) -> int:
        return self.predictions.staged_rows()

    def publish(self) -> None:
        self.quarantine.publish()  # the table downstream jobs wait for goes last
        self.predictions.publish()

    def discard(self) -> None:
        for writer in (self.quarantine, self.predictions):
            writer.discard()


def scoring_output(spark, path: Optional[str], table: Optional[str], table_mode: TableMode = "error"):
    """The output a scoring job names: exactly one of a directory and a table."""
    if (path is None) == (table is None):
        raise LakeError("scoring needs exactly one output: --output PATH (Parquet) or --output-table NAME")
    return DirectoryOutput(path) if path is not None else TableOutput(spark, table, table_mode)
