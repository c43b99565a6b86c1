"""Pictures sparkdl writes (a run's curves, a search, a drift check, a gate's decision):
matplotlib without a display, and a figure saved atomically."""
from __future__ import annotations

from pathlib import Path

from sparkdl.core.lake import atomic_target


def pyplot():
    """matplotlib.pyplot on the Agg backend (drivers run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    """Write ``fig`` as a PNG that readers see whole or not at all, then close it."""
    plt = pyplot()
    try:
        with atomic_target(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
