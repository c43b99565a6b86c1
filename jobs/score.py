"""spark-submit entry point: batch scoring with a finished run.

    spark-submit --master spark://HOST:7077 jobs/score.py --run /lake/runs/ID --input new.csv --output preds/
"""
import argparse
import logging
import sys
from sparkdl.inference import score
from sparkdl.lake import require_run
from sparkdl.session import get_spark


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run directory")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--format", help="input format if not the run's")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    report = score(get_spark(), require_run(args.run), args.input, args.output, fmt=args.format)
    print(f"output={report.output}")
    print(f"rows_in={report.input}")
    print(f"rows_scored={report.scored}")
    print(f"rows_quarantined={report.quarantined}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
