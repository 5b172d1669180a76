"""The training loop shared by one run (:class:`~designer.experiments.trainer.Trainer`) and stacked runs
(:class:`~designer.experiments.seed_stack.SeedStack`): evaluate on schedule, iterate to the budget, checkpoint on
schedule, and a last evaluation at the end. One loop, so both paths evaluate and checkpoint at the same episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from designer.experiments.records import EvalResult

__all__ = ["Progress", "TrainingLoop", "progress_bar"]


@dataclass
class Progress:
    """Where a run is: episodes and iterations trained, the next evaluation, the evaluation history and the
    training metrics gathered since the last evaluation (all in its checkpoint)."""

    episodes: int = 0
    iterations: int = 0
    next_eval: int = 0
    history: list[EvalResult] = field(default_factory=list)
    train_metrics: dict[str, list[float]] = field(default_factory=dict)


def progress_bar(enabled: bool, total: int, initial: int, desc: str) -> Any:
    """A tqdm bar over training episodes, or None; quiet when stderr is not a terminal (``disable=None``), so a
    redirected log gets no line per update."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="ep", disable=None, desc=desc)


@dataclass
class TrainingLoop:
    """One run's schedule (``progress``: episodes, next evaluation, history) driven to ``budget`` episodes.

    ``iterate`` trains one iteration; ``evaluate`` evaluates and logs (and moves ``progress.next_eval``);
    ``checkpoint`` (optional) writes checkpoints every ``checkpoint_period`` episodes (0: never); ``after`` runs
    after every iteration; ``where(episode)`` names the iteration a ``FloatingPointError`` came from; the bar
    advances ``bar_scale`` episodes per episode of ``progress`` (the number of stacked runs).
    """

    progress: Progress
    budget: int
    iterate: Callable[[], None]
    evaluate: Callable[[], None]
    where: Callable[[int], str]
    checkpoint: Callable[[], object] | None = None
    checkpoint_period: int = 0
    after: Callable[[], None] | None = None
    bar: Any = None
    bar_scale: int = 1

    def run(self) -> None:
        """Train to the budget; the last evaluation is at the final episode."""
        p = self.progress
        while True:
            if p.episodes >= p.next_eval:
                self.evaluate()
            if p.episodes >= self.budget:
                break
            before = p.episodes
            try:
                self.iterate()
            except FloatingPointError as err:
                raise FloatingPointError(f"{err} [{self.where(before)}]") from err
            if self.bar is not None:
                self.bar.update((p.episodes - before) * self.bar_scale)
            period = self.checkpoint_period
            if self.checkpoint is not None and period and p.episodes // period > before // period:
                self.checkpoint()
            if self.after is not None:
                self.after()
        if p.history[-1].episode != p.episodes:
            self.evaluate()
