"""The training split's distribution per feature, kept in the manifest at prepare time, and
the same counts over any other rows: what a drift check compares. A job keeps it when it
has drift or promotion settings (``materialize.profile``).

A numeric column is profiled as the shares of its rows in the bins between the training
split's deciles (open at both ends), plus its share of nulls; a categorical column as
the shares of its most frequent categories, of the others and of nulls. Counting rows
against a profile (:func:`count_against`) is one aggregation: one Spark pass however
many columns.
"""
from __future__ import annotations

from typing import Any, Dict, List

#: Decile edges: the usual bins of a population stability index.
QUANTILES = [i / 10 for i in range(1, 10)]
#: Categories kept per column; past this the rest are one "other" share and unseen
#: categories cannot be told from them.
MAX_CATEGORIES = 200
#: The most training rows a profile is computed from (a seeded sample past this).
SAMPLE_ROWS = 200_000
QUANTILE_ERROR = 1e-3


def profile_rows(df, numeric: List[str], categorical: List[str], seed: int = 0) -> Dict[str, Any]:
    """The profile of typed rows ``df`` (the training split as ingest accepted it), from a
    seeded sample of at most :data:`SAMPLE_ROWS` rows held in memory for the three passes
    (quantiles, bin counts, the top categories ranked in Spark). A sampled profile does not
    claim to know every category (``complete`` is false), so unseen ones are not counted."""
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    total = df.count()
    fraction = min(1.0, SAMPLE_ROWS / max(total, 1))
    rows_df = df if fraction >= 1.0 else df.sample(fraction=fraction, seed=seed)
    sample = rows_df.select(*[F.col(f"`{c}`").cast("double").alias(c) for c in numeric],
                            *[F.col(f"`{c}`").cast("string").alias(c) for c in categorical]
                            ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        profile: Dict[str, Any] = {"rows": total, "numeric": {}, "categorical": {}}
        edges = {}
        if numeric:
            quantiles = sample.approxQuantile(list(numeric), QUANTILES, QUANTILE_ERROR)
            edges = {c: sorted(set(float(v) for v in q)) for c, q in zip(numeric, quantiles)}
        counts = count_against(sample, {"numeric": {c: {"edges": e} for c, e in edges.items()},
                                        "categorical": {c: {"shares": {}} for c in categorical}})
        rows = counts["rows"]
        profile["profiled_rows"] = rows
        for c in numeric:
            profile["numeric"][c] = {"edges": edges[c], **_shares(counts["numeric"][c], rows)}
        if categorical:
            pairs = F.explode(F.array(*[F.struct(F.lit(c).alias("column"), F.col(f"`{c}`").alias("value"))
                                        for c in categorical])).alias("p")
            ranked = (sample.select(pairs).where(F.col("p.value").isNotNull()).groupBy("p.column", "p.value").count()
                      .withColumn("rank", F.row_number().over(
                          Window.partitionBy("column").orderBy(F.desc("count"), F.asc("value"))))
                      .where(F.col("rank") <= MAX_CATEGORIES + 1).collect())
            top: Dict[str, List[Any]] = {c: [] for c in categorical}
            for r in sorted(ranked, key=lambda r: r["rank"]):
                top[r["column"]].append((r["value"], int(r["count"])))
            for c in categorical:
                null = counts["categorical"][c]["null"]
                kept = top[c][:MAX_CATEGORIES]
                profile["categorical"][c] = {
                    "shares": {v: n / max(rows, 1) for v, n in kept},
                    "other_share": (rows - null - sum(n for _, n in kept)) / max(rows, 1),
                    "null_share": null / max(rows, 1),
                    "complete": fraction >= 1.0 and len(top[c]) <= MAX_CATEGORIES}
        return profile
    finally:
        sample.unpersist()


def _shares(counts: List[int], rows: int) -> Dict[str, Any]:
    """Bin counts (the last one: nulls) as shares."""
    return {"shares": [n / max(rows, 1) for n in counts[:-1]], "null_share": counts[-1] / max(rows, 1)}


def _bin_conditions(col, edges: List[float]):
    """Conditions for bins (-inf, e1], (e1, e2], ..., (ek, inf), then null."""
    bounds = [None, *edges, None]
    conditions = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        cond = col.isNotNull()
        if lo is not None:
            cond = cond & (col > lo)
        if hi is not None:
            cond = cond & (col <= hi)
        conditions.append(cond)
    return conditions + [col.isNull()]


def _count_exprs(df, profile: Dict[str, Any]):
    from pyspark.sql import functions as F

    def count(cond):
        return F.sum(F.when(cond, 1).otherwise(0))

    exprs = {}
    for c, p in profile.get("numeric", {}).items():
        col = F.col(f"`{c}`").cast("double")
        for i, cond in enumerate(_bin_conditions(col, p["edges"])):
            exprs[f"n|{c}|{i}"] = count(cond)
    for c, p in profile.get("categorical", {}).items():
        col = F.col(f"`{c}`").cast("string")
        known = list(p["shares"])
        for i, value in enumerate(known):
            exprs[f"c|{c}|{i}"] = count(col == F.lit(value))
        exprs[f"c|{c}|null"] = count(col.isNull())
        exprs[f"c|{c}|rest"] = count(col.isNotNull() & ~col.isin(known)) if known else count(col.isNotNull())
    return exprs


def count_against(df, profile: Dict[str, Any]) -> Dict[str, Any]:
    """Rows of ``df`` in each bin and category of ``profile``, in one aggregation:
    ``{"rows", "numeric": {column: [count per bin..., nulls]}, "categorical": {column:
    {"counts": [per kept category], "rest": n, "null": n}}}``."""
    from pyspark.sql import functions as F

    exprs = _count_exprs(df, profile)
    row = df.agg(F.count(F.lit(1)).alias("rows"), *[e.alias(k) for k, e in exprs.items()]).collect()[0]
    out: Dict[str, Any] = {"rows": int(row["rows"]), "numeric": {}, "categorical": {}}
    for c, p in profile.get("numeric", {}).items():
        out["numeric"][c] = [int(row[f"n|{c}|{i}"] or 0) for i in range(len(p["edges"]) + 2)]
    for c, p in profile.get("categorical", {}).items():
        out["categorical"][c] = {"counts": [int(row[f"c|{c}|{i}"] or 0) for i in range(len(p["shares"]))],
                                 "rest": int(row[f"c|{c}|rest"] or 0), "null": int(row[f"c|{c}|null"] or 0)}
    return out
