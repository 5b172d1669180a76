"""A common-pool resource: an appropriation game (Ostrom, Gardner & Walker 1994) played for several rounds.

Each round every player puts ``low`` (1) or ``high`` (2) effort into a shared fishery. The total catch
``E (A - B E)`` (``A = 3``, ``B = 0.4``) is concave in the total effort ``E`` and split in proportion to effort,
so player ``i`` catches ``e_i (A - B E)``. High effort is dominant (it pays 0.2 to 1.0 more, whatever the others
do) but crowds the resource: everyone high catches 3.6 a round, everyone low 5.4, and the best round (one
player high) 5.6. Over the default 5 rounds: selfish play 18, all low 27, optimum 28 (:func:`best_welfare`).

Observations (each player): the one-hot round index, then last round's total effort divided by its maximum.
``state()`` (the designer's view) is the same vector, declared by ``state_space``.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

EFFORT = (1.0, 2.0)  # low, high
A, B = 3.0, 0.4


def catches(joint: tuple[int, ...]) -> list[float]:
    """Each player's catch for one round's joint action."""
    total = sum(EFFORT[a] for a in joint)
    return [EFFORT[a] * (A - B * total) for a in joint]


class CommonsEnv(ParallelEnv):
    """The common-pool resource game (see the module docstring)."""

    metadata = {"name": "commons_v0", "render_modes": ["ansi"], "is_parallelizable": True}
    action_names = ("low", "high")

    def __init__(self, n_players: int = 3, rounds: int = 5, render_mode: str | None = None) -> None:
        self.rounds = rounds
        self.render_mode = render_mode
        self.possible_agents = [f"player_{i}" for i in range(n_players)]
        self.agents: list[str] = []
        self.state_space = spaces.Box(0.0, 1.0, (rounds + 1,), np.float32)
        self._round = 0
        self._last_effort = 0.0

    @functools.cache  # PettingZoo requires the identical space object on every call
    def observation_space(self, agent: str) -> spaces.Box:
        return self.state_space

    @functools.cache
    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(2)

    def state(self) -> np.ndarray:
        row = np.zeros(self.rounds + 1, np.float32)
        row[min(self._round, self.rounds - 1)] = 1.0
        row[-1] = self._last_effort
        return row

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        self.agents = list(self.possible_agents)
        self._round, self._last_effort = 0, 0.0
        return {a: self.state() for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        joint = tuple(int(actions[a]) for a in self.agents)
        rewards = dict(zip(self.agents, catches(joint)))
        self._last_effort = sum(EFFORT[a] for a in joint) / (EFFORT[1] * len(joint))
        self._round += 1
        done = self._round >= self.rounds
        obs = {a: self.state() for a in self.agents}
        infos: dict[str, dict] = {a: {} for a in self.agents}
        truncations = {a: done for a in self.agents}
        terminations = {a: False for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        return f"round {self._round}, effort {self._last_effort:.2f}" if self.render_mode == "ansi" else None


def parallel_env(n_players: int = 3, rounds: int = 5, render_mode: str | None = None) -> CommonsEnv:
    """The common-pool resource game as a PettingZoo ``ParallelEnv``."""
    return CommonsEnv(n_players, rounds, render_mode)


def best_welfare(n_players: int = 3, rounds: int = 5) -> float:
    """The optimum social welfare per episode: the best joint action every round (rounds are independent)."""
    return rounds * max(sum(catches(j)) for j in itertools.product((0, 1), repeat=n_players))
