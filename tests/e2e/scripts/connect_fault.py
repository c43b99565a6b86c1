"""A Spark Connect client whose ranks cannot connect back to it (``train.launch.event_host``
is an address nobody answers at): it trains Adult with rank 1 failing in epoch 2 and
prints one JSON line with what reached it. Usage: connect_fault.py sc://HOST:PORT LAKE"""
import json
import logging
import sys

from sparkdl.core.config.loading import load_config
from sparkdl.core.errors import TrainingError
from sparkdl.core.session import get_spark
from sparkdl.testing.faults import FaultSpec
from sparkdl.workflow import prepare, train

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
remote, lake = sys.argv[1], sys.argv[2]
cfg = load_config("conf/adult.yaml", [f"spark.remote={remote}", "train.epochs=3", "train.failure.max_attempts=1",
                                      "train.launch.event_host=198.18.255.254", "progress.display=lines",
                                      "progress.lines_every_s=1"])
spark = get_spark(cfg.spark)
prepare(cfg, lake)
out = {}
try:
    train(cfg, lake, spark, callbacks=[FaultSpec(rank=1, epoch=2, step=3, mode="raise")])
except TrainingError as e:
    out = {"rank": e.rank, "exception": e.exception, "traceback": e.traceback_tail, "kind": e.kind.value}
print(json.dumps(out))
spark.stop()
