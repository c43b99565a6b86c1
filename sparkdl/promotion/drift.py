"""How far new rows have drifted from the rows a run learned from.

Per feature, the population stability index ``PSI = Σ (a − e) · ln(a / e)`` over the
bins of the run's training profile (:mod:`sparkdl.preparation.profile`), with ``e`` the
training share of a bin and ``a`` the new rows' share (both floored at
:data:`SHARE_FLOOR` so an empty bin counts as rare, not infinitely so). A categorical
column's bins are its profiled categories, the rest, and null; categories training
never saw are a bin of their own with an expected share of the floor, and their share
of the rows is reported beside the PSI. The share of input rows that ingest quarantined
is in the same report. Counting is one Spark pass over the ingested rows.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from sparkdl.core.config import DataConfig, DriftConfig, SchemaConfig
from sparkdl.core.errors import LakeError
from sparkdl.core.figures import pyplot, save_figure
from sparkdl.core.lake import new_id, staged_dir, write_json_atomic
from sparkdl.core.rundir import DRIFT_FILE, DRIFT_PLOT
from sparkdl.preparation.ingest import ingest, release
from sparkdl.preparation.materialize import Manifest
from sparkdl.preparation.profile import count_against

log = logging.getLogger(__name__)

SHARE_FLOOR = 1e-4
LEVELS = ("ok", "warn", "fail")


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index of two share vectors over the same bins."""
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(e, SHARE_FLOOR), max(a, SHARE_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def _level(value: Optional[float], warn: float, fail: Optional[float]) -> str:
    if value is None:
        return "ok"
    if fail is not None and value >= fail:
        return "fail"
    return "warn" if value >= warn else "ok"


@dataclass
class FeatureDrift:
    """One feature's drift: its PSI and the shares behind it (training, then input)."""

    column: str
    kind: str
    psi: float
    level: str
    bins: List[str]
    expected: List[float]
    actual: List[float]
    unseen_share: Optional[float] = None


@dataclass
class DriftReport:
    """A drift check of ``input`` against run ``run_id``'s training rows."""

    run_id: str
    input: str
    rows_in: int
    rows_checked: int
    quarantine_share: float
    quarantine_level: str
    features: List[FeatureDrift]
    level: str
    reasons: List[str] = field(default_factory=list)
    directory: Optional[str] = None

    @property
    def failed(self) -> bool:
        return self.level == "fail"

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def lines(self) -> Dict[str, str]:
        """What the command line prints: the verdict, then each feature's PSI."""
        out = {"drift": self.level, "drift_against": self.run_id, "drift_rows": str(self.rows_checked),
               "drift_quarantine_share": f"{self.quarantine_share:.4f}"}
        for f in sorted(self.features, key=lambda f: -f.psi):
            out[f"psi_{f.column}"] = f"{f.psi:.4f}"
            if f.unseen_share:
                out[f"unseen_share_{f.column}"] = f"{f.unseen_share:.4f}"
        if self.directory:
            out["drift_report"] = str(Path(self.directory) / DRIFT_FILE)
        return out


def measure(profile: Dict[str, Any], counts: Dict[str, Any], cfg: DriftConfig) -> List[FeatureDrift]:
    """Each profiled feature's drift from the counts of the new rows (:func:`count_against`)."""
    rows = max(counts["rows"], 1)
    out = []
    for c, p in profile.get("numeric", {}).items():
        edges = p["edges"]
        names = [f"≤ {edges[0]:g}" if edges else "all"] + \
            [f"({lo:g}, {hi:g}]" for lo, hi in zip(edges[:-1], edges[1:])] + \
            ([f"> {edges[-1]:g}"] if edges else []) + ["null"]
        expected = list(p["shares"]) + [p["null_share"]]
        actual = [n / rows for n in counts["numeric"][c]]
        value = psi(expected, actual)
        out.append(FeatureDrift(c, "numeric", value, _level(value, cfg.psi_warn, cfg.psi_fail), names, expected,
                                actual))
    for c, p in profile.get("categorical", {}).items():
        got = counts["categorical"][c]
        names = list(p["shares"]) + ["(other)", "null"]
        expected = list(p["shares"].values()) + [p["other_share"], p["null_share"]]
        actual = [n / rows for n in got["counts"]] + [got["rest"] / rows, got["null"] / rows]
        unseen = None
        if p["complete"]:  # every training category is profiled: the rest are new ones
            unseen = got["rest"] / rows
            names[-2] = "(unseen)"
        value = psi(expected, actual)
        level = max(_level(value, cfg.psi_warn, cfg.psi_fail), _level(unseen, cfg.unseen_warn, cfg.unseen_fail),
                    key=LEVELS.index)
        out.append(FeatureDrift(c, "categorical", value, level, names, expected, actual, unseen))
    return out


def _restrict(profile: Dict[str, Any], columns: Sequence[str]) -> Dict[str, Any]:
    if not columns:
        return profile
    return {**profile, **{kind: {c: v for c, v in profile.get(kind, {}).items() if c in columns}
                          for kind in ("numeric", "categorical")}}


def check_drift(spark, manifest: Manifest, run_id: str, data: DataConfig, schema: SchemaConfig, path: str,
                cfg: DriftConfig, directory: Path) -> DriftReport:
    """Ingest ``path`` as ``data``/``schema`` read it and measure its drift from run
    ``run_id``'s training profile; the report (``drift.json``, ``drift.png``, the input's
    quarantined rows) is written to ``directory`` as a whole. A run without a profile is a
    :class:`LakeError`: its dataset was prepared before profiles were kept."""
    if not manifest.profile:
        raise LakeError(f"run {run_id} has no training profile to compare with (its dataset was prepared by an "
                        "earlier sparkdl, or holds images): train a run with this version first")
    profile = _restrict(manifest.profile, cfg.columns)
    with staged_dir(directory) as stage:
        accepted, ingested = ingest(spark, data, schema, path, str(stage / "quarantine"), key="input",
                                    require_label=False)
        try:
            counts = count_against(accepted, profile)
        finally:
            release(accepted)
        features = measure(profile, counts, cfg)
        share = ingested.quarantined / max(ingested.input, 1)
        q_level = _level(share, cfg.quarantine_warn, cfg.quarantine_fail)
        level = max([q_level, *[f.level for f in features]], key=LEVELS.index)
        reasons = [f"{f.column}: PSI {f.psi:.3f}" + (f", unseen categories in {f.unseen_share:.1%} of rows"
                                                     if f.unseen_share else "") + f" ({f.level})"
                   for f in sorted(features, key=lambda f: -f.psi) if f.level != "ok"]
        if q_level != "ok":
            reasons.append(f"{share:.1%} of the input's rows were quarantined ({q_level})")
        report = DriftReport(run_id, path, ingested.input, counts["rows"], share, q_level, features, level, reasons,
                             str(directory))
        write_json_atomic(stage / DRIFT_FILE, {**report.to_dict(), "thresholds": asdict(cfg)})
        plot_drift(report, cfg, stage / DRIFT_PLOT)
    log.info("drift of %s from run %s: %s%s", path, run_id, report.level,
             ("; " + "; ".join(reasons)) if reasons else "")
    return report


def drift_directory(root: Path) -> Path:
    """A new check's directory under ``root`` (``<lake>/drift/<job>``)."""
    return root / new_id()


def plot_drift(report: DriftReport, cfg: DriftConfig, path: Path) -> None:
    """PSI per feature with the warn and fail bands; beside it, the training and input
    shares of the feature that drifted most."""
    plt = pyplot()
    features = sorted(report.features, key=lambda f: f.psi)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.35 * max(len(features), 8) + 1.5))
    colors = {"ok": "tab:green", "warn": "tab:orange", "fail": "tab:red"}
    left.barh([f.column for f in features], [f.psi for f in features], color=[colors[f.level] for f in features])
    left.axvline(cfg.psi_warn, color="tab:orange", linestyle="--", label=f"warn {cfg.psi_warn:g}")
    if cfg.psi_fail is not None:
        left.axvline(cfg.psi_fail, color="tab:red", linestyle="--", label=f"fail {cfg.psi_fail:g}")
    left.set(xlabel="population stability index", title=f"drift from run {report.run_id}: {report.level}")
    left.legend(loc="lower right", fontsize=8)
    if features:
        worst = features[-1]
        keep = [i for i, (e, a) in enumerate(zip(worst.expected, worst.actual)) if e > 0 or a > 0][:30]
        x = range(len(keep))
        right.bar([i - 0.2 for i in x], [worst.expected[i] for i in keep], width=0.4, label="training")
        right.bar([i + 0.2 for i in x], [worst.actual[i] for i in keep], width=0.4, label="input")
        right.set_xticks(list(x), [worst.bins[i] for i in keep], rotation=60, ha="right", fontsize=7)
        right.set(ylabel="share of rows", title=f"{worst.column}: PSI {worst.psi:.3f}")
        right.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
