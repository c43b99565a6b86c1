"""spark-submit script: any ``sparkdl`` subcommand (``prepare``, ``train``, ...).

    spark-submit sparkdl_cli.py prepare conf/adult.yaml --lake LAKE
"""
import sys

from sparkdl.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
