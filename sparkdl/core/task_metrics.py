"""Metrics per task, exact over any number of ranks or partitions.

Each metric is computed from sufficient statistics: a flat float64 vector of sums,
counts, a confusion matrix and (for two classes) score histograms per class. A rank or
a Spark partition fills its own vector from its rows; the vectors are added (an
allreduce on the ranks, a sum of rows on the driver) and only then turned into metrics.
So validation metrics during training and test metrics after it are the same
definitions, and none is an average of per-rank averages.

Two-class scores are binned into :data:`BINS` equal bins of the positive class's
probability; thresholds are bin edges, so precision, recall and F1 at a threshold are
exact, and ROC AUC and PR-AUC (average precision) are exact up to ties within a bin.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

CLASSIFICATION, REGRESSION = "classification", "regression"
BINS = 1000
_EPS = 1e-15

#: Validation metrics each task writes to the history (``val_`` + name), for config checks.
METRICS = {
    CLASSIFICATION: ("loss", "accuracy", "macro_f1", "log_loss"),
    "binary": ("loss", "accuracy", "macro_f1", "log_loss", "auc", "pr_auc", "precision", "recall", "f1"),
    REGRESSION: ("loss", "rmse", "mae", "r2"),
}
#: Whether a larger value is better, for early stopping's default mode.
HIGHER_IS_BETTER = {"accuracy", "macro_f1", "auc", "pr_auc", "precision", "recall", "f1", "r2"}


def metric_direction(metric: str) -> str:
    """``max`` for a metric where larger is better (``val_accuracy``, ``val_r2``, ...), else ``min``."""
    name = metric[len("val_"):] if metric.startswith("val_") else metric
    return "max" if name in HIGHER_IS_BETTER else "min"


def format_metric(value) -> str:
    """``0.8550``, or ``51,234`` for values of a thousand and more (regression errors in label units)."""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4f}"
    return str(value)


def metric_names(task: str, num_classes: int) -> Tuple[str, ...]:
    if task == REGRESSION:
        return METRICS[REGRESSION]
    return METRICS["binary"] if num_classes == 2 else METRICS[CLASSIFICATION]


def held_out_metric_names(task: str, num_classes: int) -> Tuple[str, ...]:
    """The metrics of a held-out evaluation (a regression's loss is in standardized units, so
    RMSE, MAE and R² stand for it there)."""
    return tuple(m for m in metric_names(task, num_classes) if not (task == REGRESSION and m == "loss"))


@dataclass(frozen=True)
class StatsLayout:
    """Where each statistic lives in the flat vector of a task."""

    task: str
    num_classes: int = 0

    @property
    def binary(self) -> bool:
        return self.task == CLASSIFICATION and self.num_classes == 2

    @property
    def size(self) -> int:
        if self.task == REGRESSION:
            return 6  # rows, loss sum, squared errors, absolute errors, sum y, sum y^2
        k = self.num_classes
        return 2 + k * k + (2 * BINS if self.binary else 0)  # rows, log-loss sum, confusion, histograms

    def zeros(self) -> np.ndarray:
        return np.zeros(self.size, dtype=np.float64)

    def update(self, stats: np.ndarray, outputs: np.ndarray, y: np.ndarray, loss_sum: Optional[float] = None) -> None:
        """Add a batch: ``outputs`` are class probabilities (rows x classes) or predictions
        in the label's units; ``loss_sum`` the batch's summed training loss (regression)."""
        y = np.asarray(y)
        if self.task == REGRESSION:
            pred = np.asarray(outputs, dtype=np.float64).reshape(-1)
            yt = y.astype(np.float64)
            err = pred - yt
            stats[:6] += (len(yt), loss_sum or 0.0, float(err @ err), float(np.abs(err).sum()), float(yt.sum()),
                          float(yt @ yt))
            return
        p = np.asarray(outputs, dtype=np.float64)
        k = self.num_classes
        yi = y.astype(np.int64)
        stats[0] += len(yi)
        stats[1] += float(-np.log(np.clip(p[np.arange(len(yi)), yi], _EPS, 1.0)).sum())
        pred = p.argmax(1)
        stats[2:2 + k * k] += np.bincount(yi * k + pred, minlength=k * k)
        if self.binary:
            bins = np.clip((p[:, 1] * BINS).astype(np.int64), 0, BINS - 1)
            base = 2 + k * k
            stats[base:base + BINS] += np.bincount(bins[yi == 0], minlength=BINS)
            stats[base + BINS:base + 2 * BINS] += np.bincount(bins[yi == 1], minlength=BINS)

    def finalize(self, stats: np.ndarray, threshold: float = 0.5) -> Dict[str, Any]:
        """The metrics from summed statistics. Two classes: precision, recall, F1 and the
        confusion matrix at ``threshold`` (a bin edge), and the F1-optimal threshold."""
        n = float(stats[0])
        if self.task == REGRESSION:
            _, loss, sse, sae, sy, syy = (float(v) for v in stats[:6])
            sst = syy - sy * sy / max(n, 1.0)
            return {"rows": int(n), "loss": loss / max(n, 1.0), "rmse": float(np.sqrt(sse / max(n, 1.0))),
                    "mae": sae / max(n, 1.0), "r2": (1.0 - sse / sst) if sst > 0 else float("nan")}
        k = self.num_classes
        confusion = stats[2:2 + k * k].reshape(k, k)
        out: Dict[str, Any] = {"rows": int(n), "log_loss": float(stats[1]) / max(n, 1.0)}
        out["loss"] = out["log_loss"]
        if self.binary:
            base = 2 + k * k
            neg, pos = stats[base:base + BINS], stats[base + BINS:base + 2 * BINS]
            out.update(binary_curve_metrics(neg, pos))
            cut = threshold_bin(threshold)
            tp, fp = pos[cut:].sum(), neg[cut:].sum()
            fn, tn = pos[:cut].sum(), neg[:cut].sum()
            confusion = np.array([[tn, fp], [fn, tp]])
            out.update(threshold=cut / BINS, **_prf(tp, fp, fn))
        out["accuracy"] = float(np.trace(confusion)) / max(n, 1.0)
        out["macro_f1"] = macro_f1(confusion)
        out["confusion"] = confusion.astype(np.int64).tolist()
        return out


def threshold_bin(threshold: float) -> int:
    """The first bin whose rows count as positive at ``threshold`` (rounded to a bin edge)."""
    return int(np.clip(round(threshold * BINS), 0, BINS))


def _prf(tp: float, fp: float, fn: float) -> Dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def macro_f1(confusion: np.ndarray) -> float:
    """Unweighted mean of per-class F1 (rows: true class, columns: predicted)."""
    tp = np.diag(confusion).astype(np.float64)
    predicted, actual = confusion.sum(0), confusion.sum(1)
    denom = predicted + actual
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1.mean())


def binary_curve_metrics(neg: np.ndarray, pos: np.ndarray) -> Dict[str, float]:
    """ROC AUC, PR-AUC (average precision) and the F1-optimal threshold from per-class
    histograms of the positive-class score."""
    # Thresholds from the highest bin down: predicted positive = bins >= cut.
    tp = np.concatenate([[0.0], np.cumsum(pos[::-1])])
    fp = np.concatenate([[0.0], np.cumsum(neg[::-1])])
    p_total, n_total = tp[-1], fp[-1]
    out = {"auc": float("nan"), "pr_auc": float("nan"), "best_f1": 0.0, "best_f1_threshold": 0.5}
    if p_total and n_total:
        tpr, fpr = tp / p_total, fp / n_total
        out["auc"] = float(np.sum((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2))
    if p_total:
        predicted = tp + fp
        precision = np.divide(tp, predicted, out=np.ones_like(tp), where=predicted > 0)
        recall = tp / p_total
        out["pr_auc"] = float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
        best = int(np.argmax(f1))  # i bins from the top: threshold at edge BINS - i
        out["best_f1"], out["best_f1_threshold"] = float(f1[best]), (BINS - best) / BINS
    return out


def scalar_metrics(metrics: Dict[str, Any]) -> Dict[str, float]:
    """The metrics that go in a history entry (no matrices, no row counts)."""
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


def sum_stats(rows: List[np.ndarray], size: int) -> np.ndarray:
    total = np.zeros(size, dtype=np.float64)
    for r in rows:
        total += np.asarray(r, dtype=np.float64)
    return total
