"""PySpark's Python worker daemon, with the modules a stage asked for imported once
before it forks.

Spark starts one daemon per executor and environment and forks every Python worker from
it, so modules the daemon has imported are already loaded (copy-on-write) in each
worker. A stage that trains or scores asks for torch and Horovod through
``SPARKDL_PRELOAD`` (:func:`sparkdl.core.session.preloading`), which takes their import
off each barrier task's time to first step and off every model-scoring task; the ETL's
stages ask for nothing and their daemon imports nothing (nor does this module import any
of sparkdl's). sparkdl sets ``spark.python.daemon.module`` to this module unless the user
chose another.

Only modules that start no threads on import may be preloaded: pyarrow starts jemalloc's
background thread, which a forked child would not have. Nothing may reach stdout before
the daemon reports its port there, so the imports run with file descriptor 1 pointed at
stderr.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Sequence

#: Tells the daemon which modules to import before it forks workers.
PRELOAD_ENV = "SPARKDL_PRELOAD"
#: What training and scoring workers import: torch (with the dynamo the first optimizer
#: pulls in) and Horovod.
MODEL_MODULES = ("torch", "torch._dynamo", "horovod.torch")


def requested(environ=os.environ) -> Sequence[str]:
    """The modules this daemon's stage asked for."""
    return [m.strip() for m in environ.get(PRELOAD_ENV, "").split(",") if m.strip()]


def preload(modules: Sequence[str]) -> None:
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


def main() -> None:
    preload(requested())
    from pyspark.daemon import manager

    manager()


if __name__ == "__main__":
    main()
