"""spark-submit entry point: ingest → features → materialize → train → write back → evaluate → report.

    spark-submit --master spark://HOST:7077 jobs/etl_train.py --config conf/adult.yaml --lake /shared/lake
"""
import argparse
import logging
import sys

from sparkdl.config import load_config
from sparkdl.session import get_spark
from sparkdl.workflow import run_job


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config, args.overrides)  # validated before Spark starts
    result = run_job(cfg, args.lake, spark=get_spark(cfg.spark))
    print(f"run_id={result.run_id}")
    print(f"run_path={result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
