"""spark-submit entry point: batch scoring with a finished run.

    spark-submit --master spark://HOST:7077 jobs/score.py --run /lake/runs/ID --input new.csv --output preds/

The same flags, output and exit codes as ``sparkdl score`` (it is that command).
"""
import sys

from sparkdl.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
