"""The ``sparkdl`` command line: prepare, train, run, score, runs."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Dict, List, Optional

from sparkdl.config import ConfigError
from sparkdl.ingest import BadDataError
from sparkdl.lake import LakeError
from sparkdl.launch.errors import LaunchError, TrainingError

log = logging.getLogger("sparkdl")

EXIT_USAGE = 2


def _not_yet(name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        print(f"sparkdl {name}: not implemented yet in this version.", file=sys.stderr)
        return EXIT_USAGE
    return handler


def _config(args: argparse.Namespace):
    from sparkdl.config import load_config

    return load_config(args.config, args.overrides)  # validated before Spark starts


def _prepare(args: argparse.Namespace) -> int:
    from sparkdl.materialize import MANIFEST
    from sparkdl.workflow import prepare

    manifest = prepare(_config(args), args.lake)
    print(f"{manifest.paths['dataset']}/{MANIFEST}")
    print(f"rows: {manifest.rows}  splits: {manifest.splits}  features: {manifest.feature_width}")
    return 0


def _train(args: argparse.Namespace) -> int:
    """`train` trains on the prepared dataset; `run` does the whole job. Both print the run."""
    from sparkdl.training import train
    from sparkdl.workflow import run_job

    result = (run_job if args.command == "run" else train)(_config(args), args.lake)
    print(result.run_id)
    print(result.path)
    test = result.metrics.get("test")
    if test:
        print(f"test accuracy {test['accuracy']:.4f}  auc {test.get('auc', float('nan')):.4f}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from sparkdl.inference import score
    from sparkdl.lake import Lake, require_run
    from sparkdl.session import get_spark

    run = Lake(args.lake).find_run(args.run) if args.lake else require_run(args.run)
    report = score(get_spark(), run, args.input, args.output, fmt=args.format)
    print(report.output)
    print(f"rows in {report.input} = scored {report.scored} + quarantined {report.quarantined}"
          + (f" ({report.quarantine_path})" if report.quarantine_path else ""))
    return 0


def _runs(args: argparse.Namespace) -> int:
    import json

    from sparkdl.lake import Lake

    lake = Lake(args.lake)
    if args.action == "list":
        runs = lake.list_runs()
        if not runs:
            print(f"no complete runs in {lake.root}")
        for run in runs:
            m = json.loads((run / "metrics.json").read_text())
            print(f"{run.name}  epochs {m['train']['epochs']}  ranks {m['train']['ranks']}  "
                  f"val_acc {m.get('validation', {}).get('accuracy', float('nan')):.4f}  "
                  f"test_acc {m.get('test', {}).get('accuracy', float('nan')):.4f}")
        return 0
    if not args.run_id:
        print("sparkdl runs show: give a RUN_ID (see `sparkdl runs list`)", file=sys.stderr)
        return EXIT_USAGE
    run = lake.find_run(args.run_id)
    print((run / "summary.txt").read_text(), end="")
    print(f"files: {run}")
    return 0


HANDLERS = {"prepare": _prepare, "train": _train, "run": _train, "score": _score, "runs": _runs}


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="job config YAML (see conf/adult.yaml)")
    p.add_argument("--lake", required=True, help="lake directory (local path or URI) for datasets and runs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")


def build_parser(handlers: Optional[Dict[str, Callable[[argparse.Namespace], int]]] = None) -> argparse.ArgumentParser:
    handlers = handlers or {}
    parser = argparse.ArgumentParser(
        prog="sparkdl",
        description="Deep learning on Spark: ETL, Horovod training in one barrier stage, write-back, scoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("prepare", help="ingest → features → materialize a training dataset in the lake")
    _add_config_args(p)
    p.set_defaults(handler=handlers.get("prepare", _not_yet("prepare")))

    p = sub.add_parser("train", help="train on a prepared dataset in one barrier stage and write the run back")
    _add_config_args(p)
    p.set_defaults(handler=handlers.get("train", _not_yet("train")))

    p = sub.add_parser("run", help="the whole job: prepare, train, evaluate, report")
    _add_config_args(p)
    p.set_defaults(handler=handlers.get("run", _not_yet("run")))

    p = sub.add_parser("score", help="batch inference with a finished run")
    p.add_argument("--run", required=True, help="run directory (or run id with --lake)")
    p.add_argument("--input", required=True, help="data to score (any DataFrame-readable path)")
    p.add_argument("--output", required=True, help="where to write predictions (Parquet)")
    p.add_argument("--lake", help="lake directory, when --run is a run id")
    p.add_argument("--format", help="input format if not the run's (csv, json, parquet, ...)")
    p.set_defaults(handler=handlers.get("score", _not_yet("score")))

    p = sub.add_parser("runs", help="list or show runs in a lake")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("run_id", nargs="?")
    p.add_argument("--lake", required=True)
    p.set_defaults(handler=handlers.get("runs", _not_yet("runs")))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser(HANDLERS).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    had_session = _active_session() is not None
    try:
        return int(args.handler(args) or 0)
    except (ConfigError, BadDataError, LakeError, LaunchError) as e:
        print(f"sparkdl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingError as e:
        print(f"sparkdl: training failed: {e}", file=sys.stderr)
        return 1
    finally:
        started = _active_session()
        if started is not None and not had_session:
            started.stop()  # stop the embedded cluster cleanly; a JVM torn down at exit logs spurious errors


def _active_session():
    """The active SparkSession, without importing pyspark when nothing used it."""
    if "pyspark" not in sys.modules:
        return None
    from pyspark.sql import SparkSession

    from sparkdl.session import launched_by_spark_submit

    return None if launched_by_spark_submit() else SparkSession.getActiveSession()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
