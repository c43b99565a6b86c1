"""A run's pictures and summary: loss and validation metrics per epoch, in a PNG and text."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List

from sparkdl.lake import atomic_target, write_text_atomic
from sparkdl.rundir import RunDir
from sparkdl.run_metrics import RunMetrics

log = logging.getLogger(__name__)


def plot_history(history: List[Dict[str, Any]], path: Path, title: str = "") -> None:
    """Training/validation loss and validation accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(epochs, [h["loss"] for h in history], "o-", label="train loss")
    ax1.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation loss")
    ax1.set_xlabel("epoch"), ax1.set_ylabel("cross-entropy"), ax1.legend(), ax1.grid(alpha=0.3)
    ax2.plot(epochs, [h["val_accuracy"] for h in history], "o-", color="tab:green", label="validation accuracy")
    ax2.set_xlabel("epoch"), ax2.set_ylabel("accuracy"), ax2.legend(), ax2.grid(alpha=0.3)
    for h in history:  # mark epochs trained by a resumed attempt
        if h.get("attempt", 1) > 1:
            ax1.axvline(h["epoch"], color="grey", alpha=0.15)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    try:
        with atomic_target(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)


def summary_text(m: RunMetrics) -> str:
    lines = [f"run {m.run_id}"]
    tr = m.train
    lines.append(f"trained {tr.get('epochs')} epochs on {tr.get('ranks')} ranks ({', '.join(tr.get('devices', []))}), "
                 f"{tr.get('samples_per_sec', 0):,.0f} samples/s, {tr.get('seconds', 0):.1f}s")
    for h in m.history:
        lines.append(f"  epoch {h['epoch']:3d}  loss {h['loss']:.4f}  val_loss {h['val_loss']:.4f}  "
                     f"val_acc {h['val_accuracy']:.4f}  {h['samples_per_sec']:,.0f} samples/s  {h['seconds']:.2f}s")
    if m.stages:
        lines.append("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in m.stages.items()))
    failed = [a for a in m.attempts if a.get("error")]
    if failed:
        lines.append(f"{len(failed)} failed attempt(s) recovered:")
        lines.extend(f"  attempt {a['attempt']}: {a['error']} (resumed from epoch {a['resumed_from_epoch']})"
                     for a in failed)
    if m.test is not None:
        split = m.held_out_split
        note = "" if split == "test" else " (the job has no data.test)"
        scores = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in m.test.items() if k != "split")
        lines.append(f"held out, {split} split{note}: {scores}")
    if m.baseline is not None:
        lines.append(f"baseline on the same split: {m.baseline}")
    return "\n".join(lines) + "\n"


def write_report(run: RunDir, metrics: RunMetrics) -> None:
    """Write the run's plot and summary, each atomically."""
    if metrics.history:
        plot_history(metrics.history, run.plot, title=metrics.run_id)
    write_text_atomic(run.summary, summary_text(metrics))
