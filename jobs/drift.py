"""spark-submit entry point: check an input's drift from a model's champion before scoring it.

    spark-submit jobs/drift.py --model adult --lake /lake --input /landing/2026-12-05/

The same flags, output and exit codes as ``sparkdl drift`` (it is that command): 5 when a
feature drifted past ``drift.psi_fail``, so a scheduler skips the scoring step after it.
"""
import sys

from sparkdl.cli import main

if __name__ == "__main__":
    sys.exit(main(["drift", *sys.argv[1:]]))
