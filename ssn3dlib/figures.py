"""Figure helpers: explicit sizes and byte-stable files, so re-running a study changes no file
whose content did not change."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

# No backend is forced: scripts without a display fall back to Agg by themselves, and a
# Jupyter kernel keeps its inline backend so figures and the attention explorer render.


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Save as PNG without the version/date metadata that makes files differ run to run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata={"Software": None}, bbox_inches=None)
    return path


def new_figure(width: float, height: float, **kwargs):
    """plt.subplots with an explicit size in inches (never matplotlib's default)."""
    return plt.subplots(figsize=(width, height), **kwargs)
