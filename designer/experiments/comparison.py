"""The ``compare`` command's report: the results table (the sweep aggregator's columns) and the learning-curve
plots of runs saved as ``<folder>/<algorithm>/seed<k>/checkpoint.pt``, rebuilt from the checkpoints alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from designer.experiments.aggregate import TrialRecord, markdown_tables, summarize_records
from designer.experiments.sweep import TrialResult
from designer.experiments.trainer import Trainer
from designer.extras import MissingExtra, require

__all__ = ["can_plot", "plot_run", "report", "results_table", "write_report"]


def _final(trainer: Trainer, last: int = 5) -> dict[str, float]:
    """Mean over the last ``last`` evaluations (smooths evaluation noise)."""
    hist = trainer.progress.history[-last:]
    return {k: float(np.mean([getattr(h, k) for h in hist])) for k in ("welfare", "incentives", "net")}


def results_table(results: dict[str, list[Trainer]], task_label: str) -> str:
    """The sweep aggregator's Markdown table for these runs: welfare, incentives paid and designer net (mean ±
    sample std, IQM with a bootstrap 95% interval over seeds), % of optimum, seeds >= 95%, episodes to 95%."""
    records = []
    for algo, trainers in results.items():
        for t in trainers:
            final = _final(t)
            name = f"{task_label}__{algo}__default__seed{t.config.seed}"
            result = TrialResult(
                trial=name, status="ok", attempts=1, wall_seconds=0.0, episodes=t.progress.episodes, last_k=5,
                welfare=final["welfare"], incentives=final["incentives"], net=final["net"],
                episodes_to_95=t.episodes_to(0.95), optimum=t.task.optimum, resumed_from=None, config_hash="",
            )
            records.append(TrialRecord(name, task_label, algo, "default", t.config.seed,
                                       Path(t.config.out_dir or "."), result))
    return markdown_tables(summarize_records(records))


def plot_run(trainer: Trainer, path: Path) -> None:
    """One run's learning curve as a PNG (nothing without the ``plot`` extra; the report says so once)."""
    from designer.experiments.plots import plot_learning_curves

    try:
        plot_learning_curves({trainer.designer_config.algorithm: [trainer]}, path, optimum=trainer.task.optimum)
    except MissingExtra:  # said once, by the report
        pass


def can_plot() -> bool:
    """Whether matplotlib (the ``plot`` extra) is there; if not, one line saying what to install."""
    try:
        require("matplotlib", "plot", "plotting")
    except MissingExtra as err:
        print(f"plot: not drawn ({err})")
        return False
    return True


def report(folder: Path, algorithms: Sequence[str] | None = None) -> dict[str, list[Trainer]]:
    """Rebuild the results table and comparison plot of ``folder/<algorithm>/seed<k>/checkpoint.pt`` runs.

    Lets runs of one table be produced by separate processes (or machines) and reported together.
    """
    names = algorithms or sorted(p.name for p in folder.iterdir() if p.is_dir() and any(p.glob("seed*/checkpoint.pt")))
    if not names:
        raise SystemExit(f"no <algorithm>/seed*/checkpoint.pt runs under {folder}")
    results: dict[str, list[Trainer]] = {}
    for name in names:
        paths = sorted((folder / name).glob("seed*/checkpoint.pt"), key=lambda p: int(p.parent.name[4:]))
        if not paths:
            raise SystemExit(f"no checkpoints under {folder / name}")
        results[name] = [Trainer.resume(p) for p in paths]
    write_report(results, folder)
    return results


def write_report(results: dict[str, list[Trainer]], folder: Path) -> None:
    """``results.md`` and ``comparison.png`` in ``folder``; the table is printed too."""
    task = next(iter(results.values()))[0].task
    table = results_table(results, folder.name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.md").write_text(table + "\n")
    if can_plot():
        from designer.experiments.plots import plot_learning_curves

        print(f"plot: {plot_learning_curves(results, folder / 'comparison.png', optimum=task.optimum)}")
    print(table)
    print(f"table: {folder / 'results.md'}")
