"""What a search leaves beside its study: ``search.json`` (every trial: its values, its
run, its metric per epoch, how it ended; the best trial; the untuned job's trial) and
``search.png`` (the metric of every trial, pruned ones marked, and the curves the pruner
compared)."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from sparkdl.core.figures import pyplot, save_figure
from sparkdl.core.lake import write_json_atomic
from sparkdl.tuning.space import SearchSpace

log = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    """A stored parameter as the config value it stands for (choices are stored as JSON)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def trial_record(trial, requeued: bool = False) -> Dict[str, Any]:
    """One Optuna trial as the report keeps it (``requeued``: cut off, and its point queued again)."""
    attrs = trial.user_attrs
    return {"number": trial.number, "state": "requeued" if requeued else trial.state.name.lower(),
            "values": {k: _plain(v) for k, v in trial.params.items()}, "value": trial.value,
            "per_epoch": {int(k): v for k, v in sorted(trial.intermediate_values.items())},
            "run_id": attrs.get("run_id"), "held_out": attrs.get("held_out"),
            "held_out_split": attrs.get("held_out_split"), "untuned": bool(attrs.get("untuned")),
            "requeued_from": attrs.get("requeued_from"), "started_unix": attrs.get("started_unix"),
            "seconds": attrs.get("seconds"), "epochs": attrs.get("epochs"), "error": attrs.get("error")}


@dataclass
class SearchReport:
    """A search's trials and where its summary and plot are."""

    study: str
    directory: Path
    space: SearchSpace
    at_once: int
    slots: Optional[int]
    ranks_per_trial: int
    trials: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self) -> Path:
        return self.directory / "search.json"

    @property
    def plot(self) -> Path:
        return self.directory / "search.png"

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t["state"] == state)

    @property
    def best(self) -> Optional[Dict[str, Any]]:
        done = [t for t in self.trials if t["state"] == "complete" and t["value"] is not None]
        if not done:
            return None
        pick = max if self.space.direction == "maximize" else min
        return pick(done, key=lambda t: t["value"])

    @property
    def untuned(self) -> Optional[Dict[str, Any]]:
        return next((t for t in self.trials if t["untuned"] and t["state"] == "complete"), None)

    def write(self, trials: List[Dict[str, Any]]) -> None:
        self.trials = trials
        write_json_atomic(self.summary, {
            "study": self.study, "metric": self.space.metric, "direction": self.space.direction,
            "pruner": self.space.pruner, "space": [d.key for d in self.space.dimensions],
            "trials_at_once": self.at_once, "task_slots": self.slots, "ranks_per_trial": self.ranks_per_trial,
            "complete": self.count("complete"), "pruned": self.count("pruned"), "failed": self.count("fail"),
            "requeued": self.count("requeued"),
            "best": self.best, "untuned": self.untuned, "trials": trials})
        try:
            self._draw()
        except Exception as e:  # the summary is written; a picture must not fail the search
            log.warning("search plot not drawn: %s", e)

    def lines(self) -> Dict[str, str]:
        """``key=value`` results for the command line."""
        out = {"study": self.study, "study_path": str(self.directory), "trials": str(len(self.trials)),
               "complete": str(self.count("complete")), "pruned": str(self.count("pruned")),
               "failed": str(self.count("fail")), "requeued": str(self.count("requeued")),
               "trials_at_once": str(self.at_once)}
        for label, trial in (("best", self.best), ("untuned", self.untuned)):
            if trial is None:
                continue
            out[f"{label}_trial"] = str(trial["number"])
            out[f"{label}_run_id"] = str(trial["run_id"])
            out[f"{label}_{self.space.metric}"] = f"{trial['value']:.4f}"
            for k, v in sorted((trial["held_out"] or {}).items()):
                if k not in ("rows", "threshold"):  # counts and settings, not results
                    out[f"{label}_{trial['held_out_split']}_{k}"] = f"{v:.4f}"
        best = self.best
        if best is not None:
            out.update({f"best.{k}": json.dumps(v) for k, v in best["values"].items()})
        out["plot"] = str(self.plot)
        return out

    def _draw(self) -> None:
        plt = pyplot()
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
        metric = self.space.metric
        for t in self.trials:
            if t["state"] == "complete":
                left.scatter(t["number"], t["value"], color="tab:blue", zorder=3)
            elif t["state"] == "pruned" and t["per_epoch"]:
                left.scatter(t["number"], list(t["per_epoch"].values())[-1], marker="x", color="tab:red", zorder=3)
            if t["per_epoch"]:
                style = dict(color="tab:red", alpha=0.5, linestyle="--") if t["state"] == "pruned" else \
                    dict(color="tab:blue", alpha=0.7)
                right.plot(list(t["per_epoch"]), list(t["per_epoch"].values()), marker=".", **style)
        best, untuned = self.best, self.untuned
        if best is not None:
            left.scatter(best["number"], best["value"], s=160, facecolors="none", edgecolors="black", zorder=4,
                         label=f"best: trial {best['number']}")
        if untuned is not None:
            left.axhline(untuned["value"], color="grey", linestyle=":", label=f"untuned (trial {untuned['number']})")
        left.scatter([], [], color="tab:blue", label="complete")
        left.scatter([], [], marker="x", color="tab:red", label="pruned (last epoch reported)")
        left.set(xlabel="trial", ylabel=metric, title=f"search {self.study}: {metric} per trial")
        left.legend(loc="best", fontsize=8)
        right.set(xlabel="epoch", ylabel=metric, title="per epoch (pruned: dashed)")
        fig.tight_layout()
        save_figure(fig, self.plot, dpi=100)
