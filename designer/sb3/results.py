"""Transfer-evaluation results: per-seed :class:`EvalRow` tables, training curves, CSV files and the plot.

:class:`TransferResult` is what :func:`designer.sb3.transfer_eval` and :func:`designer.sb3.compare_transfer`
return: one :class:`EvalRow` per (condition, seed, evaluation mode), the training curves per (condition,
seed), mean +- std summaries, a text table, and :meth:`TransferResult.write` for ``transfer_*.csv`` and
``transfer_welfare.png``.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from designer.extras import MissingExtra, require

__all__ = ["EvalRow", "TransferResult"]


@dataclass(frozen=True)
class EvalRow:
    """Evaluation of one trained seed under one condition (means over ``episodes`` episodes)."""

    condition: str
    seed: int
    deterministic: bool
    welfare: float
    incentives: float
    designer_net: float
    action_freq: tuple[float, ...]
    episodes: int


@dataclass
class TransferResult:
    """Per-seed evaluation rows and training curves for one or more conditions.

    Attributes:
        rows: one :class:`EvalRow` per (condition, seed, deterministic).
        curves: ``(condition, seed) -> [(joint env steps, episode welfare, episode incentives), ...]``.
    """

    rows: list[EvalRow] = field(default_factory=list)
    curves: dict[tuple[str, int], list[tuple[int, float, float]]] = field(default_factory=dict)

    def merge(self, other: TransferResult) -> TransferResult:
        return TransferResult(self.rows + other.rows, {**self.curves, **other.curves})

    def summary(self) -> list[dict[str, Any]]:
        """Mean and std over seeds of each metric, per (condition, deterministic)."""
        out = []
        keys = sorted({(r.condition, r.deterministic) for r in self.rows})
        for condition, deterministic in keys:
            rows = [r for r in self.rows if r.condition == condition and r.deterministic == deterministic]
            entry: dict[str, Any] = {
                "condition": condition,
                "deterministic": deterministic,
                "seeds": len(rows),
            }
            for metric in ("welfare", "incentives", "designer_net"):
                values = np.array([getattr(r, metric) for r in rows])
                entry[f"{metric}_mean"], entry[f"{metric}_std"] = float(values.mean()), float(values.std())
            freqs = np.array([r.action_freq for r in rows])
            entry["action_freq_mean"] = tuple(float(x) for x in freqs.mean(axis=0)) if freqs.size else ()
            out.append(entry)
        return out

    def table(self) -> str:
        """Human-readable per-seed and mean +- std tables."""
        lines = [
            f"{'condition':<14}{'seed':>5}{'det':>6}{'welfare':>10}{'incent.':>9}{'net':>9}  action freq",
        ]
        for r in sorted(self.rows, key=lambda r: (r.condition, r.deterministic, r.seed)):
            lines.append(
                f"{r.condition:<14}{r.seed:>5}{r.deterministic!s:>6}{r.welfare:>10.2f}{r.incentives:>9.2f}"
                f"{r.designer_net:>9.2f}  {_fmt_freq(r.action_freq)}"
            )
        lines += ["", f"{'condition':<14}{'det':>6}{'welfare':>16}{'incentives':>16}{'designer net':>16}"]
        for s in self.summary():
            lines.append(
                f"{s['condition']:<14}{s['deterministic']!s:>6}"
                + "".join(
                    f"{s[m + '_mean']:>9.2f} ± {s[m + '_std']:<4.2f}"
                    for m in ("welfare", "incentives", "designer_net")
                )
                + f"  {_fmt_freq(s['action_freq_mean'])}"
            )
        return "\n".join(lines)

    def write(self, out_dir: str | Path, *, optimum: float | None = None) -> dict[str, Path]:
        """Write ``transfer_{seeds,summary,curves}.csv`` and ``transfer_welfare.png``; returns the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "seeds": out / "transfer_seeds.csv",
            "summary": out / "transfer_summary.csv",
            "curves": out / "transfer_curves.csv",
            "plot": out / "transfer_welfare.png",
        }
        with paths["seeds"].open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["condition", "seed", "deterministic", "welfare", "incentives", "designer_net",
                             "action_freq", "episodes"])  # fmt: skip
            for r in self.rows:
                writer.writerow([r.condition, r.seed, r.deterministic, r.welfare, r.incentives,
                                 r.designer_net, _fmt_freq(r.action_freq), r.episodes])  # fmt: skip
        summary = self.summary()
        with paths["summary"].open("w", newline="") as fh:
            table = csv.DictWriter(fh, fieldnames=list(summary[0]) if summary else ["condition"])
            table.writeheader()
            for s in summary:
                table.writerow({**s, "action_freq_mean": _fmt_freq(s["action_freq_mean"])})
        with paths["curves"].open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["condition", "seed", "step", "welfare", "incentives"])
            for (condition, seed), points in sorted(self.curves.items()):
                writer.writerows([condition, seed, *p] for p in points)
        try:
            self.plot(paths["plot"], optimum=optimum)
        except MissingExtra as err:  # the CSVs hold every number; the PNG needs the plot extra
            del paths["plot"]
            print(f"plot: not drawn ({err})")
        return paths

    def plot(self, path: str | Path, *, optimum: float | None = None, bins: int = 40) -> Path:
        """Episode welfare and incentives paid over training: mean over seeds per condition, min-max band
        (needs the ``plot`` extra: :class:`~designer.extras.MissingExtra` without it)."""
        require("matplotlib", "plot", "plotting").use("Agg")
        plt = require("matplotlib.pyplot", "plot", "plotting")

        fig, (ax_w, ax_i) = plt.subplots(1, 2, figsize=(10, 3.8))
        for color, condition in zip(
            ("tab:blue", "tab:orange", "tab:green"), sorted({c for c, _ in self.curves}), strict=False
        ):
            binned = [_binned(p, bins) for (c, _), p in sorted(self.curves.items()) if c == condition and p]
            if not binned:
                continue
            x = binned[0][0]
            for ax, idx in ((ax_w, 1), (ax_i, 2)):
                ys = np.array([b[idx] for b in binned])
                ax.plot(x, ys.mean(axis=0), color=color, label=f"{condition} ({len(binned)} seeds)")
                ax.fill_between(x, ys.min(axis=0), ys.max(axis=0), color=color, alpha=0.2)
        if optimum is not None:
            ax_w.axhline(optimum, color="k", ls="--", lw=1, label="social optimum")
        ax_w.set(
            xlabel="joint env steps", ylabel="episode welfare (env rewards)", title="Welfare during training"
        )
        ax_i.set(xlabel="joint env steps", ylabel="incentives paid per episode", title="Incentives paid")
        ax_w.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return Path(path)


def _fmt_freq(freq: Sequence[float]) -> str:
    return "/".join(f"{f:.2f}" for f in freq)


def _binned(points: Sequence[tuple[int, float, float]], bins: int) -> tuple[np.ndarray, ...]:
    """Mean welfare and incentives in ``bins`` equal step bins (empty bins carry the previous value)."""
    arr = np.asarray(points, dtype=float)
    edges = np.linspace(0.0, arr[:, 0].max(), bins + 1)
    idx = np.clip(np.searchsorted(edges, arr[:, 0], side="left") - 1, 0, bins - 1)
    welfare, paid = np.full(bins, np.nan), np.full(bins, np.nan)
    for b in range(bins):
        sel = idx == b
        if sel.any():
            welfare[b], paid[b] = arr[sel, 1].mean(), arr[sel, 2].mean()
    for series in (welfare, paid):
        for b in range(bins):
            if np.isnan(series[b]):
                series[b] = series[b - 1] if b > 0 else np.nan
    return (edges[1:], welfare, paid)
