"""Learning-curve plots (PNG) of welfare, incentives paid and designer net return, mean ± std over seeds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from designer.trainer import Trainer

__all__ = ["plot_learning_curves"]


def plot_learning_curves(
    runs: Mapping[str, Sequence[Trainer]], path: str | Path, *, optimum: float | None = None
) -> Path:
    """Save a 3-panel figure (welfare, incentives paid, net) with one band per algorithm; returns the path."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, trainers in runs.items():
        for ax, key in zip(axes, ("welfare", "incentives", "net")):
            curves = [np.array([(h.episode, getattr(h, key)) for h in t.progress.history]) for t in trainers]
            n = min(len(c) for c in curves)
            stacked = np.stack([c[:n] for c in curves])
            x, y = stacked[0, :, 0], stacked[:, :, 1]
            mean, std = y.mean(0), y.std(0)
            ax.plot(x, mean, label=f"{name} ({len(trainers)} seeds)")
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    for ax, title in zip(axes, ("social welfare (env rewards)", "incentives paid", "designer net return")):
        ax.set_title(title)
        ax.set_xlabel("training episodes")
        ax.grid(alpha=0.3)
    if optimum is not None:
        axes[0].axhline(optimum, color="k", ls="--", lw=1, label="optimum")
        axes[2].axhline(optimum, color="k", ls="--", lw=1)
    axes[0].legend()
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
