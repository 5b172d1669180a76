"""A repeated stage game as a plain PettingZoo ``ParallelEnv``: the shared skeleton of the test dilemmas."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

Payoff = Callable[[Sequence[int]], Sequence[float]]
"""``(joint action) -> one reward per player``."""


class StageGameEnv(ParallelEnv):
    """``rounds`` rounds of a simultaneous-move stage game; each player observes the one-hot round index.

    Args:
        payoff: the stage game's rewards for a joint action.
        n_players: number of players (``player_0`` ...).
        action_names: one name per action (the same for every player).
        rounds: rounds per episode (then truncated).
        render_mode: ``None`` or ``"ansi"``.
    """

    metadata = {"name": "stage_game_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(self, payoff: Payoff, n_players: int, action_names: Sequence[str], rounds: int = 1,
                 render_mode: str | None = None) -> None:
        self.payoff = payoff
        self.action_names = tuple(action_names)
        self.rounds = rounds
        self.render_mode = render_mode
        self.possible_agents = [f"player_{i}" for i in range(n_players)]
        self.agents: list[str] = []
        self._round = 0
        self._last: dict[str, int] = {}

    @functools.cache
    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.rounds,), np.float32)

    @functools.cache
    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(len(self.action_names))

    def _obs(self) -> dict[str, np.ndarray]:
        row = np.zeros(self.rounds, np.float32)
        row[min(self._round, self.rounds - 1)] = 1.0
        return {a: row.copy() for a in self.agents}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        self.agents = list(self.possible_agents)
        self._round = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        joint = [int(actions[a]) for a in self.agents]
        rewards = dict(zip(self.agents, map(float, self.payoff(joint))))
        self._last = dict(zip(self.agents, joint))
        self._round += 1
        done = self._round >= self.rounds
        obs = self._obs()
        terminations = {a: False for a in self.agents}
        truncations = {a: done for a in self.agents}
        infos: dict[str, dict] = {a: {} for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return " ".join(f"{a}={self.action_names[x]}" for a, x in self._last.items())
        return None

    def best_welfare(self) -> float:
        """The best social welfare per episode (the best joint action every round)."""
        n_actions = len(self.action_names)
        joints = itertools.product(range(n_actions), repeat=len(self.possible_agents))
        return self.rounds * max(sum(self.payoff(j)) for j in joints)
