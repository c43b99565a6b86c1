"""What a job's input is, as of now, without reading it: the listing of its files (path,
size, modification time) or a catalog table's files; what a scheduled job compares to
tell "nothing new landed" from new data.

Local paths are listed with the file system; other URIs through Spark's ``binaryFile``
source with only its listing columns selected, so no file is read. Sources that cannot
be listed (JDBC, views) have no listing: a job on them always runs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Dict, List, Optional

from sparkdl.core.config import DataConfig
from sparkdl.preparation.examples import resolve_path

log = logging.getLogger(__name__)


def _local_listing(path: str) -> Optional[List[List[Any]]]:
    local = path[len("file://"):] if path.startswith("file://") else path
    if os.path.isdir(local):
        files = sorted(os.path.join(d, f) for d, dirs, fs in os.walk(local) for f in fs
                       if not f.startswith((".", "_")) and not any(p.startswith((".", "_"))
                                                                  for p in os.path.relpath(d, local).split(os.sep)
                                                                  if p != "."))
    elif os.path.exists(local):
        files = [local]
    else:
        return None
    return [[f, (st := os.stat(f)).st_size, st.st_mtime_ns] for f in files]


def _spark_listing(spark, path: str) -> List[List[Any]]:
    rows = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(path)
            .select("path", "length", "modificationTime").collect())
    return sorted([r["path"], int(r["length"]), str(r["modificationTime"])] for r in rows)


def _table_location(spark, name: str) -> Optional[str]:
    """A catalog table's storage location; None for a view."""
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
    info = {r[0]: r[1] for r in rows}
    if str(info.get("Type", "")).upper() == "VIEW" or not info.get("Location"):
        return None
    return str(info["Location"])


def source_listing(spark, data: DataConfig, path: str) -> Optional[List[List[Any]]]:
    """The files behind one source path (or table) of ``data``; None when it cannot be listed."""
    if data.format == "jdbc":
        return None
    if data.format == "table":
        from sparkdl.core.tables import is_table_name

        if not is_table_name(path) or spark.catalog.tableExists(path) is False:
            return None
        try:
            location = _table_location(spark, path)
        except Exception as e:  # a temporary view, or a catalog without DESCRIBE EXTENDED
            log.info("input %s: no storage location (%s)", path, str(e).splitlines()[0])
            return None
        return None if location is None else _listing(spark, location)
    return _listing(spark, resolve_path(path))


def _listing(spark, path: str) -> Optional[List[List[Any]]]:
    if "://" not in path or path.startswith("file://"):
        return _local_listing(path)
    return _spark_listing(spark, path)


def input_listing(spark, data: DataConfig) -> Optional[Dict[str, Any]]:
    """``{"train": listing, "test": listing}`` of the job's sources, or None when one of
    them cannot be listed. Generated data is fixed by the config alone."""
    if data.format == "synthetic":
        return {"train": "generated"}
    out: Dict[str, Any] = {}
    for key in ("train", "test"):
        path = getattr(data, key)
        if path is None:
            continue
        listing = source_listing(spark, data, path)
        if listing is None:
            log.info("data.%s %s cannot be listed: a repeat of this job cannot be recognized", key, path)
            return None
        out[key] = listing
    return out


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
