"""Learning-curve plots (PNG) of welfare, incentives paid and designer net return, mean ± std over seeds; the tax
rates heatmap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from designer.experiments.aggregate import METRICS, plot_task_curves

if TYPE_CHECKING:
    from designer.experiments.trainer import Trainer

__all__ = ["plot_learning_curves", "rates_heatmap"]


def plot_learning_curves(
    runs: Mapping[str, Sequence[Trainer]], path: str | Path, *, optimum: float | None = None
) -> Path:
    """Save the 3-panel figure of the sweep aggregator for trained runs (one band per algorithm)."""
    curves = {}
    for name, trainers in runs.items():
        n = min(len(t.progress.history) for t in trainers)
        x = np.array([h.episode for h in trainers[0].progress.history[:n]], dtype=np.float64)
        values = {m: np.array([[getattr(h, m) for h in t.progress.history[:n]] for t in trainers]) for m in METRICS}
        curves[name] = (x, values)
    return plot_task_curves(curves, path, optimum=optimum)


def rates_heatmap(ax: Any, rates: Sequence[Sequence[float]] | np.ndarray, *, title: str = "") -> Any:
    """Draw tax rates ``[periods, brackets]`` (values in [0, 1]) on the matplotlib axes ``ax`` as a heatmap with a
    colorbar (the scale is unreadable without one); returns the image."""
    image = ax.imshow(np.asarray(rates, dtype=np.float64).T, vmin=0, vmax=1, aspect="auto", cmap="viridis",
                      origin="lower")
    ax.set(title=title, xlabel="tax period", ylabel="tax bracket")
    ax.figure.colorbar(image, ax=ax, label="marginal tax rate")
    return image
