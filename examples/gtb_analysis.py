"""The paper's behavioural analysis of a Gather-Trade-Build comparison, drawn from ``examples/gtb_taxes.py``'s files.

Reads ``results.json`` (every run's final evaluation and training curves) and ``summary.json`` (which flat rate was
best) in the given folder and writes, next to them:

- ``schedule_vs_baselines.png``: the final marginal rate per bracket of each designer (mean over seeds, bars: std)
  against the US federal schedule, Saez and the best flat rate;
- ``behaviour_by_skill.png``: per skill rank (0 = lowest build payment), income before and after tax and
  transfers, labour, houses built and trades, one bar per designer;
- ``training_dynamics.png``: productivity, equality, their product and houses built over training (the training
  episodes' means logged by the tax designers; mean over seeds, band: std);
- ``schedules.png``: the learned designers' rates over training, a panel per seed;
- ``rates_by_period.png``: the rates in force per tax period within an episode.

    python examples/gtb_analysis.py examples/results/gtb_cpu

Flat rates other than the best are left out of the by-skill and training figures, to keep them readable.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from designer.experiments.aggregate import save_figure, subplots
from designer.experiments.plots import rates_heatmap

LEARNED = ("MetaGrad", "dual-RL")
REFERENCES = ("US federal", "Saez")
SKILL_PANELS = (("income", "pre-tax income (coin)"), ("after_tax", "income after tax and transfers"),
                ("labour", "labour"), ("houses_built", "houses built"), ("trades", "trades (bought + sold)"))
DYNAMICS = (("productivity", "productivity"), ("equality", "equality"),
            ("equality_times_productivity", "equality x productivity"), ("houses_built", "houses built (all agents)"))


def load(folder: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The runs of ``results.json`` and the ``summary.json`` of a comparison folder."""
    runs = json.loads((folder / "results.json").read_text())["runs"]
    summary = json.loads((folder / "summary.json").read_text())
    return runs, summary


def main_designers(runs: list[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """The designers in run order, flat rates reduced to the best one."""
    best = summary["designers"].get("best flat", {}).get("chosen")
    return [m for m in dict.fromkeys(r["method"] for r in runs) if not m.startswith("flat ") or m == best]


def _color(method: str, designers: list[str]) -> str:
    """The designer's colour, the same in every figure."""
    return f"C{designers.index(method) % 10}"


def by_method(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        out.setdefault(r["method"], []).append(r)
    return out


def schedule_vs_baselines(runs: list[dict[str, Any]], designers: list[str]) -> Any:
    """Final marginal rate per bracket: the learned designers against the fixed schedules."""
    fig, axes = subplots(1, 1, figsize=(7.5, 4.2))
    ax, groups = axes[0][0], by_method(runs)
    for method in designers:
        per_seed = np.array([np.mean(r["rates"], axis=(0, 1)) for r in groups[method]])  # [seeds, K]
        if method == "free market":
            continue  # no tax: every rate 0
        k = np.arange(per_seed.shape[1])
        style = {"marker": "o", "lw": 2.2} if method in LEARNED else {"ls": "--", "marker": "s", "lw": 1.2}
        ax.errorbar(k, per_seed.mean(0), yerr=per_seed.std(0), capsize=3, label=method, color=_color(method, designers),
                    **style)
    ax.set(xlabel="bracket (low to high income)", ylabel="marginal tax rate", ylim=(0, 1),
           title="tax schedules at the end of training (mean over seeds, bars: std)")
    ax.legend(fontsize=8)
    return fig


def _skill_values(run: dict[str, Any], key: str) -> np.ndarray | None:
    if key == "after_tax":
        return np.asarray(run["income_by_skill"]) - np.asarray(run["tax_by_skill"]) + np.asarray(
            run["lump_sum_by_skill"])
    values = run.get(f"{key}_by_skill")
    return None if values is None else np.asarray(values)


def behaviour_by_skill(runs: list[dict[str, Any]], designers: list[str]) -> Any:
    """Income before and after redistribution, labour, houses and trades per skill rank, a bar per designer."""
    fig, axes = subplots(1, len(SKILL_PANELS), figsize=(4.2 * len(SKILL_PANELS), 3.8))
    groups, width = by_method(runs), 0.8 / len(designers)
    for (key, label), ax in zip(SKILL_PANELS, axes[0]):
        for d, method in enumerate(designers):
            values = [v for r in groups[method] if (v := _skill_values(r, key)) is not None]
            if not values:  # runs recorded before the env counted houses and trades
                continue
            x = np.arange(len(values[0])) - 0.4 + width * (d + 0.5)
            ax.bar(x, np.mean(values, 0), width, yerr=np.std(values, 0), capsize=2, label=method,
                   color=_color(method, designers))
        ax.set(title=label, xlabel="skill rank (0 = lowest)")
    axes[0][0].legend(fontsize=7)
    return fig


def _curve(run: dict[str, Any], key: str) -> np.ndarray | None:
    curve = run.get("economy_curve")
    if not curve:
        return None
    if key == "houses_built":
        cols = [v for k, v in curve.items() if k.startswith("houses_built_skill")]
        return np.sum(cols, 0) if cols else None
    return np.asarray(curve[key]) if key in curve else None


def training_dynamics(runs: list[dict[str, Any]], designers: list[str]) -> Any:
    """The economy of the training episodes over training, a line per designer (mean over seeds, band: std)."""
    fig, axes = subplots(1, len(DYNAMICS), figsize=(4.4 * len(DYNAMICS), 3.6))
    groups = by_method(runs)
    for (key, label), ax in zip(DYNAMICS, axes[0]):
        for method in designers:
            mine = [(r["economy_curve"]["episodes"], c) for r in groups[method] if (c := _curve(r, key)) is not None]
            if not mine:
                continue
            x = np.asarray(mine[0][0])
            y = np.array([c for _, c in mine if len(c) == len(x)])
            logged = np.isfinite(y).any(0)  # none before the first iteration
            x, y = x[logged], y[:, logged]
            mean, std = np.nanmean(y, 0), np.nanstd(y, 0)
            ax.plot(x, mean, label=method, color=_color(method, designers))
            ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=_color(method, designers))
        ax.set(title=label, xlabel="training episode")
    axes[0][0].legend(fontsize=7)
    return fig


def schedules(runs: list[dict[str, Any]]) -> Any | None:
    """The learned designers' bracket rates over training, a panel per seed."""
    groups = by_method(runs)
    learned = [m for m in LEARNED if m in groups]
    if not learned:
        return None
    k = max(len(groups[m]) for m in learned)
    fig, axes = subplots(len(learned), k, figsize=(4.5 * k, 3.4 * len(learned)), sharey=True)
    for i, method in enumerate(learned):
        for j, run in enumerate(groups[method]):
            rates, ax = np.asarray(run["schedule"]), axes[i][j]
            if rates.size:
                ax.plot(run["schedule_episodes"], rates, label=[f"bracket {b}" for b in range(rates.shape[1])])
            ax.set(title=f"{method}, seed {run['seed']}", ylabel="marginal rate", ylim=(0, 1),
                   xlabel="training episode")
    if axes[0][0].lines:  # no schedule before the first iteration (a budget of one batch)
        axes[0][0].legend(fontsize=7, ncol=2)
    return fig


def rates_by_period(runs: list[dict[str, Any]], designers: list[str]) -> Any:
    """Heatmaps of the rates in force per tax period of an episode (mean over evaluation episodes and seeds)."""
    fig, axes = subplots(1, len(designers), figsize=(3.2 * len(designers), 3.4), sharey=True)
    groups = by_method(runs)
    for ax, method in zip(axes[0], designers):
        rates_heatmap(ax, np.concatenate([r["rates"] for r in groups[method]]).mean(0), title=method)
    axes[0][0].set(ylabel="bracket")
    return fig


def draw(folder: str | Path) -> list[Path]:
    """Write every figure of the comparison in ``folder``; returns their paths."""
    root = Path(folder)
    runs, summary = load(root)
    designers = main_designers(runs, summary)
    figures = {"schedule_vs_baselines.png": schedule_vs_baselines(runs, designers),
               "behaviour_by_skill.png": behaviour_by_skill(runs, designers),
               "training_dynamics.png": training_dynamics(runs, designers),
               "schedules.png": schedules(runs), "rates_by_period.png": rates_by_period(runs, designers)}
    return [save_figure(fig, root / name) for name, fig in figures.items() if fig is not None]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="the --out folder of examples/gtb_taxes.py")
    for path in draw(p.parse_args().folder):
        print(f"saved {path}")
