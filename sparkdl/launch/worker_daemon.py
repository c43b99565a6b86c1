"""PySpark's Python worker daemon, with the training stack imported once before it forks.

Spark starts one daemon per executor and forks every Python worker from it, so modules
the daemon has imported are already loaded (copy-on-write) in each worker. Importing
torch (with ``torch._dynamo``, which the first optimizer pulls in) and Horovod here
takes about 4 s off each barrier task's time to first step and off every model-scoring
task. sparkdl sets ``spark.python.daemon.module`` to this module unless the user chose
another.

Only modules that start no threads on import are preloaded: pyarrow
starts jemalloc's background thread, which a forked child would not have. Nothing may
reach stdout before the daemon reports its port there, so the imports run with file
descriptor 1 pointed at stderr.
"""
from __future__ import annotations

import importlib
import os
import sys

PRELOAD = ("torch", "torch._dynamo", "horovod.torch")


def preload(modules=PRELOAD) -> None:
    """Import ``modules``; one that fails is reported on stderr and left to the worker."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # a worker importing it later gets the real error
                sys.stderr.write(f"sparkdl worker daemon: could not preload {name}: {exc}\n")
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


if __name__ == "__main__":
    preload()
    from pyspark.daemon import manager

    manager()
