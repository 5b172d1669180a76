"""Hyperparameter presets: the agents' and the designer's settings as one named choice.

A task carries its own defaults (the paper's, for the shipped games). A game the library does not ship gets the
``small_game`` preset: it was tuned on three small social dilemmas written for the tests (hawk-dove, a
volunteer's dilemma, a common-pool resource; ``tests/games``), where MetaGrad with it reaches 90% of the optimum
within a few thousand episodes while agents without a designer end in the selfish outcome
(``tests/designer/test_custom_tasks.py``). Pick a preset with ``--preset`` on the command line or
:func:`apply_preset` / :func:`game_task` in code.

============== ===================================================================================================
preset         settings
============== ===================================================================================================
``task``       the task's own defaults (the paper's for Escape Room, Cleanup, Gather-Trade-Build)
``small_game`` small games (a few agents, actions and rounds): REINFORCE agents with Adam (lr 0.01, one hidden
               layer of 16, entropy 0.01, 8 episodes per update); MetaGrad paying up to 4 per action with Adam
               lr 0.03 and a cost step of 0.001
============== ===================================================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pettingzoo import ParallelEnv

from designer.config import DesignerConfig
from designer.learners import LearnerConfig
from designer.task import Task

__all__ = ["PRESETS", "Preset", "apply_preset", "game_task", "preset_names"]


@dataclass(frozen=True)
class Preset:
    """A named pair of agent and designer settings.

    Attributes:
        name: what ``--preset`` and :func:`apply_preset` call it.
        summary: one line for ``--help``.
        learner: the agents' settings.
        designer: the designer's settings (``algorithm`` is left to the caller).
        batch_episodes: episodes per inner update the preset was tuned with (``TrainConfig.batch_episodes``).
    """

    name: str
    summary: str
    learner: LearnerConfig
    designer: DesignerConfig
    batch_episodes: int = 1


SMALL_GAME = Preset(
    "small_game",
    "small games: Adam REINFORCE agents (lr 0.01, 16 hidden), MetaGrad paying up to 4 per action (lr 0.03)",
    learner=LearnerConfig(optimizer="adam", lr=1e-2, entropy_coef=0.01, hidden=(16,)),
    designer=DesignerConfig(scale=4.0, lr=3e-2, cost_lr=1e-3),
    batch_episodes=8,
)

PRESETS: Mapping[str, Preset] = {SMALL_GAME.name: SMALL_GAME}
"""Every preset by name (``task``, the task's own defaults, is not one: it changes nothing)."""


def preset_names() -> tuple[str, ...]:
    """The names ``--preset`` accepts: ``task`` (no change), then every preset."""
    return ("task", *PRESETS)


def apply_preset(task: Task, name: str) -> Task:
    """``task`` with the preset ``name``'s learner and designer as its defaults (``"task"``: unchanged).

    Raises:
        ValueError: an unknown preset name (the known ones are listed).
    """
    if name == "task":
        return task
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {list(preset_names())}")
    task.learner, task.designer = PRESETS[name].learner, PRESETS[name].designer
    task.preset = name
    return task


def game_task(name: str, make_env: Callable[[], ParallelEnv], *, preset: str = "small_game",
              optimum: float | None = None, env_kwargs: Mapping[str, Any] | None = None) -> Task:
    """The generic task over a plain PettingZoo game with a preset's settings (default ``small_game``).

    Args:
        name: the task's name (as registered).
        make_env: builds a fresh env of the game.
        preset: the settings (:data:`PRESETS`).
        optimum: the best social welfare per episode, when known (for "% of optimum" in reports).
        env_kwargs: the keyword arguments ``make_env`` was bound with (recorded in reports).
    """
    return apply_preset(Task(name, make_env, optimum=optimum, env_kwargs=env_kwargs), preset)
