"""A Spark Connect client fits DeepClassifier on the Adult CSV it reads through the server,
scores the test file, saves and loads the model, and prints one JSON line with what it
measured. Usage: connect_estimator.py sc://HOST:PORT LAKE SAVE_DIR"""
import json
import logging
import sys

from pyspark.sql import SparkSession

from sparkdl.ml import DeepClassificationModel, DeepClassifier

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
remote, lake, saved = sys.argv[1], sys.argv[2], sys.argv[3]
spark = SparkSession.builder.remote(remote).getOrCreate()
read = lambda name: spark.read.csv(f"sparkdl/datasets/adult/{name}", header=True, inferSchema=True)  # noqa: E731
train, test = read("adult.data.csv.gz"), read("adult.test.csv.gz")
spark.conf.set("spark.sparkdl.lake", lake)  # the session's lake: no lake Param needed
model = DeepClassifier(labelCol="class", epochs=4, numWorkers=2).fit(train)
scored = model.transform(test)
accuracy = scored.selectExpr("avg(cast(predictedLabel = class as double))").first()[0]
model.write().overwrite().save(saved)
again = DeepClassificationModel.load(saved).transform(test)
same = again.select("prediction", "probability").collect() == scored.select("prediction", "probability").collect()
print(json.dumps({"accuracy": accuracy, "run_id": model.run_id, "classes": model.classes, "same": same,
                  "columns": scored.columns}))
spark.stop()
