"""What a run records: its evaluation results (:class:`EvalResult`, one ``log.csv`` row each) and the CSV log.

Shared by :class:`~designer.experiments.trainer.Trainer`, the stacked runs, the sweeps and the principal trials,
so that every run folder's ``log.csv`` has the same columns and the same resume rules.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from designer.rollout import EpisodeStats

__all__ = ["EvalResult", "append_log_row", "episodes_to", "eval_result", "mean_stats", "truncate_log"]


@dataclass(frozen=True)
class EvalResult:
    """Mean outcome of one evaluation (actions sampled without exploration mixing)."""

    episode: int
    welfare: float
    welfare_std: float
    incentives: float
    net: float
    steps: float
    env_returns: tuple[float, ...]
    incentive_returns: tuple[float, ...]
    info: dict[str, float] = field(default_factory=dict)
    action_counts: tuple[tuple[float, ...], ...] = ()

    def row(self, agents: tuple[str, ...], action_names: tuple[str, ...] | None = None) -> dict[str, float]:
        """The log.csv row (columns documented in the README's "log.csv columns"): action columns are named
        ``actions/<agent>/<action name>`` where the game names its actions, else by the action's index."""
        out: dict[str, float] = {
            "episode": self.episode,
            "welfare": self.welfare,
            "welfare_std": self.welfare_std,
            "incentives": self.incentives,
            "net": self.net,
            "steps": self.steps,
        }
        for a, r, i in zip(agents, self.env_returns, self.incentive_returns):
            out[f"env_return/{a}"] = r
            out[f"incentive/{a}"] = i
        for key, value in self.info.items():
            out[f"info/{key}"] = value
        for a, counts in zip(agents, self.action_counts):
            for action, c in enumerate(counts):
                out[f"actions/{a}/{action if action_names is None else action_names[action]}"] = c
        return out


def eval_result(data: dict[str, Any]) -> EvalResult:
    """An :class:`EvalResult` from its checkpointed dict (lists back to tuples)."""
    fixed: dict[str, Any] = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list)
                             else v for k, v in data.items()}
    return EvalResult(**fixed)


def mean_stats(episode: int, stats: list[EpisodeStats]) -> EvalResult:
    """The mean outcome of the evaluation episodes ``stats``, recorded at training episode ``episode``."""
    welfare = np.array([s.welfare for s in stats])
    return EvalResult(
        episode=episode,
        welfare=float(welfare.mean()),
        welfare_std=float(welfare.std()),
        incentives=float(np.mean([s.incentives for s in stats])),
        net=float(np.mean([s.net for s in stats])),
        steps=float(np.mean([s.steps for s in stats])),
        env_returns=tuple(np.mean([s.env_returns for s in stats], axis=0).tolist()),
        incentive_returns=tuple(np.mean([s.incentive_returns for s in stats], axis=0).tolist()),
        info={k: float(np.mean([dict(s.info_totals)[k] for s in stats])) for k, _ in stats[0].info_totals},
        action_counts=tuple(map(tuple, np.mean([s.action_counts for s in stats], axis=0).tolist()))
        if stats[0].action_counts else (),
    )


def episodes_to(history: Sequence[EvalResult], optimum: float | None, fraction: float = 0.95) -> int | None:
    """First evaluated episode of ``history`` whose welfare reached ``fraction`` of ``optimum`` (None if never or
    the optimum is unknown)."""
    if optimum is None:
        return None
    for h in history:
        if h.welfare >= fraction * optimum:
            return h.episode
    return None


def truncate_log(path: Path, n_rows: int) -> None:
    """Keep the header and the first ``n_rows`` rows of a CSV log (delete it when ``n_rows`` is 0)."""
    if not path.exists():
        return
    if n_rows <= 0:
        path.unlink()
        return
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) <= n_rows + 1:
        return
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows[: n_rows + 1])
    os.replace(tmp, path)


def append_log_row(path: Path, row: Mapping[str, float]) -> None:
    """Append ``row`` to the CSV log at ``path`` under its header. Columns the log lacks (a run resumed by a newer
    version that logs more) are added to the header, NaN in the older rows (the log is rewritten, atomically); a
    column of the header that ``row`` lacks is NaN in it. Cells never land under another column's name."""
    if not path.exists():
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            writer.writeheader()
            writer.writerow(row)
        return
    with path.open(newline="") as fh:
        header = next(csv.reader(fh), [])
    added = [k for k in row if k not in header]
    if added:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        header = [*header, *added]
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=header, restval="nan")
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    with path.open("a", newline="") as fh:
        csv.DictWriter(fh, fieldnames=header, restval="nan").writerow(row)
