"""The worker daemon's old path (``spark.python.daemon.module=sparkdl.launch.worker_daemon``);
it lives in :mod:`sparkdl.core.worker_daemon` now."""
import sys
import warnings

if __name__ == "__main__":
    # stdout carries the daemon's port to Spark: the warning goes to stderr, as all warnings do
    warnings.warn("spark.python.daemon.module=sparkdl.launch.worker_daemon is deprecated: set it to "
                  "sparkdl.core.worker_daemon", DeprecationWarning, stacklevel=1)
    from sparkdl.core.worker_daemon import main

    sys.exit(main())
