"""Lazy matplotlib figures and atomic PNG writes for the metric plots.

Figures are built with the object-oriented ``matplotlib.figure.Figure`` API and rendered by the
Agg canvas, so no display, no pyplot global state and no backend switch are involved.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from compress.errors import require
from compress.io import atomic_path


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of ``width`` × ``height`` inches on an Agg canvas (imported on first use)."""
    require("matplotlib", "Writing metric plots", "pip install matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` as PNG at ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        # The temporary name ends in .tmp, so the format must be given explicitly.
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return Path(path)
