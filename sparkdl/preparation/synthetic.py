"""Seeded synthetic datasets, generated on the executors, in two shapes:

- ``adult``: an Adult-like schema (8 numeric, 4 small categorical columns, a learnable
  binary label);
- ``clicklog``: a click-log (Criteo-like) schema: 13 numeric and 26 categorical columns
  whose cardinalities grow from 10 to 1,000,000, with Zipf-distributed values (a few
  values carry most rows, as ids do), and a click label that depends on both.

Every value is a pure function of (row id, seed), computed with Spark SQL expressions,
so 10 million rows never pass through the driver and the same seed gives the same rows
however the data is partitioned. :func:`write_image_folder` writes a folder of seeded
synthetic PNG images for the image path.
"""
from __future__ import annotations

import math
from typing import Dict, List

from sparkdl.core.config.data import SHAPES

NUMERIC = [f"x{i}" for i in range(8)]
CATEGORICAL = {"c0": 4, "c1": 8, "c2": 16, "c3": 32}
LABEL = "y"
CLASSES = ["neg", "pos"]

#: The click-log shape: 13 numeric columns, 26 categorical ones with cardinalities spaced
#: evenly on a log scale from 10 to 1,000,000, values drawn from Zipf(``ZIPF_EXPONENT``).
CLICKLOG_NUMERIC = [f"i{i}" for i in range(13)]
CLICKLOG_CATEGORICAL = {f"c{j}": round(10 ** (1 + 5 * j / 25)) for j in range(26)}
ZIPF_EXPONENT = 1.1


def columns(shape: str = "adult"):
    """(numeric column names, {categorical column: cardinality}) of a shape."""
    if shape not in SHAPES:
        raise ValueError(f"unknown synthetic shape '{shape}': choose one of {', '.join(SHAPES)}")
    return (NUMERIC, CATEGORICAL) if shape == "adult" else (CLICKLOG_NUMERIC, CLICKLOG_CATEGORICAL)


def schema_columns(shape: str = "adult") -> List[Dict[str, str]]:
    """The columns the generator writes, in ``schema.columns`` form."""
    numeric, categorical = columns(shape)
    return ([{"name": n, "type": "double"} for n in numeric]
            + [{"name": c, "type": "string"} for c in categorical]
            + [{"name": LABEL, "type": "string"}])


def _uniform(seed: int, stream: int):
    """A uniform (0, 1) value per row, independent across streams."""
    from pyspark.sql import functions as F

    h = F.xxhash64(F.col("id"), F.lit(seed), F.lit(stream))
    return (F.pmod(h, F.lit(2 ** 31 - 1)) + F.lit(0.5)) / F.lit(float(2 ** 31 - 1))


#: Rows per generated partition when none is asked for: a partition is cached and
#: written as one unit, so it must stay far below an executor's heap at any row count.
ROWS_PER_PARTITION = 500_000


def _normal(seed: int, stream: int):
    """A standard normal value per row (Box-Muller over two uniform streams)."""
    from pyspark.sql import functions as F

    u1, u2 = _uniform(seed, 2 * stream), _uniform(seed, 2 * stream + 1)
    return F.sqrt(F.lit(-2.0) * F.log(u1)) * F.cos(F.lit(2 * math.pi) * u2)


def _zipf_index(u, cardinality: int, s: float = ZIPF_EXPONENT):
    """An index in [0, cardinality) from a uniform ``u``: the inverse of the continuous
    Zipf(s) distribution on [1, cardinality + 1), floored (index 0 is the most frequent)."""
    from pyspark.sql import functions as F

    a = (cardinality + 1) ** (1 - s) - 1
    x = F.pow(F.lit(1.0) + u * F.lit(a), F.lit(1 / (1 - s)))
    return F.least(F.floor(x) - F.lit(1), F.lit(cardinality - 1)).cast("int")


def synthetic_frame(spark, rows: int, seed: int = 0, partitions: int = 0, shape: str = "adult"):
    """A DataFrame of ``rows`` synthetic rows of ``shape`` (lazily generated on the executors)."""
    from pyspark.sql import functions as F

    from sparkdl.core.session import default_parallelism

    numeric, categorical = columns(shape)
    n_parts = partitions or max(1, default_parallelism(spark), -(-rows // ROWS_PER_PARTITION))
    df = spark.range(0, rows, 1, n_parts)
    clicklog = shape == "clicklog"
    cols, terms = [], [F.lit(-1.2 if clicklog else -0.3)]
    for i, name in enumerate(numeric):
        z = _normal(seed, i)
        cols.append(F.round(z * (i + 1) + 10 * i, 4).alias(name))
        weight = (1.0 if i % 2 == 0 else -0.7) / (i + 1) * (0.5 if clicklog else 1.0)
        terms.append(F.lit(weight) * (z * (i + 1)))
    for j, (name, card) in enumerate(categorical.items()):
        u = _uniform(seed, 100 + j)
        idx = _zipf_index(u, card) if clicklog else F.floor(u * card).cast("int")
        cols.append(F.concat(F.lit(f"{name}_"), idx.cast("string")).alias(name))
        # each value shifts the logit by a fixed, seed-independent amount
        terms.append(F.sin(idx.cast("double") * F.lit(1.7 + j)) * F.lit(0.35 if clicklog else 0.8))
    prob = F.lit(1.0) / (F.lit(1.0) + F.exp(-_balanced_sum(terms)))
    label = F.when(_uniform(seed, 999) < prob, F.lit(CLASSES[1])).otherwise(F.lit(CLASSES[0]))
    return df.select(*cols, label.alias(LABEL))


def _balanced_sum(terms: List):
    """``terms[0] + terms[1] + ...`` as a tree of depth log2(n), not n: a Spark Connect
    plan is a protobuf message, and its decoder refuses nesting deeper than 100 levels."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def write_synthetic(spark, path: str, rows: int, seed: int = 0, partitions: int = 0,
                    fmt: str = "csv", shape: str = "adult") -> str:
    """Write ``rows`` synthetic rows to ``path`` from the executors (CSV with header, or Parquet)."""
    df = synthetic_frame(spark, rows, seed, partitions, shape)
    writer = df.write.mode("overwrite")
    if fmt == "csv":
        writer.option("header", "true").csv(path)
    else:
        writer.format(fmt).save(path)
    return path


def write_image_folder(path: str, images: int, classes: int = 10, shape=(3, 32, 32), seed: int = 0) -> str:
    """``images`` PNG files in ``<path>/<label>/<n>.png`` (the layout ``data.format: images``
    reads): noise around a per-class pattern, ``shape`` (channels 1 or 3, height, width)."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    c, h, w = shape
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(classes, h, w, c))
    root = Path(path)
    for k in range(classes):
        (root / str(k)).mkdir(parents=True, exist_ok=True)
    labels = rng.integers(0, classes, images)
    for i, k in enumerate(labels):
        noise = rng.normal(0, 40, size=(h, w, c))
        pixels = np.clip(patterns[k] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels[..., 0] if c == 1 else pixels, "L" if c == 1 else "RGB").save(
            root / str(k) / f"{i:07d}.png")
    return str(root)
