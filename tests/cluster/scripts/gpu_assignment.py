"""Start local-cluster with one fake GPU per worker (a discovery script, as Spark's own
tests do) and report what each rank was assigned and chose. Prints one JSON line."""
import json
import os
import stat
import sys
import tempfile

from sparkdl.core.config import SparkConfig
from sparkdl.core.session import get_spark
from sparkdl.training.launch.devices import task_resources
from sparkdl.training.launch.driver import run_on_ranks
from sparkdl.training.launch.events import EventType

script = os.path.join(tempfile.mkdtemp(), "gpus.sh")
with open(script, "w") as f:
    f.write('#!/usr/bin/env bash\necho \'{"name": "gpu", "addresses": ["0"]}\'\n')
os.chmod(script, stat.S_IRWXU)
spark = get_spark(SparkConfig(master="local-cluster[2,1,1024]", app_name="gpu-assignment", conf={
    "spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
    "spark.worker.resource.gpu.amount": "1", "spark.worker.resource.gpu.discoveryScript": script,
    "spark.executor.resource.gpu.amount": "1", "spark.task.resource.gpu.amount": "1"}))
events = []


def probe(ctx):
    return {"rank": ctx.rank, "resources": task_resources(), "device": ctx.device}


results = run_on_ranks(spark, probe, 2, on_event=events.append)
notes = [e.get("message") for e in events if e.type is EventType.LOG]
print(json.dumps({"results": results, "notes": notes}))
spark.stop()
sys.exit(0)
