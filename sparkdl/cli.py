"""The ``sparkdl`` command line: prepare, train, run, tune, score, runs, slurm, and for
scheduled pipelines promote, drift and models.

Results are printed as ``key=value`` lines (easy to read, and to parse from a
spark-submit log); progress and errors go to stderr. ``jobs/*.py`` run this same entry
point under spark-submit. Exit status: 0 done, 1 a run that failed (training, scoring),
2 a usage, config, data, lake or cluster error (the message names the key, file or run
and the fix), 3 nothing to do (a repeat of a committed run), 4 a run the promotion gate
rejected, 5 input drift past a fail bound: :mod:`sparkdl.core.errors` gives each its code.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import List, Optional

from sparkdl.core.errors import EXIT_BAD_INPUT, EXIT_DRIFT, EXIT_REJECTED, SparkdlError, TrainingError

log = logging.getLogger("sparkdl")




def _config(args: argparse.Namespace):
    from sparkdl.core.config.loading import load_config

    overrides = args.overrides + ([f"spark.remote={args.remote}"] if args.remote else [])
    if getattr(args, "launcher", None):
        overrides.append(f"train.launch.launcher={args.launcher}")
    return load_config(args.config, overrides)  # validated before Spark starts


def _prepare(args: argparse.Namespace) -> int:
    from sparkdl.core.rundir import MANIFEST
    from sparkdl.workflow import prepare

    manifest = prepare(_config(args), args.lake)
    print(f"manifest={manifest.paths['dataset']}/{MANIFEST}")
    print(f"rows={manifest.rows}\nsplits={manifest.splits}\nfeatures={manifest.feature_width}")
    return 0


def _train(args: argparse.Namespace) -> int:
    """`train` trains on the prepared dataset and prints the run."""
    from sparkdl.workflow import train

    print(result_lines(train(_config(args), args.lake, fresh=args.fresh)))
    return 0


def _slurm(args: argparse.Namespace) -> int:
    """`slurm submit` writes the run's batch script into the lake and, unless told not to,
    hands it to sbatch; checked against the lake first, so a job never queues to fail."""
    from sparkdl.core.lake import Lake
    from sparkdl.training.launch.slurm import lines, submit, write_batch_job

    cfg = _config(args)
    Lake(args.lake).current_dataset(cfg.name)  # the job trains on a prepared dataset
    job = write_batch_job(cfg, args.config, args.lake, args.overrides)
    print("\n".join(lines(job if args.no_submit else submit(job))))
    return 0


def _run(args: argparse.Namespace) -> int:
    """The whole job as a scheduler runs it: a repeat does nothing, drift stops it, the gate
    decides; prints the run and the outcome, and exits with the outcome's status."""
    from sparkdl.promotion.pipeline import run_scheduled
    from sparkdl.training.supervisor import RunResult

    outcome = run_scheduled(_config(args), args.lake, force=args.force, baseline=not args.no_baseline,
                            fresh=args.fresh)
    print(result_lines(RunResult(outcome.run_path.name, outcome.run_path, outcome.metrics)))
    print(_kv(outcome.lines()))
    return 0 if outcome.status in args.zero_exit_for else outcome.exit_code


def _outcomes(text: str):
    allowed = ("nothing_to_do", "rejected")
    given = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in given if t not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"{bad}: outcomes are {', '.join(allowed)}")
    return given


def _kv(lines) -> str:
    return "\n".join(f"{k}={v}" for k, v in lines.items())


def result_lines(result) -> str:
    """A run's ``key=value`` lines; the held-out metrics are named by the split they were
    computed on (``validation_accuracy`` when the job had no test split), and the
    baseline's primary metric follows (``baseline_linear_regression_rmse=...``)."""
    m = result.metrics
    lines = [f"run_id={result.run_id}", f"run_path={result.path}", f"task={m.task}"]
    if m.train.get("early_stopping"):
        lines.append(f"kept_epoch={m.train['kept_epoch']}")
    if m.held_out:
        split = m.held_out_split
        lines.append(f"evaluated_on={split}")
        lines += [f"{split}_{k}={v:.4f}" for k, v in m.held_out.items() if isinstance(v, float)]
        for name, metrics in (m.baseline or {}).items():
            lines.append(f"baseline_{name}_{m.primary_metric}={metrics[m.primary_metric]:.4f}")
    return "\n".join(lines)


def _tune(args: argparse.Namespace) -> int:
    """A hyperparameter search; prints the best trial against the job as given."""
    from sparkdl.tuning import load_space, tune

    cfg = _config(args)
    space = load_space(args.space, cfg)  # checked against the job before Spark starts
    report = tune(cfg, args.lake, space, args.trials, study=args.study, parallel=args.parallel)
    print(_kv(report.lines()))
    return 0


def _run_ref(args: argparse.Namespace):
    """``--run`` (an id with ``--lake``, or a path) or ``--model NAME`` (its champion)."""
    from sparkdl.core.champions import CHAMPION_PREFIX, resolve_run
    from sparkdl.core.errors import LakeError
    from sparkdl.core.lake import Lake

    if getattr(args, "model", None):
        if not args.lake:
            raise LakeError("--model names a lake's champion: give the lake with --lake")
        return resolve_run(Lake(args.lake), CHAMPION_PREFIX + args.model)
    return resolve_run(Lake(args.lake) if args.lake else None, args.run)


def _promote(args: argparse.Namespace) -> int:
    """Gate a committed run for a model (or ``--force`` it) and record the decision."""
    from sparkdl.core.lake import Lake
    from sparkdl.core.session import get_spark
    from sparkdl.promotion.promote import promote

    lake = Lake(args.lake)
    run = lake.find_run(args.run)
    decision = promote(get_spark(_run_spark_config(run)), lake, run, args.model, force=args.force)
    print(_kv(decision.lines()))
    return 0 if decision.promote else EXIT_REJECTED


def _run_spark_config(run):
    """The Spark settings a run was made with (its catalog, for tables)."""
    from sparkdl.core.config.loading import parse_config
    from sparkdl.core.rundir import RunDir

    return parse_config(RunDir(run).read_config()).spark


def _drift(args: argparse.Namespace) -> int:
    """The drift of an input from the rows a run (or a model's champion) learned from."""
    import dataclasses as dc

    from sparkdl.core.config.loading import apply_overrides, parse_config
    from sparkdl.core.lake import Lake, absolute
    from sparkdl.core.rundir import RunDir
    from sparkdl.core.session import get_spark
    from sparkdl.preparation.materialize import Manifest
    from sparkdl.promotion.drift import check_drift, drift_directory
    from sparkdl.serving.score import input_data_config

    run = RunDir(_run_ref(args))
    cfg = parse_config(apply_overrides(run.read_config(), args.set))
    data = input_data_config(cfg.data, args.input, args.format)
    path = args.input if data.format == "table" else absolute(args.input)
    root = Path(args.report) if args.report else Lake(args.lake or str(run.path.parent.parent)).drift_dir(cfg.name)
    report = check_drift(get_spark(cfg.spark), Manifest.load(run.manifest), run.name, dc.replace(data, train=path),
                         cfg.schema, path, cfg.drift, drift_directory(root))
    print(_kv(report.lines()))
    return EXIT_DRIFT if report.failed else 0


def _models(args: argparse.Namespace) -> int:
    """The lake's models: list them, show one's champion, its history, or roll it back."""
    from sparkdl.core.champions import Champions, list_models
    from sparkdl.core.lake import Lake

    lake = Lake(args.lake)
    if args.action == "list":
        names = list_models(lake)
        if not names:
            print(f"no models in {lake.root}")
        for name in names:
            champion = Champions(lake, name).champion()
            print(f"{name}  champion {champion['run_id'] if champion else 'none'}"
                  + (f"  since {champion['time']}" if champion else ""))
        return 0
    if not args.name:
        print(f"sparkdl models {args.action}: give a model NAME (see `sparkdl models list`)", file=sys.stderr)
        return EXIT_BAD_INPUT
    champions = Champions(lake, args.name)
    if args.action == "rollback":
        from sparkdl.promotion.promote import rollback

        entry = rollback(lake, args.name, args.to)
        print(f"model={args.name}\nchampion={entry['run_id']}\nprevious={entry['previous']}")
        return 0
    record = champions.read()
    if args.action == "show":
        champion = record["champion"]
        if champion is None:
            print(f"model={args.name}\nchampion=none")
            return 0
        print(f"model={args.name}\nchampion={champion['run_id']}\nrun_path={champion['run_path']}\n"
              f"since={champion['time']}\nreason={champion['reason']}")
        return 0
    for e in record["history"]:
        print(f"{e['seq']:>3}  {e['time']}  {e['action']:<11}  {e['run_id']}  (champion before: "
              f"{e['previous'] or 'none'})  {e['reason']}")
    return 0


def _score(args: argparse.Namespace) -> int:
    """Score with a run, in a session started as the run's was (its catalog, for tables)."""
    from sparkdl.core.session import get_spark
    from sparkdl.serving.score import score

    run = _run_ref(args)
    spark_cfg = _run_spark_config(run)
    spark = get_spark(dataclasses.replace(spark_cfg, remote=args.remote) if args.remote else spark_cfg)
    report = score(spark, run, args.input, args.output, fmt=args.format, output_table=args.output_table,
                   table_mode=args.table_mode)
    print(f"run_id={run.name}\noutput={report.output}")
    print(f"rows_in={report.input}\nrows_scored={report.scored}\nrows_quarantined={report.quarantined}")
    if report.quarantine_path:
        print(f"quarantine={report.quarantine_path}")
    return 0


def _runs(args: argparse.Namespace) -> int:
    from sparkdl.core.lake import Lake
    from sparkdl.core.rundir import RunDir
    from sparkdl.tracking.report import summary_text

    lake = Lake(args.lake)
    if args.action in ("stale", "clean"):
        return _stale_runs(lake, clean=args.action == "clean", include_resumable=args.all, failed=args.failed,
                           older_than=args.older_than)
    if args.action == "list":
        from sparkdl.training.resume import stale_runs

        runs = lake.list_runs()
        unfinished = stale_runs(lake)
        if not runs and not unfinished:
            print(f"no runs in {lake.root}")
        for stale in unfinished:  # kept with their checkpoints: the same job continues them
            print(f"{stale.run_id}  {stale.outcome}  checkpointed epochs {stale.epochs_done}  "
                  f"{'resumable' if stale.resumable else 'cannot resume'}: {stale.error or stale.why}")
        for path in runs:
            m = RunDir(path).read_metrics()
            key = m.primary_metric
            print(f"{path.name}  {m.task}  epochs {m.train['epochs']}  ranks {m.train['ranks']}  "
                  f"val_{key} {m.validation.get(key, float('nan')):.4f}  "
                  f"{m.held_out_split}_{key} {m.held_out_metric():.4f}")
        return 0
    if not args.run_id:
        print("sparkdl runs show: give a RUN_ID (see `sparkdl runs list`)", file=sys.stderr)
        return EXIT_BAD_INPUT
    run = RunDir(lake.find_run(args.run_id))
    print(summary_text(run.read_metrics()), end="")
    print(f"files: {run.path}")
    return 0



def _stale_runs(lake, clean: bool, include_resumable: bool, failed: bool = False,
                older_than: Optional[float] = None) -> int:
    """List (or remove) runs that stopped before their commit: failed, interrupted, or
    left by a driver that died."""
    from sparkdl.training.resume import remove_stale, stale_runs

    runs = remove_stale(lake, include_resumable, failed, older_than) if clean else stale_runs(lake)
    for run in runs:
        state = "resumable" if run.resumable else "cannot resume"
        print(f"{'removed ' if clean else ''}{run.run_id}  {run.outcome} {run.stopped or ''}  checkpointed epochs "
              f"{run.epochs_done}  {state}: {run.why}" + (f" ({run.error})" if run.error else ""))
    if not runs:
        print(f"no {'removable ' if clean else ''}unfinished runs in {lake.root}")
    return 0


def _duration(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``90s`` (or plain seconds) → seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give e.g. 7d, 12h, 30m or 90s") from None


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="job config YAML (see conf/adult.yaml)")
    p.add_argument("--lake", required=True, help="lake directory (local path or URI) for datasets and runs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    _add_remote_arg(p)


def _add_fresh_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fresh", action="store_true",
                   help="start a new run even where a run of this job stopped unfinished (failed, interrupted, "
                        "its driver died), which it would otherwise continue from its last checkpoint")


def _add_remote_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--remote", metavar="sc://HOST:PORT",
                   help="run every Spark step on this Spark Connect server "
                        "(as spark.remote in the config, or SPARK_REMOTE)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparkdl",
        description="Deep learning on Spark: ETL, Horovod training in one barrier stage, write-back, scoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("prepare", help="ingest → features → materialize a training dataset in the lake")
    _add_config_args(p)
    p.set_defaults(handler=_prepare)

    p = sub.add_parser("train", help="train on a prepared dataset in one barrier stage and write the run back")
    _add_config_args(p)
    p.add_argument("--launcher", choices=("spark", "torchrun", "mpirun", "srun", "ray"),
                   help="what starts the ranks (train.launch.launcher; docs/launchers.md): a barrier stage of "
                        "Spark (the default), torchrun or mpirun on this machine, srun in a Slurm job, or Ray Train")
    _add_fresh_arg(p)
    p.set_defaults(handler=_train)

    p = sub.add_parser("slurm", help="train a prepared dataset as a Slurm batch job (srun ranks; requeues resume)")
    p.add_argument("action", choices=["submit"], help="submit: write the batch script into <lake>/slurm/ and sbatch it")
    _add_config_args(p)
    p.add_argument("--no-submit", action="store_true", help="only write the script (sbatch it yourself)")
    p.set_defaults(handler=_slurm)

    p = sub.add_parser("run", help="the whole job: prepare, train, evaluate, report; with promote/drift in the "
                                   "config, the scheduled job (docs/scheduling.md)")
    _add_config_args(p)
    p.add_argument("--force", action="store_true",
                   help="train even when a committed run was made from the same input and configuration")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the Spark MLlib linear baseline beside the held-out evaluation")
    p.add_argument("--zero-exit-for", type=_outcomes, default=(), metavar="OUTCOMES",
                   help="outcomes to exit 0 for (comma-separated: nothing_to_do, rejected), for schedulers that "
                        "fail a task on any other status; outcome=... is printed either way")
    _add_fresh_arg(p)
    p.set_defaults(handler=_run)

    p = sub.add_parser("tune", help="hyperparameter search: trials as concurrent barrier stages, pruned by epoch")
    _add_config_args(p)
    p.add_argument("--space", required=True, help="search space YAML: config keys and their ranges "
                                                   "(see docs/tuning.md)")
    p.add_argument("--trials", type=int, required=True, help="trials to finish (a resumed search counts its own)")
    p.add_argument("--study", help="the search's name in the lake (default: the job's name); rerun to resume")
    p.add_argument("--parallel", type=int, help="at most this many trials at once (default: as slots allow)")
    p.set_defaults(handler=_tune)

    p = sub.add_parser("score", help="batch inference with a finished run, or a model's champion")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="run directory (or run id with --lake)")
    which.add_argument("--model", help="score with this model's champion in --lake")
    p.add_argument("--input", required=True,
                   help="data to score: a DataFrame-readable path, or a table name with --format table")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--output", help="where to write predictions (Parquet; bad rows in <output>.quarantine)")
    out.add_argument("--output-table", help="a table in the session's catalog to write predictions to "
                                            "(bad rows in <table>_quarantine)")
    p.add_argument("--table-mode", choices=["error", "overwrite", "append"], default="error",
                   help="with --output-table: refuse an existing table (default), replace it, or add to it")
    p.add_argument("--lake", help="lake directory, when --run is a run id")
    p.add_argument("--format", help="input format if not the run's (csv, json, parquet, table, ...)")
    _add_remote_arg(p)
    p.set_defaults(handler=_score)

    p = sub.add_parser("runs", help="list or show runs in a lake; list or clean runs that stopped unfinished")
    p.add_argument("action", choices=["list", "show", "stale", "clean"],
                   help="stale: runs that stopped unfinished (failed, interrupted, their driver died); "
                        "clean: remove those that cannot resume (--failed, --all: more)")
    p.add_argument("run_id", nargs="?")
    p.add_argument("--lake", required=True)
    p.add_argument("--all", action="store_true", help="with clean: also remove runs that would resume")
    p.add_argument("--failed", action="store_true",
                   help="with clean: remove failed and interrupted runs (kept with their checkpoints until then)")
    p.add_argument("--older-than", type=_duration, metavar="AGE",
                   help="with clean: only runs that stopped longer ago than AGE (7d, 12h, 30m)")
    p.set_defaults(handler=_runs)

    p = sub.add_parser("promote", help="put a committed run to the promotion gate for a model; promoted, it serves")
    p.add_argument("run", help="run id (or path)")
    p.add_argument("--model", required=True, help="the model name it competes for")
    p.add_argument("--lake", required=True)
    p.add_argument("--force", action="store_true", help="promote without the gate (recorded as forced)")
    p.set_defaults(handler=_promote)

    p = sub.add_parser("drift", help="how far an input drifted from the rows a run learned from")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="run directory (or run id with --lake)")
    which.add_argument("--model", help="compare with this model's champion in --lake")
    p.add_argument("--input", required=True, help="the rows to check: a path, or a table with --format table")
    p.add_argument("--lake", help="lake directory (with a run id or --model)")
    p.add_argument("--format", help="input format if not the run's")
    p.add_argument("--report", help="directory for the check's report (default: <lake>/drift/<job>/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a drift.* bound other than the run's (e.g. --set drift.psi_fail=0.2)")
    p.set_defaults(handler=_drift)

    p = sub.add_parser("models", help="the lake's models: list, show the champion, history, rollback")
    p.add_argument("action", choices=["list", "show", "history", "rollback"])
    p.add_argument("name", nargs="?")
    p.add_argument("--lake", required=True)
    p.add_argument("--to", help="with rollback: the run to serve (one that served before; default: the previous)")
    p.set_defaults(handler=_models)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    had_session = _active_session() is not None
    restore = _stop_on_sigterm()
    try:
        return int(args.handler(args) or 0)
    except SparkdlError as e:  # each class carries its exit code; the message names the fix
        print(f"sparkdl: {'training failed: ' if isinstance(e, TrainingError) else ''}{e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Interrupted): a run in progress is kept
        again = "; the same command continues the run" if args.handler in (_run, _train) else ""
        print(f"sparkdl: interrupted ({e or 'SIGINT'}){again}", file=sys.stderr)
        print("outcome=interrupted")
        return getattr(e, "exit_code", 130)
    finally:
        restore()
        started = _active_session()
        if started is not None and not had_session:
            started.stop()  # stop the embedded cluster cleanly; a JVM torn down at exit logs spurious errors


def _stop_on_sigterm():
    """SIGTERM (a scheduler stopping the job) raises :class:`Interrupted` in the main
    thread, so the run in progress unwinds as for Ctrl-C; returns what puts the old
    handler back."""
    import signal
    import threading

    from sparkdl.core.errors import Interrupted

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second one must not cut the unwinding short
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _active_session():
    """The active SparkSession, without importing pyspark when nothing used it."""
    if "pyspark" not in sys.modules:
        return None
    from pyspark.sql import SparkSession

    from sparkdl.core.session import launched_by_spark_submit

    return None if launched_by_spark_submit() else SparkSession.getActiveSession()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
