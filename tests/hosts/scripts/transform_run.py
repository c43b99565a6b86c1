"""spark-submit script: a committed run as a Spark ML Transformer on the driver host.

    spark-submit transform_run.py RUN_DIR INPUT_CSV   → prints rows=..., accuracy=...
"""
import sys


def main(run: str, data: str) -> None:
    from pyspark.sql import SparkSession

    import sparkdl

    spark = SparkSession.builder.appName("sparkdl-transform").getOrCreate()
    model = sparkdl.load_run(run)
    scored = model.transform(spark.read.csv(data, header=True))
    rows = scored.select("class", "prediction").collect()
    print(f"rows={len(rows)}")
    print(f"accuracy={sum(r['class'] == r['prediction'] for r in rows) / len(rows):.6f}")
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
