"""Which committed run serves under a model's name, and how each one got there.

``<lake>/models/<name>/champion.json`` holds the champion (the run in service) and the
whole history of decisions about the name: promotions, rejections by the gate, forced
promotions and rollbacks, each with its reason and numbers. It is one file, replaced
atomically on every decision, so the pointer and the history can never disagree, and a
crash between a decision and the replacement leaves the old champion or the new one,
never neither. Only committed runs are ever pointed to, so a reader always gets a whole
run. One driver changes a name at a time (``.lock`` beside it).

``champion:NAME`` names the champion wherever a run is expected (scoring, loading a
model, ``train.fine_tune.init_from``): :func:`resolve_run`.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from sparkdl.core.errors import LakeError
from sparkdl.core.lake import Lake, is_committed, require_run, utc_now, write_bytes_atomic
from sparkdl.core.locks import held

CHAMPION_PREFIX = "champion:"
RECORD_FILE = "champion.json"
#: What a history entry says happened; the first two replace the champion.
PROMOTED, ROLLED_BACK, REJECTED = "promoted", "rolled_back", "rejected"
SERVES = (PROMOTED, ROLLED_BACK)
#: How long a decision waits for another driver deciding about the same name.
LOCK_WAIT_S = 30.0


def check_model_name(name: str, key: str = "--model") -> str:
    if not re.match(r"^[A-Za-z0-9_.\-]+$", name or ""):
        raise LakeError(f"{key} {name!r}: a model name uses letters, digits, '_', '-', '.' (it names a directory)")
    return name


class Champions:
    """One model name's record in a lake (see the module docstring)."""

    def __init__(self, lake: Lake, name: str):
        self.lake, self.name = lake, check_model_name(name)
        self.dir = lake.model_dir(name)
        self.file = self.dir / RECORD_FILE

    def read(self) -> Dict[str, Any]:
        """``{"name", "champion": entry or None, "history": [entries, oldest first]}``."""
        if not self.file.is_file():
            return {"name": self.name, "champion": None, "history": []}
        return json.loads(self.file.read_text())

    def exists(self) -> bool:
        return self.file.is_file()

    def champion(self) -> Optional[Dict[str, Any]]:
        return self.read()["champion"]

    def champion_run(self) -> Optional[Path]:
        """The champion's run directory; a clear error if it was removed from the lake."""
        entry = self.champion()
        if entry is None:
            return None
        path = Path(entry["run_path"])
        if not is_committed(path):
            raise LakeError(f"model {self.name!r}: its champion {entry['run_id']} is no longer a complete run at "
                            f"{path}; roll back with `sparkdl models rollback {self.name} --lake {self.lake.root}`")
        return path

    def decide(self, action: str, run: Path, reason: str, details: Optional[Dict[str, Any]] = None,
               expected: Optional[str] = "unchanged",
               before_replace: Optional[Callable[[Path], None]] = None) -> Dict[str, Any]:
        """Record a decision about committed ``run``; promotions and rollbacks make it the
        champion. ``expected``: the champion's run id the decision was made against (None:
        there was none); if another driver changed the champion since, nothing is written
        and the error says to decide again. ``before_replace`` runs before the record's
        rename (fault injection)."""
        if not is_committed(run):
            raise LakeError(f"{run} is not a committed run: only complete runs can be decided on")
        with held(self.dir / ".lock", f"model {self.name!r}", LOCK_WAIT_S):
            record = self.read()
            current = record["champion"]
            current_id = current["run_id"] if current else None
            if expected != "unchanged" and expected != current_id:
                raise LakeError(f"model {self.name!r}: the champion changed from {expected} to {current_id} while "
                                "this decision was made; run the gate again")
            entry = {"seq": len(record["history"]) + 1, "time": utc_now(), "action": action, "run_id": run.name,
                     "run_path": str(run), "previous": current_id, "reason": reason, **(details or {})}
            record["history"].append(entry)
            if action in SERVES:
                record["champion"] = entry
            write_bytes_atomic(self.file, json.dumps(record, indent=2, default=str).encode(), before_replace)
        return entry

    def rollback_target(self, to: Optional[str] = None) -> Path:
        """The run a rollback serves: ``to`` (a run that served this name before), or the
        champion before the current one."""
        record = self.read()
        current = (record["champion"] or {}).get("run_id")
        served = [e for e in record["history"] if e["action"] in SERVES]
        if to is not None:
            match = [e for e in served if e["run_id"] == to]
            if not match:
                raise LakeError(f"model {self.name!r}: run {to} never served it; pick one of "
                                f"{sorted({e['run_id'] for e in served})}")
            return Path(match[-1]["run_path"])
        for entry in reversed(served):
            if entry["run_id"] != current and is_committed(Path(entry["run_path"])):
                return Path(entry["run_path"])
        raise LakeError(f"model {self.name!r} has no earlier champion to roll back to")


def list_models(lake: Lake) -> List[str]:
    root = lake.root / "models"
    return sorted(p.name for p in root.iterdir() if (p / RECORD_FILE).is_file()) if root.is_dir() else []


def resolve_optional(lake: Lake, ref: str) -> Optional[Path]:
    """As :func:`resolve_run`, except that ``champion:NAME`` of a model with no champion
    yet is None: the first night of a warm start, or of a drift check against the champion."""
    if ref.startswith(CHAMPION_PREFIX) and Champions(lake, ref[len(CHAMPION_PREFIX):]).champion() is None:
        return None
    return resolve_run(lake, ref)


def resolve_run(lake: Optional[Lake], ref: str) -> Path:
    """A run by id, path or ``champion:NAME`` (the lake's champion of NAME); a clear error
    when there is none."""
    if ref.startswith(CHAMPION_PREFIX):
        name = ref[len(CHAMPION_PREFIX):]
        if lake is None:
            raise LakeError(f"{ref!r} names a lake's champion: give the lake (--lake)")
        path = Champions(lake, name).champion_run()
        if path is None:
            raise LakeError(f"model {name!r} has no champion in lake {lake.root}: promote a run first "
                            f"(`sparkdl promote RUN --model {name} --lake {lake.root}`)")
        return path
    return lake.find_run(ref) if lake is not None else require_run(ref)
