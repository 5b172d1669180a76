"""Matrix dilemmas for the designer: ``ipd``, ``stag_hunt``, ``chicken`` with fast-learning defaults.

The generic task's designer inputs (vectorized for the batched rollout) and the games' native batch.
"""

from __future__ import annotations

import functools
import importlib
import itertools
from typing import Any

import numpy as np
from pettingzoo import ParallelEnv

from designer.config import DesignerConfig
from designer.learners import LearnerConfig
from designer.registry import register_task
from designer.task import Task
from incentive_envs import make_batched

GAMES = ("ipd", "stag_hunt", "chicken")


def matrix_task(game: str = "ipd", **env_kwargs: Any) -> Task:
    """A matrix dilemma (``ipd``, ``stag_hunt``, ``chicken``) with fast-learning defaults.

    One round per episode by default (the one-shot game of Baumann et al. 2018; pass ``max_cycles`` for the
    iterated game). The agents are small REINFORCE learners with Adam (the paper has no matrix-game
    hyperparameters); the designer pays per action with ``scale`` 4, enough to make cooperation dominant in
    the PD (defecting gains at most T - R = 2).
    """
    if game not in GAMES:
        raise ValueError(f"game must be one of {GAMES}, got {game!r}")
    make = functools.partial(importlib.import_module(f"incentive_envs.{game}").parallel_env,
                             **{"max_cycles": 1, **env_kwargs})
    kwargs = make.keywords
    return Task(
        game,
        make,
        optimum=_best_stage_welfare(make()) * kwargs["max_cycles"],
        learner=LearnerConfig(optimizer="adam", lr=1e-2, entropy_coef=0.01, hidden=(16,)),
        designer=DesignerConfig(scale=4.0, lr=3e-2, cost_lr=1e-3),
        env_kwargs=kwargs,
        make_batched=functools.partial(make_batched, game, **kwargs),
    )


def _best_stage_welfare(env: ParallelEnv) -> float:
    """The best one-round social welfare of a matrix game, by trying every joint action."""
    agents = list(env.possible_agents)
    best = -np.inf
    for joint in itertools.product(*(range(int(env.action_space(a).n)) for a in agents)):
        env.reset(seed=0)
        _, rewards, _, _, _ = env.step(dict(zip(agents, joint)))
        best = max(best, float(sum(rewards.values())))
    return best


for _game in GAMES:
    register_task(_game)(functools.partial(matrix_task, _game))
