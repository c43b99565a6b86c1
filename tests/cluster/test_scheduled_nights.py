"""Four nights of a scheduled ETL-plus-train job on one lake, through the command line
(in this process, on the session's local-cluster): the first champion, a repeat that does
nothing, a warm-started night promoted by the gate, a night of shuffled labels rejected
with its numbers, a night whose ``age`` drifted stopped before training, a crash between
the gate's decision and the champion's replacement, and MLflow's alias following the lake."""
import gzip
import json
import random
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed (pip install 'sparkdl-torch[mlflow]')")

from sparkdl.cli import main
from sparkdl.core.champions import Champions
from sparkdl.core.errors import EXIT_DRIFT, EXIT_NOTHING_TO_DO, EXIT_REJECTED
from sparkdl.core.lake import Lake
from sparkdl.core.rundir import RunDir
from sparkdl.preparation.examples import resolve_path
from sparkdl.serving.transformer import load_run
from sparkdl.tracking.registry import champion_alias

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, header: str, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Each night's input folder: dated parts of Adult's training file (night 3's labels
    shuffled, night 4's ages 30 years older)."""
    root = tmp_path_factory.mktemp("landing")
    with gzip.open(resolve_path("embedded:adult/adult.data.csv.gz"), "rt") as f:
        header, *rows = [line for line in f.read().splitlines() if line.strip()]
    day1, day2 = rows[:16000], rows[16000:]
    _write(root / "night1" / "part-2026-12-01.csv", header, day1)
    for part, chunk in (("01", day1), ("02", day2)):
        _write(root / "night2" / f"part-2026-12-{part}.csv", header, chunk)
    labels = [r.rsplit(",", 1) for r in day1 + day2]
    shuffled = [y for _, y in labels]
    random.Random(3).shuffle(shuffled)
    _write(root / "night3" / "part-2026-12-03.csv", header, [f"{x},{y}" for (x, _), y in zip(labels, shuffled)])
    older = []
    for r in day1 + day2:
        age, rest = r.split(",", 1)
        older.append(f"{float(age) + 30:g},{rest}")
    _write(root / "night4" / "part-2026-12-04.csv", header, older)
    return root


def _night(lake: Path, data: Path, capsys, *extra: str):
    """``sparkdl run`` of the shipped nightly job (gate: AUC at least 0.88 and at most 0.002
    below the champion, accuracy at most 0.5 % below) on ``data``, 3 epochs: (exit status,
    printed key=value lines)."""
    code = main(["run", str(REPO / "conf" / "adult_nightly.yaml"), "--lake", str(lake), "--set", f"data.train={data}",
                 "--set", "train.epochs=3", "--set", "tracking.mlflow=on", "--set", "progress.display=lines",
                 "--no-baseline", *extra])
    out = capsys.readouterr()
    lines = dict(line.split("=", 1) for line in out.out.splitlines() if "=" in line)
    return code, lines or {"stderr": out.err[-3000:]}


def test_four_nights(spark_cluster, nights, lake, capsys, monkeypatch):
    champions = Champions(Lake(str(lake)), "adult")

    # Night 1: the first champion (absolute bounds only); a repeat does nothing.
    code, one = _night(lake, nights / "night1", capsys)
    assert code == 0 and one["outcome"] == "promoted", one
    assert one["promotion_champion_before"] == "none" and float(one["gate_auc_challenger"]) >= 0.88
    assert champions.champion()["run_id"] == one["run_id"]
    code, again = _night(lake, nights / "night1", capsys)
    assert code == EXIT_NOTHING_TO_DO and again["outcome"] == "nothing_to_do" and again["run_id"] == one["run_id"]
    assert len(Lake(str(lake)).list_runs()) == 1

    # Night 2: more data, warm-started from the champion; the process dies between the gate's
    # decision and the record's rename: the old champion stays whole.
    import sparkdl.promotion.pipeline as pipeline

    def crash_before_rename(*args, **kwargs):
        def die(tmp):
            raise SystemExit("crash before the champion's record is replaced")

        return real_promote(*args, **kwargs, before_replace=die)

    real_promote = pipeline.promote
    monkeypatch.setattr(pipeline, "promote", crash_before_rename)
    with pytest.raises(SystemExit):
        _night(lake, nights / "night2", capsys)
    monkeypatch.setattr(pipeline, "promote", real_promote)
    assert champions.champion()["run_id"] == one["run_id"]
    (two_path,) = [p for p in Lake(str(lake)).list_runs() if p.name != one["run_id"]]
    # the rerun finds the committed, undecided run and gates it instead of training again
    code, two = _night(lake, nights / "night2", capsys)
    assert code == 0 and two["outcome"] == "promoted", two
    assert two["run_id"] == two_path.name and len(Lake(str(lake)).list_runs()) == 2
    assert two["promotion_champion_before"] == one["run_id"]
    assert float(two["gate_auc_challenger"]) >= float(two["gate_auc_champion"]) - 0.002
    assert json.loads(RunDir(two_path).input_record.read_text())["starts_from"] == one["run_id"]
    assert (two_path / "drift.json").is_file() and json.loads((two_path / "drift.json").read_text())["level"] == "ok"
    assert load_run("champion:adult", lake=str(lake)).run.name == two_path.name
    code = main(["score", "--model", "adult", "--lake", str(lake), "--input", str(nights / "night1"),
                 "--output", str(lake / "scored-2")])
    scored = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if "=" in line)
    assert code == 0 and scored["run_id"] == two_path.name and int(scored["rows_scored"]) == 16000

    # Night 3: shuffled labels train a committed run that the gate rejects, with the numbers.
    code, three = _night(lake, nights / "night3", capsys)
    assert code == EXIT_REJECTED and three["outcome"] == "rejected", three
    assert "auc" in three["promotion_reason"] and float(three["gate_auc_challenger"]) < 0.88
    assert float(three["gate_auc_champion"]) == pytest.approx(float(two["gate_auc_challenger"]), abs=1e-9)
    decision = json.loads(RunDir(Path(three["run_path"])).promotion.read_text())
    assert not decision["promote"] and {c["rule"] for c in decision["checks"] if not c["passed"]} >= {"max_worse"}
    assert (Path(three["run_path"]) / "promotion.png").stat().st_size > 0
    assert champions.champion()["run_id"] == two_path.name
    assert load_run("champion:adult", lake=str(lake)).run.name == two_path.name  # what score --model uses

    # Night 4: age shifted by 30 years: the drift check stops the job before it trains.
    runs_before = len(Lake(str(lake)).list_runs())
    code, four = _night(lake, nights / "night4", capsys)
    capsys.readouterr()
    assert code == EXIT_DRIFT and len(Lake(str(lake)).list_runs()) == runs_before
    (check,) = [p for p in (lake / "drift" / "adult").iterdir()
                if json.loads((p / "drift.json").read_text())["level"] == "fail"]
    report = json.loads((check / "drift.json").read_text())
    psi = {f["column"]: f["psi"] for f in report["features"]}
    assert max(psi, key=psi.get) == "age" and psi["age"] > 0.25 and (check / "drift.png").is_file()
    # the same check on its own, as a scheduler runs it before scoring
    code = main(["drift", "--model", "adult", "--lake", str(lake), "--input", str(nights / "night4")])
    checked = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines() if "=" in line)
    assert code == EXIT_DRIFT and checked["drift"] == "fail" and float(checked["psi_age"]) == pytest.approx(psi["age"], abs=1e-4)

    # The history shows all of it; MLflow's alias points where the lake's pointer does.
    history = champions.read()["history"]
    assert [(e["action"], e["run_id"]) for e in history] == [
        ("promoted", one["run_id"]), ("promoted", two_path.name), ("rejected", three["run_id"])]
    main(["models", "history", "adult", "--lake", str(lake)])
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and "rejected" in printed[2] and three["run_id"] in printed[2]
    uri = json.loads(RunDir(two_path).mlflow.read_text())
    assert champion_alias(uri["tracking_uri"], "adult") == uri["run_id"]

    # By hand: night 3 forced into service, then rolled back; MLflow follows both.
    assert main(["promote", three["run_id"], "--model", "adult", "--lake", str(lake), "--force"]) == 0
    assert champions.champion()["run_id"] == three["run_id"]
    forced = json.loads(RunDir(Path(three["run_path"])).mlflow.read_text())
    assert champion_alias(uri["tracking_uri"], "adult") == forced["run_id"]
    assert main(["models", "rollback", "adult", "--lake", str(lake)]) == 0
    capsys.readouterr()
    assert champions.champion()["run_id"] == two_path.name
    assert champion_alias(uri["tracking_uri"], "adult") == uri["run_id"]
    assert [e["action"] for e in champions.read()["history"]][-2:] == ["promoted", "rolled_back"]
