"""A run's pictures and summary: loss, validation metrics and learning rate per epoch, the
confusion matrix of a classifier, and the same in text."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from sparkdl.core.figures import pyplot, save_figure
from sparkdl.core.lake import write_text_atomic
from sparkdl.core.run_metrics import RunMetrics
from sparkdl.core.rundir import RunDir
from sparkdl.core.task_metrics import format_metric
from sparkdl.training.driver_callbacks import DriverCallback

log = logging.getLogger(__name__)


def plot_history(history: List[Dict[str, Any]], path: Path, title: str = "",
                 metrics: Sequence[str] = ("accuracy",), kept_epoch: Optional[int] = None) -> None:
    """Training/validation loss, the validation ``metrics`` (the task's headline metric and
    the one early stopping watched) and the learning rate per epoch; the kept epoch is
    starred and epochs of resumed attempts are shaded."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13.5, 3.8))
    ax1.plot(epochs, [h["loss"] for h in history], "o-", label="train loss")
    ax1.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation loss")
    ax1.set_ylabel("loss")
    curves = {m: [h.get(f"val_{m}", float("nan")) for h in history] for m in metrics}
    for (metric, values), color in zip(curves.items(), ("tab:green", "tab:orange", "tab:brown")):
        ax2.plot(epochs, values, "o-", color=color, label=f"validation {metric}")
    ax2.set_ylabel(" / ".join(metrics))
    ax3.plot(epochs, [h.get("lr", float("nan")) for h in history], ".-", color="tab:purple",
             label="learning rate (epoch end)")
    ax3.set_ylabel("learning rate")
    if kept_epoch is not None and kept_epoch in epochs:
        i = epochs.index(kept_epoch)
        for ax, panel in ((ax1, [[h["val_loss"] for h in history]]), (ax2, list(curves.values()))):
            for j, ys in enumerate(panel):  # one legend entry per panel
                ax.plot([kept_epoch], [ys[i]], "*", color="tab:red", markersize=14,
                        label=f"kept: epoch {kept_epoch}" if j == 0 else "_nolegend_")
    for ax in (ax1, ax2, ax3):
        ax.set_xlabel("epoch"), ax.legend(), ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for h in history:  # mark epochs trained by a resumed attempt
            if h.get("attempt", 1) > 1:
                ax.axvline(h["epoch"], color="grey", alpha=0.15)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion(confusion: Dict[str, Any], path: Path, title: str = "") -> None:
    """The confusion matrix, each row normalized to the true class's rows (counts written in)."""
    import numpy as np

    plt = pyplot()
    matrix = np.asarray(confusion["matrix"], dtype=float)
    classes = confusion["classes"]
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    size = max(4.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the true class's rows")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    if len(classes) <= 20:
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center",
                        color="white" if shares[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(title or f"confusion matrix ({confusion.get('split', '')} split)")
    fig.tight_layout()
    save_figure(fig, path)


def summary_text(m: RunMetrics) -> str:
    lines = [f"run {m.run_id}"]
    tr = m.train
    lines.append(f"trained {tr.get('epochs')} epochs on {tr.get('ranks')} ranks ({', '.join(tr.get('devices', []))}), "
                 f"{tr.get('samples_per_sec', 0):,.0f} samples/s, {tr.get('seconds', 0):.1f}s")
    key = m.primary_metric
    kept = tr.get("kept_epoch")
    for h in m.history:
        mark = "  <- kept" if tr.get("early_stopping") and h["epoch"] == kept else ""
        lines.append(f"  epoch {h['epoch']:3d}  loss {h['loss']:.4f}  val_loss {h['val_loss']:.4f}  "
                     f"val_{key} {format_metric(h.get(f'val_{key}', float('nan')))}  "
                     f"lr {h.get('lr', float('nan')):.3g}  "
                     f"{h['samples_per_sec']:,.0f} samples/s  {h['seconds']:.2f}s{mark}")
    stopping = tr.get("early_stopping")
    if stopping:
        why = stopping["reason"] or f"ran all {stopping['last_epoch']} epochs without meeting the stopping rule"
        lines.append(f"early stopping on {stopping['metric']} ({stopping['mode']}, patience {stopping['patience']}): "
                     f"{why}; kept epoch {kept} ({stopping['keep']})")
    if m.stages:
        lines.append("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in m.stages.items()))
    failed = [a for a in m.attempts if a.get("error")]
    if failed:
        lines.append(f"{len(failed)} failed attempt(s) recovered:")
        lines.extend(f"  attempt {a['attempt']}: {a['error']} (resumed from epoch {a['resumed_from_epoch']})"
                     for a in failed)
    if m.held_out is not None:
        split = m.held_out_split
        note = "" if split == "test" else " (the job has no data.test)"
        scores = ", ".join(f"{k} {format_metric(v)}" for k, v in m.held_out.items() if k != "split")
        lines.append(f"held out, {split} split{note}: {scores}")
    for name, result in (m.baseline or {}).items():
        scores = ", ".join(f"{k} {format_metric(v)}" for k, v in result.items() if k != "split")
        lines.append(f"baseline {name} on the same split: {scores}")
    return "\n".join(lines) + "\n"


def write_report(run: RunDir, metrics: RunMetrics) -> None:
    """Write the run's plots and summary, each atomically."""
    if metrics.history:
        stopping = metrics.train.get("early_stopping")
        title = metrics.run_id + (f": stopped early after epoch {stopping['last_epoch']}, kept epoch "
                                  f"{stopping['kept_epoch']}" if stopping and stopping["stopped_early"] else "")
        shown = [metrics.primary_metric]
        watched = stopping["metric"][len("val_"):] if stopping else None
        if watched and watched not in shown and watched != "loss":  # val_loss is in the first panel
            shown.append(watched)
        plot_history(metrics.history, run.plot, title=title, metrics=shown,
                     kept_epoch=metrics.train.get("kept_epoch") if stopping else None)
    confusion = run.read_confusion()
    if confusion is not None:
        plot_confusion(confusion, run.confusion_plot)
    write_text_atomic(run.summary, summary_text(metrics))


class RunReport(DriverCallback):
    """Writes the committed run's plots and summary."""

    def after_commit(self, run: RunDir, metrics: RunMetrics) -> None:
        write_report(run, metrics)
