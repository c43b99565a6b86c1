"""Tables in the session's catalog: names, existence checks, and publishing a DataFrame
as a table without readers ever seeing half of it.

A table is written under a staging name in the same database first (any failure
leaves the target as it was), counted, and only then moved into place: renamed when
the target is new or replaced, inserted in one Spark job when appending.
"""
from __future__ import annotations

import logging
import re
import uuid
from typing import List, Literal, Optional

from sparkdl.core.errors import TableError

log = logging.getLogger(__name__)

TableMode = Literal["error", "overwrite", "append"]
TABLE_MODES = ("error", "overwrite", "append")

# [catalog.][database.]table; each part plain or in backticks. Spark's catalogs accept
# letters, digits and underscores in table and database names.
_PART = r"(?:[A-Za-z0-9_]+|`[A-Za-z0-9_]+`)"
_NAME = re.compile(rf"^{_PART}(?:\.{_PART}){{0,2}}$")


def is_table_name(name: str) -> bool:
    return bool(_NAME.match(name or ""))


def name_problem(name: str) -> Optional[str]:
    """Why ``name`` is not a table name, or None."""
    if is_table_name(name):
        return None
    return (f"{name!r} is not a table name: write [catalog.][database.]table, each part letters, "
            "digits and underscores (optionally in backticks)")


def _parts(name: str) -> List[str]:
    return [p.strip("`") for p in name.split(".")]


def _quoted(parts: List[str]) -> str:
    return ".".join(f"`{p}`" for p in parts)


def suffixed(name: str, suffix: str) -> str:
    """``name`` with ``suffix`` added to its table part (``db.t`` → ``db.t_quarantine``)."""
    head, _, last = name.rpartition(".")
    last = f"`{last.strip('`')}{suffix}`" if last.startswith("`") else last + suffix
    return f"{head}.{last}" if head else last


def missing_table_message(spark, name: str) -> Optional[str]:
    """None when ``name`` exists; otherwise what the catalog has instead, for an error."""
    if spark.catalog.tableExists(name):
        return None
    parts = _parts(name)
    database = parts[-2] if len(parts) > 1 else spark.catalog.currentDatabase()
    try:
        names = sorted(t.name for t in spark.catalog.listTables(database) if not t.isTemporary)
        there = f"tables in database '{database}': {names[:20]}{' ...' if len(names) > 20 else ''}"
    except Exception:  # the database itself does not exist
        there = f"there is no database '{database}'"
    try:
        impl = spark.conf.get("spark.sql.catalogImplementation")
    except Exception:  # Spark Connect may not expose it
        impl = "unknown"
    return (f"table {name!r} does not exist in the session's catalog (spark.sql.catalogImplementation={impl}; "
            f"{there}). Fix the name, create the table, or point Spark at the metastore that has it "
            "(spark.conf: spark.sql.catalogImplementation: hive and its settings)")


class TableWriter:
    """One table written as ``mode`` says (``error``: it must not exist; ``overwrite``:
    replaced whole; ``append``: rows added, the columns must match), through a staging
    table. Call :meth:`check` before expensive work, then :meth:`stage`, :meth:`publish`
    and always :meth:`discard` (which drops a staging table that was not published)."""

    def __init__(self, spark, name: str, mode: TableMode, what: str = "--output-table"):
        problem = name_problem(name)
        if problem:
            raise TableError(f"{what}: {problem}")
        if mode not in TABLE_MODES:
            raise TableError(f"{what}: mode {mode!r} is not one of {', '.join(TABLE_MODES)}")
        self.spark, self.name, self.mode, self.what = spark, name, mode, what
        parts = _parts(name)
        self.staging = _quoted(parts[:-1] + [f"{parts[-1]}__sparkdl_staging_{uuid.uuid4().hex[:8]}"])
        # RENAME TO takes the name inside the catalog: [database.]table
        self._rename_to = _quoted(parts[-2:])
        self._staged = False

    def exists(self) -> bool:
        return self.spark.catalog.tableExists(self.name)

    def check(self, schema=None) -> None:
        """Refuse now what :meth:`publish` would refuse later: an existing table in
        ``error`` mode; in ``append`` mode, columns (``schema``, when given) that differ."""
        if not self.exists():
            return
        if self.mode == "error":
            raise TableError(f"{self.what}: table {self.name!r} already exists. Choose another name, or replace it "
                             "(--table-mode overwrite) or add to it (--table-mode append)")
        if self.mode == "append" and schema is not None:
            have = {f.name: f.dataType.simpleString() for f in self.spark.read.table(self.name).schema}
            want = {f.name: f.dataType.simpleString() for f in schema}
            if have != want:
                diff = sorted(set(have.items()) ^ set(want.items()))
                raise TableError(f"{self.what}: cannot append to {self.name!r}: its columns {have} differ from the "
                                 f"rows to write {want} (differences: {diff}). Write a new table or use "
                                 "--table-mode overwrite")

    def stage(self, df) -> None:
        """Write ``df`` as the staging table."""
        self._staged = True
        df.write.saveAsTable(self.staging)

    def staged_rows(self) -> int:
        return self.spark.read.table(self.staging).count()

    def publish(self) -> None:
        """Move the staged rows into the target. Replacing drops the old table, then
        renames: a crash between the two leaves the new rows under the staging name (logged)."""
        if not self._staged:
            if self.mode == "overwrite" and self.exists():  # nothing to publish: no stale table either
                self.spark.sql(f"DROP TABLE {self.name}")
            return
        exists = self.exists()
        if exists and self.mode == "error":
            raise TableError(f"{self.what}: table {self.name!r} was created by someone else while this job ran; "
                             "nothing was written to it")
        if exists and self.mode == "append":
            self.spark.sql(f"INSERT INTO {self.name} BY NAME SELECT * FROM {self.staging}")
            self.spark.sql(f"DROP TABLE {self.staging}")
        else:
            if exists:
                log.info("replacing table %s (the new rows wait in %s until the rename)", self.name, self.staging)
                self.spark.sql(f"DROP TABLE {self.name}")
            self.spark.sql(f"ALTER TABLE {self.staging} RENAME TO {self._rename_to}")
        self._staged = False
        log.info("published table %s (%s)", self.name, self.mode)

    def discard(self) -> None:
        """Drop the staging table if it was not published (after a failure)."""
        if self._staged:
            self.spark.sql(f"DROP TABLE IF EXISTS {self.staging}")
            self._staged = False
