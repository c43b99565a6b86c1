"""Many-valued features on real executors: a sparse ``VectorUDT``, an ``array<float>`` and
an ``array<string>`` bag of items train from YAML and from ``DeepClassifier.fit``; each
kind of bad value is quarantined with its reason; the Transformer, ``sparkdl score`` and
the MLflow model give the same predictions."""
import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from sparkdl.core.columns import PREDICTION, PROBABILITY, SCORE_ERROR

WORDS = [f"w{i}" for i in range(40)]
TERMS = 64


def _row(rng: random.Random, i: int):
    """One good row; the label leans on every kind of feature."""
    from pyspark.ml.linalg import Vectors

    emb = [rng.gauss(0, 1) for _ in range(4)]
    items = rng.sample(WORDS, rng.randint(1, 6))
    terms = sorted(rng.sample(range(TERMS), rng.randint(0, 5)))
    signal = emb[0] + 1.5 * ("w0" in items or "w1" in items) + 1.5 * (3 in terms) + rng.gauss(0, 0.3)
    return {"id": i, "x": rng.gauss(0, 1), "emb": emb, "items": items,
            "tf": Vectors.sparse(TERMS, terms, [1.0] * len(terms)), "y": "yes" if signal > 0.8 else "no"}


#: One bad row per kind of bad value: (what is wrong, the reason's words).
BAD = [
    ({"emb": [0.0, 1.0, 2.0]}, "column 'emb': holds 3 values, not its declared size 4"),
    ({"emb": [0.0, None, 1.0, 2.0]}, "column 'emb': holds a null value"),
    ({"emb": None}, "column 'emb': is missing"),
    ({"emb": [float("nan"), 0.0, 0.0, 0.0]}, "column 'emb': holds a value that is not a finite number"),
    ({"items": ["w1", None]}, "column 'items': holds a null item"),
    ({"items": WORDS[:9]}, "column 'items': holds 9 items, more than its max_items 8"),
    ("tf_size", "column 'tf': a vector of 32 values, not its declared size 64"),
    ("tf_many", "column 'tf': holds 9 non-zero values, more than its max_items 8"),
]


def _bad_row(rng, i, change):
    from pyspark.ml.linalg import Vectors

    row = _row(rng, i)
    if change == "tf_size":
        row["tf"] = Vectors.sparse(32, [1], [1.0])
    elif change == "tf_many":
        row["tf"] = Vectors.sparse(TERMS, list(range(9)), [1.0] * 9)
    else:
        row.update(change)
    return row


def _frame(spark, rows):
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, LongType, StringType, StructField, StructType

    schema = StructType([StructField("id", LongType()), StructField("x", DoubleType()),
                         StructField("emb", ArrayType(FloatType())), StructField("items", ArrayType(StringType())),
                         StructField("tf", VectorUDT()), StructField("y", StringType())])
    return spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)


@pytest.fixture(scope="module")
def tables(spark_cluster, tmp_path_factory):
    """Parquet train (good rows with one of each bad kind among them) and test tables."""
    rng = random.Random(7)
    root = tmp_path_factory.mktemp("many-valued")
    good = [_row(rng, i) for i in range(4000)]
    bad = [_bad_row(rng, 100_000 + k, change) for k, (change, _) in enumerate(BAD)]
    _frame(spark_cluster, good[:1500] + bad + good[1500:3000]).repartition(3).write.parquet(str(root / "train"))
    _frame(spark_cluster, good[3000:]).coalesce(1).write.parquet(str(root / "test"))
    return root


CONFIG = {
    "name": "many-valued",
    "data": {"format": "parquet", "max_bad_fraction": 0.01},
    "schema": {"columns": [{"name": "id", "type": "long"}, {"name": "x", "type": "double"},
                           {"name": "emb", "type": "array<float>", "size": 4},
                           {"name": "items", "type": "array<string>", "max_items": 8},
                           {"name": "tf", "type": "vector", "size": TERMS, "max_items": 8},
                           {"name": "y", "type": "string"}],
               "numeric": ["x"], "vectors": ["emb"], "bags": ["items"], "sparse": ["tf"], "keys": ["id"],
               "label": "y", "classes": ["no", "yes"]},
    "features": {"scaler": "standard"},
    "materialize": {"max_ranks": 2, "row_groups_per_rank": 2},
    "model": {"hidden": [32]},
    "train": {"ranks": 2, "epochs": 6, "batch_size": 64, "optimizer": {"lr": 0.01}},
}


@pytest.fixture(scope="module")
def run(spark_cluster, tables, tmp_path_factory):
    import copy

    from sparkdl.core.config.loading import parse_config
    from sparkdl.workflow import run_job

    raw = copy.deepcopy(CONFIG)
    raw["data"].update(train=str(tables / "train"), test=str(tables / "test"))
    return run_job(parse_config(raw), str(tmp_path_factory.mktemp("many-valued-lake")), spark=spark_cluster)


def test_each_bad_value_is_quarantined_with_its_reason(run):
    from sparkdl.preparation.materialize import Manifest

    manifest = Manifest.load(run.path / "manifest.json")
    record = manifest.quarantine["train"]
    assert manifest.rows["quarantined"] == len(BAD) and manifest.rows["accepted"] == 3000
    quarantined = pq.read_table(record["quarantine_path"]).to_pylist()
    got = sorted(r["reason"] for r in quarantined)
    for (_, words), reason in zip(sorted(BAD, key=lambda b: b[1]), got):
        assert words in reason, (words, reason)
    assert record["reasons"]["column 'items': holds N items, more than its max_items 8"] == 1
    raw = next(json.loads(r["raw"]) for r in quarantined if "9 items" in r["reason"])
    assert raw["items"] == {"n": 9, "items": WORDS[:9]} and raw["tf"]["size"] == TERMS


def test_the_network_learns_from_every_kind_and_records_their_tables(run):
    from sparkdl.preparation.materialize import Manifest

    manifest = Manifest.load(run.path / "manifest.json")
    tables = {e["name"]: e for e in manifest.embeddings}
    assert tables["items"]["items"] == 8 and not tables["items"]["weighted"]
    assert tables["tf"]["items"] == 8 and tables["tf"]["weighted"] and tables["tf"]["size"] == TERMS
    assert manifest.feature_width == 1 + 4 + 8  # x, emb's 4 values scaled, tf's 8 weight slots
    assert run.metrics.held_out["auc"] > 0.95


def test_three_scoring_paths_agree(spark_cluster, run, tables, tmp_path):
    import mlflow

    from sparkdl.core.rundir import MLFLOW_FILE
    from sparkdl.serving.score import score
    from sparkdl.serving.transformer import load_run

    test = spark_cluster.read.parquet(str(tables / "test"))
    transformed = load_run(run.path).transform(test)
    assert transformed.dtypes[:6] == test.dtypes  # the caller's columns come back as they were given
    by_transformer = transformed.select("id", PREDICTION, PROBABILITY).toPandas()
    score(spark_cluster, run.path, str(tables / "test"), str(tmp_path / "preds"))
    by_score = pq.read_table(tmp_path / "preds").to_pandas()
    info = json.loads((run.path / MLFLOW_FILE).read_text())
    mlflow.set_tracking_uri(info["tracking_uri"])
    rows = pq.read_table(tables / "test").to_pandas()  # vectors as pandas reads them: dicts
    by_pyfunc = mlflow.pyfunc.load_model(info["model_uri"]).predict(rows.drop(columns=["y"]))
    assert by_pyfunc[SCORE_ERROR].isna().all() and len(by_pyfunc) == len(by_score) == len(by_transformer) == 1000
    ids = rows["id"].to_numpy()
    for frame in (by_transformer, by_score):
        frame = frame.set_index("id").loc[ids]
        assert (frame[PREDICTION].to_numpy() == by_pyfunc[PREDICTION].to_numpy()).all()
        np.testing.assert_allclose(frame[PROBABILITY].to_numpy(), by_pyfunc[PROBABILITY].to_numpy(), atol=1e-6)


def test_deep_classifier_fits_hashing_tf_an_array_and_a_bag(spark_cluster, tables, tmp_path):
    from pyspark.ml.feature import HashingTF
    from pyspark.sql import functions as F

    from sparkdl.ml import DeepClassificationModel, DeepClassifier

    df = spark_cluster.read.parquet(str(tables / "train")).where(F.col("id") < 100_000)
    df = (HashingTF(inputCol="items", outputCol="hashed", numFeatures=TERMS).transform(df)
          .withColumn("label", (F.col("y") == "yes").cast("double")).drop("tf", "y"))
    deep = DeepClassifier(featuresCols=["x", "emb", "items", "hashed"], sparseCols=["hashed"], epochs=3,
                          numWorkers=1, lake=str(tmp_path / "lake"), settings={"tracking.mlflow": "off"})
    model = deep.fit(df)
    manifest_tables = {e["name"]: e for e in model.manifest.embeddings}
    assert manifest_tables["hashed"]["weighted"] and manifest_tables["items"]["items"] >= 6
    scored = model.transform(df)
    assert dict(scored.dtypes)["hashed"] == "vector" and scored.where("score_error IS NOT NULL").count() == 0
    assert scored.selectExpr("avg(cast(prediction = label as double))").first()[0] > 0.85
    model.save(str(tmp_path / "saved"))
    again = DeepClassificationModel.load(str(tmp_path / "saved")).transform(df)
    cols = ["id", "prediction", "probability"]
    assert again.select(cols).orderBy("id").collect() == scored.select(cols).orderBy("id").collect()
