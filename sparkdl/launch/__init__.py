"""sparkdl 0.2's launch package, moved to :mod:`sparkdl.training.launch`. Only the worker
daemon's old path is kept, for Spark Connect servers whose ``spark.python.daemon.module``
still names it."""
