"""Images held as encoded bytes (PNG, JPEG, ...) in a DataFrame column, for the estimators.

Fitting stages them in the lake as the image job's input: one file per row and a labels
table (file → label), so the rows go through the same decoding, quarantine and dataset as
``data.format: images``; a row without bytes is staged as a file that is not an image,
and quarantined. Scoring decodes the column on the executors with the same decoder, and a
row that does not decode gets its reason in ``score_error``.
"""
from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path
from typing import Iterator, List, Optional

import pyarrow as pa

from sparkdl.core.columns import PIXELS, REASON
from sparkdl.core.config import ImageConfig
from sparkdl.core.errors import ParamError

log = logging.getLogger(__name__)

#: The declared path column of a staged image job (the label is the other one).
FILE_COLUMN = "image_file"
FILES, LABELS = "files", "labels.parquet"
#: What a row without bytes is staged as: not an image, so it is quarantined (Spark's file
#: sources skip empty files, so an empty one would vanish).
NO_BYTES = b"sparkdl: this row had no image bytes\n"


def image_shape(df, column: str, given: Optional[List[int]], owner: str) -> List[int]:
    """(channels, height, width): ``given`` (the ``imageShape`` Param), else the first
    image's own (one row read), grayscale images as 1 channel and any other as 3."""
    if given:
        if len(given) != 3 or given[0] not in (1, 3) or min(given) < 1:
            raise ParamError("imageShape", f"{given} is not [channels, height, width] with 1 or 3 channels", owner)
        return list(given)
    import io

    from PIL import Image
    from pyspark.sql import functions as F

    row = df.where(F.col(f"`{column}`").isNotNull()).select(f"`{column}`").first()
    if row is None:
        raise ParamError("featuresCols", f"image column '{column}' has no images", owner)
    try:
        with Image.open(io.BytesIO(bytes(row[0]))) as img:
            shape = [1 if img.mode in ("L", "1") else 3, img.height, img.width]
    except Exception as e:
        raise ParamError("imageShape", f"the first image of column '{column}' does not decode ({e}); give "
                                       "imageShape [channels, height, width]", owner) from None
    log.info("image column %s: %s (channels, height, width), from its first image", column, shape)
    return shape


def image_config(shape: List[int], labels: Optional[str] = None) -> ImageConfig:
    """How the job decodes them: to ``shape``, converting and resizing any that differ."""
    return ImageConfig(height=shape[1], width=shape[2], mode="L" if shape[0] == 1 else "RGB", convert=True,
                       resize=True, labels=labels)


def _write_files(batches: Iterator, root: str) -> Iterator:
    from pyspark import TaskContext

    part = TaskContext.get().partitionId()
    os.makedirs(root, exist_ok=True)
    n = 0
    for batch in batches:
        names = []
        for content in batch.column(0).to_pylist():
            name = f"{part:05d}-{n:08d}.img"
            with open(os.path.join(root, name), "wb") as f:
                f.write(content or NO_BYTES)
            names.append(name)
            n += 1
        yield pa.RecordBatch.from_arrays([pa.array(names, pa.string()), batch.column(1)], names=[FILE_COLUMN, "label"])


def stage(df, column: str, label: str, root: Path) -> None:
    """Write ``df``'s images under ``root/files`` and their labels to ``root/labels.parquet``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    rows = df.select(F.col(f"`{column}`").alias("content"), F.col(f"`{label}`").cast("string").alias("label"))
    out = StructType([StructField(FILE_COLUMN, StringType()), StructField("label", StringType())])
    written = rows.mapInArrow(partial(_write_files, root=str(root / FILES)), out)
    written.withColumnRenamed("label", label).write.mode("overwrite").parquet(str(root / LABELS))


def decoded(df, column: str, image: ImageConfig):
    """``df`` with ``_pixels`` and ``_reason`` (null for a good image) from its bytes column."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import arrow_udf
    from pyspark.sql.types import BinaryType, StringType, StructField, StructType

    from sparkdl.preparation.images import decode

    def decode_all(contents: pa.Array) -> pa.Array:
        pixels, errors = [], []
        for content in contents.to_pylist():
            px, err = decode(content, image) if content else (None, "empty or missing image bytes")
            pixels.append(px)
            errors.append(None if err is None else f"image: {err}")
        return pa.StructArray.from_arrays([pa.array(pixels, pa.binary()), pa.array(errors, pa.string())],
                                          names=[PIXELS, REASON])

    udf = arrow_udf(decode_all, StructType([StructField(PIXELS, BinaryType()), StructField(REASON, StringType())]))
    return df.withColumn("_image", udf(F.col(f"`{column}`"))).select(
        "*", F.col(f"_image.{PIXELS}").alias(PIXELS), F.col(f"_image.{REASON}").alias(REASON)).drop("_image")
