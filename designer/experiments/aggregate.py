"""Sweep folder -> result tables (Markdown + CSV) and learning-curve plots: how the README tables are made.

For every (task, algorithm, variant) group of a sweep written by :mod:`designer.sweep`, over the seeds whose
trial finished (``result.json`` status ``"ok"``):

- welfare, incentives paid and designer net (each trial's mean of its last ``last_k`` evaluations): mean ± sample
  std over seeds, and the interquartile mean (IQM: the mean of the middle 50%, ``scipy.stats.trim_mean(x, 0.25)``
  semantics, as rliable) with a percentile-bootstrap 95% interval (seeds resampled with replacement);
- welfare as a percentage of the task's optimum, the seeds whose final welfare is >= 95% of it, and the episodes to
  95% (first evaluation that reached it) over the seeds that ever did;
- failed and pending trials are counted in the table and listed by name, never dropped.

Learning curves (mean ± std over seeds of the per-trial ``log.csv``) are drawn per task, one band per group.

The bootstrap is a few lines of NumPy rather than ``rliable``: rliable pulls in scipy, pandas, seaborn and arch
for what is here one vectorised resample, and its stratified bootstrap across tasks is not what a per-group
interval needs.
"""

from __future__ import annotations

import csv
import json
import os
import platform
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from designer.experiments.spec import Sweep
from designer.experiments.sweep import SweepSummary, TrialResult, read_result
from designer.extras import require
from incentive_envs.validation import finite_vector

__all__ = [
    "GroupSummary",
    "MetricSummary",
    "TrialRecord",
    "bootstrap_ci",
    "iqm",
    "learning_curves",
    "load_trials",
    "machine_info",
    "markdown_tables",
    "plot_task_curves",
    "save_figure",
    "spread",
    "subplots",
    "summarize",
    "summarize_records",
    "sweep_records",
    "write_results",
]

METRICS = ("welfare", "incentives", "net")
_TITLES = {"welfare": "social welfare (env rewards)", "incentives": "incentives paid", "net": "designer net return"}


# ------------------------------------------------------------------------ statistics
def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """IQM along the last axis: sort, drop ``floor(n / 4)`` values at each end, average the rest."""
    n = samples.shape[-1]
    k = n // 4
    return np.sort(samples, axis=-1)[..., k:n - k].mean(axis=-1)


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean after trimming ``floor(n / 4)`` values from each end (n >= 1)."""
    x = finite_vector("values", values)
    return float(_iqm_rows(x))


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] = _iqm_rows,
    *,
    reps: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic`` (default: IQM) over the values, resampled with replacement.

    Args:
        values: one number per seed.
        statistic: maps a ``(reps, n)`` array of resamples to ``reps`` statistics.
        reps: bootstrap resamples.
        confidence: interval mass (0.95: the 2.5th and 97.5th percentiles).
        seed: seed of the resampling generator (same seed, same interval).
    """
    x = finite_vector("values", values)
    if not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be an integer >= 1, got {reps!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    rng = np.random.default_rng(seed)
    stats = statistic(x[rng.integers(0, x.size, size=(reps, x.size))])
    alpha = (1 - confidence) / 2
    low, high = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


@dataclass(frozen=True)
class MetricSummary:
    """One metric over seeds: mean, sample std (None for one seed), IQM and its bootstrap interval."""

    n: int
    mean: float
    std: float | None
    iqm: float
    ci_low: float
    ci_high: float

    @classmethod
    def of(cls, values: Sequence[float], *, reps: int, confidence: float, seed: int) -> MetricSummary:
        x = finite_vector("values", values)
        low, high = bootstrap_ci(x, reps=reps, confidence=confidence, seed=seed)
        return cls(n=x.size, mean=float(x.mean()), std=float(x.std(ddof=1)) if x.size > 1 else None,
                   iqm=iqm(x), ci_low=low, ci_high=high)


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class TrialRecord:
    """A trial folder of a sweep: its labels (from ``trial.json``) and its result (None: not finished)."""

    name: str
    task_label: str
    algorithm_label: str
    variant_label: str
    seed: int
    path: Path
    result: TrialResult | None

    @property
    def status(self) -> str:
        """``"ok"``, ``"failed"`` or ``"pending"`` (no readable result yet)."""
        return "pending" if self.result is None else self.result.status

    @property
    def group(self) -> tuple[str, str, str]:
        return self.task_label, self.algorithm_label, self.variant_label


def load_trials(sweep_dir: str | Path) -> list[TrialRecord]:
    """Every trial folder (one holding ``trial.json``), in the spec's task/algorithm/variant/seed order."""
    root = Path(sweep_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"no sweep folder at {root}")
    records = []
    for path in sorted(p.parent for p in root.glob("*/trial.json")):
        data = json.loads((path / "trial.json").read_text())
        records.append(TrialRecord(data["name"], data["task_label"], data["algorithm_label"], data["variant_label"],
                                   int(data["seed"]), path, read_result(path)))
    if not records:
        raise ValueError(f"{root} holds no trials (no */trial.json); is it a sweep folder?")
    order = _label_order(root)
    return sorted(records, key=lambda r: (*(order[i].get(lab, len(order[i])) for i, lab in enumerate(r.group)),
                                          *r.group, r.seed))


def sweep_records(summary: SweepSummary) -> list[TrialRecord]:
    """The trials of the sweep run that returned ``summary`` (other trials in its folder left out), in spec order;
    ``RuntimeError`` with its table when any trial failed."""
    if not summary.ok:
        raise RuntimeError(f"{summary.table()}\nfailed trials {summary.failed}: see their error.txt; run the sweep "
                           "again to retry them")
    return [r for r in load_trials(summary.sweep_dir) if r.name in summary.results]


def _label_order(root: Path) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Positions of the task, algorithm and variant labels in ``sweep.json`` (empty when there is none)."""
    if not (root / "sweep.json").is_file():
        return {}, {}, {}
    sweep = Sweep.from_json(root / "sweep.json")

    def positions(items: Sequence[Any]) -> dict[str, int]:
        return {x.label: i for i, x in enumerate(items)}

    return positions(sweep.tasks), positions(sweep.algorithms), positions(sweep.variants)


# ------------------------------------------------------------------------- summaries
@dataclass(frozen=True)
class GroupSummary:
    """The seeds of one (task, algorithm, variant) group.

    Attributes:
        task_label, algorithm_label, variant_label: the group.
        seeds: seeds whose trial finished.
        failed, pending: names of trials that failed or have not finished.
        optimum: the task's optimal welfare per episode (None: unknown).
        metrics: per metric in :data:`METRICS`, the summary over ``seeds`` (empty when no seed finished).
        final_95: seeds whose final welfare is >= 95% of the optimum.
        reached_95: seeds that reached 95% of the optimum at some evaluation.
        episodes_to_95: mean and sample std (None for one seed) of the first such episode over ``reached_95``.
    """

    task_label: str
    algorithm_label: str
    variant_label: str
    seeds: tuple[int, ...]
    failed: tuple[str, ...]
    pending: tuple[str, ...]
    optimum: float | None
    metrics: Mapping[str, MetricSummary]
    final_95: int
    reached_95: int
    episodes_to_95: tuple[float, float | None] | None

    @property
    def percent_of_optimum(self) -> float | None:
        if not self.optimum or "welfare" not in self.metrics:
            return None
        return 100 * self.metrics["welfare"].mean / self.optimum


def _summarize_group(records: Sequence[TrialRecord], *, reps: int, confidence: float, seed: int) -> GroupSummary:
    ok = [r for r in records if r.status == "ok" and r.result is not None]
    results = [r.result for r in ok if r.result is not None]
    metrics = {}
    if results:
        metrics = {m: MetricSummary.of([getattr(res, m) for res in results], reps=reps, confidence=confidence,
                                       seed=seed) for m in METRICS}
    optima = {res.optimum for res in results}
    if len(optima) > 1:
        raise ValueError(f"group {records[0].group} mixes optima {sorted(map(str, optima))}")
    optimum = optima.pop() if optima else None
    final_95 = sum(1 for res in results if optimum is not None and res.welfare is not None
                   and res.welfare >= 0.95 * optimum)
    hits = np.array([res.episodes_to_95 for res in results if res.episodes_to_95 is not None], dtype=np.float64)
    to95 = None
    if hits.size:
        to95 = (float(hits.mean()), float(hits.std(ddof=1)) if hits.size > 1 else None)
    first = records[0]
    return GroupSummary(
        task_label=first.task_label, algorithm_label=first.algorithm_label, variant_label=first.variant_label,
        seeds=tuple(r.seed for r in ok), failed=tuple(r.name for r in records if r.status == "failed"),
        pending=tuple(r.name for r in records if r.status == "pending"), optimum=optimum, metrics=metrics,
        final_95=final_95, reached_95=int(hits.size), episodes_to_95=to95,
    )


def _groups(records: Sequence[TrialRecord]) -> dict[tuple[str, str, str], list[TrialRecord]]:
    out: dict[tuple[str, str, str], list[TrialRecord]] = {}
    for r in records:
        out.setdefault(r.group, []).append(r)
    return out


def summarize(
    sweep_dir: str | Path, *, reps: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> list[GroupSummary]:
    """One :class:`GroupSummary` per (task, algorithm, variant) of the sweep, in spec order."""
    return summarize_records(load_trials(sweep_dir), reps=reps, confidence=confidence, seed=seed)


def summarize_records(
    records: Sequence[TrialRecord], *, reps: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> list[GroupSummary]:
    """One :class:`GroupSummary` per (task, algorithm, variant) of ``records`` (from a sweep or elsewhere)."""
    return [_summarize_group(rs, reps=reps, confidence=confidence, seed=seed) for rs in _groups(records).values()]


# ---------------------------------------------------------------------------- tables
def _pm(mean: float, std: float | None, digits: int = 2) -> str:
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _seeds_cell(g: GroupSummary) -> str:
    extra = [f"{len(g.failed)} failed"] * bool(g.failed) + [f"{len(g.pending)} pending"] * bool(g.pending)
    return f"{len(g.seeds)}" + (f" ({', '.join(extra)})" if extra else "")


def _row(g: GroupSummary, with_variant: bool) -> str:
    cells = [g.algorithm_label] + [g.variant_label] * with_variant + [_seeds_cell(g)]
    for m in METRICS:
        s = g.metrics.get(m)
        cells += [_pm(s.mean, s.std), f"{s.iqm:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}]"] if s else ["—", "—"]
        if m == "welfare":
            pct = g.percent_of_optimum
            cells.append("n/a" if pct is None else f"{pct:.1f}%")
    if g.optimum is None or not g.seeds:
        cells += ["n/a", "n/a"]
    else:
        to95 = "never" if g.episodes_to_95 is None else _pm(*g.episodes_to_95, digits=0)
        cells += [f"{g.final_95}/{len(g.seeds)}", f"{to95} ({g.reached_95}/{len(g.seeds)} reached)"]
    return "| " + " | ".join(cells) + " |"


def markdown_tables(groups: Sequence[GroupSummary]) -> str:
    """One Markdown table per task (the optimum differs by task), then the failed and pending trials."""
    blocks = []
    by_task: dict[str, list[GroupSummary]] = {}
    for g in groups:
        by_task.setdefault(g.task_label, []).append(g)
    for task, gs in by_task.items():
        optimum = next((g.optimum for g in gs if g.optimum is not None), None)
        with_variant = len({g.variant_label for g in gs}) > 1
        head = ["algorithm"] + ["variant"] * with_variant + ["seeds"]
        for m in METRICS:
            head += [f"{m} (mean ± std)", f"{m} IQM [95% CI]"] + ["% of optimum"] * (m == "welfare")
        head += ["seeds ≥95% (final)", "episodes to 95%"]
        title = f"### {task}" + ("" if optimum is None else f" (optimum welfare {optimum:g})")
        lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        blocks.append("\n".join(lines + [_row(g, with_variant) for g in gs]))
    failed = [n for g in groups for n in g.failed]
    pending = [n for g in groups for n in g.pending]
    if failed:
        blocks.append("Failed trials (see their error.txt): " + ", ".join(failed))
    if pending:
        blocks.append("Pending trials (not finished): " + ", ".join(pending))
    blocks.append("Metrics are each trial's mean over its last evaluations; ± is the sample std over seeds; IQM "
                  "intervals are percentile-bootstrap 95% over seeds.")
    return "\n\n".join(blocks) + "\n"


def _fmt(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _write_csvs(groups: Sequence[GroupSummary], records: Sequence[TrialRecord], out: Path) -> tuple[Path, Path]:
    results_csv, trials_csv = out / "results.csv", out / "trials.csv"
    with results_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        head = ["task", "algorithm", "variant", "seeds_ok", "seeds_failed", "seeds_pending", "optimum"]
        head += [f"{m}_{s}" for m in METRICS for s in ("mean", "std", "iqm", "ci_low", "ci_high")]
        w.writerow([*head, "percent_of_optimum", "seeds_final_95", "seeds_reached_95", "episodes_to_95_mean",
                    "episodes_to_95_std"])
        for g in groups:
            row: list[Any] = [g.task_label, g.algorithm_label, g.variant_label, len(g.seeds), len(g.failed),
                              len(g.pending), _fmt(g.optimum)]
            for m in METRICS:
                s = g.metrics.get(m)
                row += [_fmt(s.mean), _fmt(s.std), _fmt(s.iqm), _fmt(s.ci_low), _fmt(s.ci_high)] if s else [""] * 5
            to95 = g.episodes_to_95 or (None, None)
            w.writerow([*row, _fmt(g.percent_of_optimum), g.final_95, g.reached_95, _fmt(to95[0]), _fmt(to95[1])])
    with trials_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trial", "task", "algorithm", "variant", "seed", "status", "attempts", *METRICS,
                    "episodes_to_95", "episodes", "wall_seconds", "last_error"])
        for r in records:
            res = r.result
            if res is None:
                w.writerow([r.name, *r.group, r.seed, r.status] + [""] * 8)
                continue
            w.writerow([r.name, *r.group, r.seed, r.status, res.attempts, *(_fmt(getattr(res, m)) for m in METRICS),
                        _fmt(res.episodes_to_95), res.episodes, f"{res.wall_seconds:.2f}",
                        res.errors[-1] if res.errors else ""])
    return results_csv, trials_csv


# ---------------------------------------------------------------------------- curves
def _read_log(path: Path, columns: Sequence[str]) -> dict[str, np.ndarray]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{path} has no evaluation rows")
    missing = [k for k in ("episode", *columns) if k not in rows[0]]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}")
    return {k: np.array([float(r[k]) for r in rows]) for k in ("episode", *columns)}


def learning_curves(
    records: Sequence[TrialRecord], columns: Iterable[str] = METRICS
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Evaluation episodes shared by every finished seed's ``log.csv`` and, per column, a (seeds, evals) array.

    ``columns`` are ``log.csv`` columns (default: welfare, incentives, net), e.g. ``"info/cleaned"`` or a
    designer's training metric ``"train/rate_0"`` (the mean over the iterations since the previous evaluation;
    NaN on the first row, before any iteration).
    """
    names = tuple(columns)
    logs = [_read_log(r.path / "log.csv", names) for r in records if r.status == "ok"]
    if not logs:
        raise ValueError("no finished trial to draw a curve from")
    common = logs[0]["episode"]
    for log in logs[1:]:
        common = np.intersect1d(common, log["episode"])
    values = {m: np.stack([log[m][np.searchsorted(log["episode"], common)] for log in logs]) for m in names}
    return common, values


def plot_task_curves(
    curves: Mapping[str, tuple[np.ndarray, Mapping[str, np.ndarray]]], path: str | Path, *,
    optimum: float | None = None, title: str = "", metrics: Sequence[str] = METRICS,
    titles: Mapping[str, str] | None = None, per_seed: bool = False,
    references: Mapping[str, Sequence[tuple[float, str]]] | None = None, xlabel: str = "training episodes",
) -> Path:
    """A PNG with one panel per metric: per named group, the mean over seeds with a ± std band.

    Args:
        curves: group name -> (evaluation episodes, metric -> (seeds, evals) array), e.g. from
            :func:`learning_curves`.
        path: the PNG to write.
        optimum: a dashed line on the welfare and net panels (when drawn).
        title: the figure's title.
        metrics: the panels, keys of every group's arrays (default: welfare, incentives, net).
        titles: panel titles by metric (default: the known metrics' titles, else the metric's name).
        per_seed: draw each seed's curve (thin) instead of the ± std band: for seeds that differ in kind, not
            degree.
        references: more horizontal lines by metric, ``(value, legend label)`` (dashed, then dotted, ...).
        xlabel: the x axis's label.
    """
    lines: dict[str, list[tuple[float, str]]] = {m: list((references or {}).get(m, ())) for m in metrics}
    for m in ("welfare", "net"):
        if optimum is not None and m in lines:
            lines[m].insert(0, (optimum, "optimum"))
    names = {**_TITLES, **(titles or {})}
    fig, axes = subplots(1, len(metrics), figsize=(5 * len(metrics), 4))
    for name, (x, values) in curves.items():
        for ax, m in zip(axes[0], metrics):
            y = values[m]
            mean, std = y.mean(0), y.std(0)
            what = f"mean of {y.shape[0]} seeds" if per_seed else f"{y.shape[0]} seeds"
            line = ax.plot(x, mean, lw=2 if per_seed else None, label=f"{name} ({what})")[0]
            if per_seed:
                ax.plot(x, y.T, color=line.get_color(), lw=0.7, alpha=0.35)
            else:
                ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    for ax, m in zip(axes[0], metrics):
        for (value, label), style in zip(lines[m], ("--", ":", "-.", (0, (1, 3)))):
            ax.axhline(value, color="k", ls=style, lw=1, label=label)
        ax.set_title(names.get(m, m))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(f"{title} (mean {'and each seed' if per_seed else '± std over seeds'})")
    return save_figure(fig, path, dpi=100)


def subplots(nrows: int, ncols: int, **kwargs: Any) -> tuple[Any, Any]:
    """``matplotlib.pyplot.subplots`` on the file-only Agg backend, axes always 2-D (needs the ``plot`` extra:
    :class:`~designer.extras.MissingExtra` without it)."""
    require("matplotlib", "plot", "plotting").use("Agg")
    return require("matplotlib.pyplot", "plot", "plotting").subplots(nrows, ncols, squeeze=False, **kwargs)


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Lay out, write (creating the folder) and close a figure; returns the path."""
    plt = require("matplotlib.pyplot", "plot", "plotting")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def spread(values: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """``{"mean", "std", "per_seed"}`` of one number per seed, for result files (``std`` is the population std,
    ddof 0, as the example scripts' tables; :class:`MetricSummary` has the sample std)."""
    x = np.asarray(values, dtype=np.float64)
    return {"mean": float(x.mean()), "std": float(x.std()), "per_seed": x.tolist()}


def machine_info() -> dict[str, Any]:
    """The machine a result was measured on: platform, Python, logical CPUs and the load average."""
    return {"platform": platform.platform(), "python": platform.python_version(), "logical_cpus": os.cpu_count(),
            "load_average": os.getloadavg()}


# ----------------------------------------------------------------------------- write
def write_results(
    sweep_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    reps: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``results.md``, ``results.csv``, ``trials.csv`` and (with ``plots``) ``curves_<task>.png``.

    Args:
        sweep_dir: the sweep folder.
        out_dir: where to write (default: ``<sweep_dir>/results``).
        reps, confidence, seed: the bootstrap (same seed, same intervals).
        plots: draw learning curves (needs matplotlib, the ``plot`` extra).

    Returns:
        The written files by kind (``"table"``, ``"csv"``, ``"trials"``, ``"plot:<task>"``).
    """
    records = load_trials(sweep_dir)
    groups = [_summarize_group(rs, reps=reps, confidence=confidence, seed=seed) for rs in _groups(records).values()]
    out = Path(out_dir) if out_dir is not None else Path(sweep_dir) / "results"
    out.mkdir(parents=True, exist_ok=True)
    written = {"table": out / "results.md"}
    written["table"].write_text(markdown_tables(groups))
    written["csv"], written["trials"] = _write_csvs(groups, records, out)
    if not plots:
        return written
    by_task: dict[str, dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]] = {}
    for (task, algo, variant), rs in _groups(records).items():
        if any(r.status == "ok" for r in rs):
            name = algo if variant == "default" else f"{algo} / {variant}"
            by_task.setdefault(task, {})[name] = learning_curves(rs)
    optima = {g.task_label: g.optimum for g in groups if g.optimum is not None}
    for task, curves in by_task.items():
        written[f"plot:{task}"] = plot_task_curves(curves, out / f"curves_{task}.png", optimum=optima.get(task),
                                                   title=task)
    return written
