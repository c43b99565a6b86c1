"""spark-submit entry point: ingest → features → materialize → train → write back → evaluate → report,
and with ``promote``/``drift`` in the config the nightly job (docs/scheduling.md).

    spark-submit --master spark://HOST:7077 jobs/etl_train.py conf/adult.yaml --lake /shared/lake

The same flags, output and exit codes as ``sparkdl run`` (it is that command).
"""
import sys

from sparkdl.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
