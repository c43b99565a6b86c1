"""The lake's champions: one record per model, replaced atomically, with its history."""
import json
import subprocess
import sys

import pytest

from sparkdl.core.champions import PROMOTED, REJECTED, Champions, list_models, resolve_optional, resolve_run
from sparkdl.core.errors import LakeError
from sparkdl.core.lake import COMMIT_MARKER, Lake


def committed(lake: Lake, run_id: str):
    path = lake.run_dir(run_id)
    path.mkdir(parents=True)
    (path / COMMIT_MARKER).write_text("now")
    return path


@pytest.fixture
def lake(tmp_path):
    return Lake(str(tmp_path / "lake"))


def test_promotions_rejections_and_rollbacks_are_one_history(lake):
    champions = Champions(lake, "adult")
    assert champions.champion() is None and resolve_optional(lake, "champion:adult") is None
    a, b, c = (committed(lake, f"adult-{i}") for i in "abc")
    champions.decide(PROMOTED, a, "first", expected=None)
    champions.decide(PROMOTED, b, "better", expected="adult-a")
    champions.decide(REJECTED, c, "worse", expected="adult-b")
    assert champions.champion()["run_id"] == "adult-b" and resolve_run(lake, "champion:adult") == b
    assert [(e["seq"], e["action"], e["previous"]) for e in champions.read()["history"]] == [
        (1, "promoted", None), (2, "promoted", "adult-a"), (3, "rejected", "adult-b")]
    assert champions.rollback_target() == a
    with pytest.raises(LakeError, match="never served"):
        champions.rollback_target("adult-c")
    assert list_models(lake) == ["adult"]


def test_a_decision_made_against_another_champion_is_refused(lake):
    champions = Champions(lake, "adult")
    a, b = committed(lake, "adult-a"), committed(lake, "adult-b")
    champions.decide(PROMOTED, a, "first", expected=None)
    with pytest.raises(LakeError, match="changed from None to adult-a"):
        champions.decide(PROMOTED, b, "gated against no champion", expected=None)
    assert champions.champion()["run_id"] == "adult-a" and len(champions.read()["history"]) == 1


def test_only_committed_runs_can_serve_and_names_are_checked(lake):
    with pytest.raises(LakeError, match="not a committed run"):
        Champions(lake, "adult").decide(PROMOTED, lake.run_dir("missing"), "?")
    with pytest.raises(LakeError, match="letters, digits"):
        Champions(lake, "../etc")
    with pytest.raises(LakeError, match="no champion"):
        resolve_run(lake, "champion:adult")


def test_a_champion_removed_from_the_lake_is_named_with_the_fix(lake):
    champions = Champions(lake, "adult")
    a = committed(lake, "adult-a")
    champions.decide(PROMOTED, a, "first", expected=None)
    (a / COMMIT_MARKER).unlink()
    with pytest.raises(LakeError, match="models rollback adult"):
        champions.champion_run()


@pytest.mark.parametrize("when", ["before_rename", "after_rename"])
def test_a_process_killed_around_the_replacement_leaves_one_whole_champion(lake, when):
    """A driver killed (SIGKILL-like, no cleanup) just before or just after the record's
    rename: the record is the old one or the new one, never neither and never half."""
    champions = Champions(lake, "adult")
    a, b = committed(lake, "adult-a"), committed(lake, "adult-b")
    champions.decide(PROMOTED, a, "first", expected=None)
    code = f"""
import os, sys
from pathlib import Path
from sparkdl.core.champions import Champions, PROMOTED
from sparkdl.core.lake import Lake
import sparkdl.core.champions as champions_module
champions = Champions(Lake({str(lake.root)!r}), "adult")
if {when!r} == "after_rename":
    real = champions_module.write_bytes_atomic
    def then_die(*args, **kwargs):
        real(*args, **kwargs)
        os._exit(137)
    champions_module.write_bytes_atomic = then_die
    champions.decide(PROMOTED, Path({str(b)!r}), "better", expected="adult-a")
else:
    champions.decide(PROMOTED, Path({str(b)!r}), "better", expected="adult-a",
                     before_replace=lambda tmp: os._exit(137))
"""
    died = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert died.returncode == 137, died.stderr
    record = json.loads(champions.file.read_text())  # parses: never half a file
    expected = "adult-a" if when == "before_rename" else "adult-b"
    assert record["champion"]["run_id"] == expected and champions.champion_run().name == expected
    assert len(record["history"]) == (1 if when == "before_rename" else 2)
