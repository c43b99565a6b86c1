"""Images from files in the lake: ``<folder>/<label>/<name>``, read with Spark's
``binaryFile`` source and decoded on the executors with Pillow.

Each file becomes one row: its path, its label (the parent folder's name, or its entry
in the ``data.image.labels`` table of path → label), and its
pixels as raw uint8 bytes (channels first, ``channels x height x width``, the layout
torch's convolutions read) in the column
``_pixels``, 4x smaller than float32. A file that does not decode, or has the wrong
mode or size when conversion or resizing is off, gets a reason instead of pixels and is
quarantined by :func:`sparkdl.preparation.ingest.ingest` like any bad row: input = accepted +
quarantined. The rank turns the bytes into float32 in [0, 1] (:mod:`sparkdl.training.rank.reader`).
"""
from __future__ import annotations

import io
from functools import partial
from typing import Iterator, Optional, Tuple

from sparkdl.core.columns import DECODE_ERROR, FILE, MISSING, PIXELS, RAW, REASON
from sparkdl.core.config import ImageConfig
from sparkdl.core.errors import ConfigError
from sparkdl.core.session import default_parallelism


def decode(content: bytes, image: ImageConfig) -> Tuple[Optional[bytes], Optional[str]]:
    """(pixels, None) for a good image, (None, reason) otherwise."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as opened:
            opened.load()
            img = opened
            if img.mode != image.mode:
                if not image.convert:
                    return None, (f"mode {img.mode}, not {image.mode} (set data.image.convert: true to convert "
                                  "other modes)")
                img = img.convert(image.mode)
            if img.size != (image.width, image.height):
                if not image.resize:
                    return None, (f"size {img.size[0]}x{img.size[1]}, not {image.width}x{image.height} "
                                  "(set data.image.resize: true to resize)")
                img = img.resize((image.width, image.height), Image.Resampling.BILINEAR)
            if image.channels == 1:
                return img.tobytes(), None
            import numpy as np

            return np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1)).tobytes(), None  # channels first
    except UnidentifiedImageError:
        return None, "is not an image file (Pillow recognizes no image format in it)"
    except Exception as e:  # Pillow raises many types for damaged files; each becomes a reason
        return None, f"does not decode as an image ({type(e).__name__}: {e})"


def _decode_batches(batches: Iterator, image: ImageConfig) -> Iterator:
    import pyarrow as pa

    for batch in batches:
        paths = batch.column(0)
        pixels, errors = [], []
        for content in batch.column(1).to_pylist():
            px, err = decode(content, image) if content is not None else (None, "empty file")
            pixels.append(px)
            errors.append(err)
        yield pa.RecordBatch.from_arrays([paths, pa.array(pixels, pa.binary()), pa.array(errors, pa.string())],
                                         names=["path", PIXELS, DECODE_ERROR])


def read_images(spark, data, schema, path: str, path_column: str, require_label: bool = True):
    """Every file under ``path`` as a row: the declared path and label columns, ``_pixels``,
    ``_raw`` (``label/name``: what the split hashes, wherever the folder lives), ``_file``
    and ``_reason`` (null for a good image)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BinaryType, StringType, StructField, StructType


    reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
    for key, value in data.options.items():  # e.g. pathGlobFilter: "*.png"
        reader = reader.option(key, value)
    files = reader.load(path).select("path", "content")
    # Many small files: fewer, larger tasks (binaryFile plans one split per file).
    files = files.coalesce(max(2, default_parallelism(spark) * 2))
    out = StructType([StructField("path", StringType()), StructField(PIXELS, BinaryType()),
                      StructField(DECODE_ERROR, StringType())])
    decoded = files.mapInArrow(partial(_decode_batches, image=data.image), out)
    parts = F.split(F.col("path"), "/")
    checks = [F.when(F.col(DECODE_ERROR).isNotNull(), F.concat(F.lit("image: "), F.col(DECODE_ERROR)))]
    table = data.image.labels if require_label else None
    if table:  # the label from the table, by the path relative to the folder
        root = _root_uri(path)
        rel = F.when(F.col("path").startswith(root + "/"), F.substring("path", len(root) + 2, 1 << 20)) \
            .otherwise(F.col("path"))
        decoded = decoded.withColumn("_rel", rel).join(label_table(spark, table, path_column, schema.label),
                                                       "_rel", "left")
        label, raw, source = F.col("_label"), F.col("_rel"), f"in data.image.labels ({table})"
        checks.append(F.when(F.col("_entries").isNull(),
                             F.concat(F.lit("label: no entry for '"), raw, F.lit(f"' {source}"))))
        checks.append(F.when(F.col("_entries") > 1, F.concat(F.lit("label: '"), raw, F.lit("' has "),
                                                             F.col("_entries").cast("string"),
                                                             F.lit(f" different labels {source}"))))
    else:
        label, source = F.element_at(parts, -2), "(the folder's name)"
        raw = F.concat_ws("/", label, F.element_at(parts, -1))
    if require_label:
        checks.append(F.when(label.isNull() | ~label.isin(list(schema.classes)),
                             F.concat(F.lit(f"label '{schema.label}': '"), F.coalesce(label, F.lit(MISSING)),
                                      F.lit(f"' {source} is not one of {list(schema.classes)}"))))
    return decoded.select(F.col("path").alias(path_column), label.alias(schema.label), F.col(PIXELS),
                          F.coalesce(*checks).alias(REASON), raw.alias(RAW), F.col("path").alias(FILE))


def _root_uri(path: str) -> str:
    """The folder as Spark's file sources spell its files' paths (``file:/abs`` when local)."""
    import os
    import re

    root = path.rstrip("/")
    if re.match(r"^[A-Za-z][\w+.-]*:", root):
        return re.sub(r"^file://(?=/)", "file:", root)
    return "file:" + os.path.abspath(root)


def label_table(spark, table: str, path_column: str, label: str):
    """``data.image.labels`` as (``_rel``, ``_label``, ``_entries``): one row per path, with
    the number of different labels the table gives it. A table without the two columns is
    a :class:`ConfigError` before any image is read."""
    from pathlib import Path

    from pyspark.sql import functions as F

    if "://" not in table and not Path(table.removeprefix("file:")).exists():
        raise ConfigError("data.image.labels", f"{table} does not exist: give a CSV file with a header, or "
                                               "Parquet, of paths (relative to the image folder) and labels")
    reader = spark.read.option("header", "true")
    df = reader.parquet(table) if table.endswith(".parquet") else reader.csv(table)
    missing = [c for c in (path_column, label) if c not in df.columns]
    if missing:
        raise ConfigError("data.image.labels", f"{table} has columns {df.columns}, not {missing}: it needs the "
                                               f"path column '{path_column}' (paths relative to the image folder) "
                                               f"and the label column '{label}'")
    rel = F.regexp_replace(F.trim(F.col(f"`{path_column}`")), r"^(\./)+", "")
    return (df.select(rel.alias("_rel"), F.trim(F.col(f"`{label}`").cast("string")).alias("_l"))
            .groupBy("_rel").agg(F.countDistinct("_l").alias("_entries"), F.min("_l").alias("_label")))
