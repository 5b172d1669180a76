"""Deliberately broken variants of the volunteer's dilemma, one flaw each, for the task validation tests."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces

from tests.games._stage import StageGameEnv
from tests.games.volunteer import payoff


class NoRenderMode(StageGameEnv):
    """Forgets ``self.render_mode``."""

    def __init__(self) -> None:
        super().__init__(payoff, 3, ("volunteer", "ignore"))
        del self.render_mode


class StateWithoutSpace(StageGameEnv):
    """Defines ``state()`` (24 numbers) but no ``state_space``: the wrapper would show the designer the
    observations (3 x 1) while a task reading ``state()`` would build a network for 24."""

    def state(self) -> np.ndarray:
        return np.ones(24, np.float32)


class HiddenRandomness(StageGameEnv):
    """Rewards with noise from its own generator, not ``self.np_random``: checkpoints could not restore it."""

    def __init__(self) -> None:
        super().__init__(payoff, 3, ("volunteer", "ignore"))
        self._rng = np.random.default_rng()

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        return super().reset(seed=seed, options=options)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        obs, rewards, terms, truncs, infos = super().step(actions)
        return obs, {a: r + float(self._rng.normal()) for a, r in rewards.items()}, terms, truncs, infos


class Unseeded(StageGameEnv):
    """Draws from ``np_random`` but ignores the reset seed."""

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        self.np_random = np.random.default_rng()
        return super().reset(options=options)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        obs, rewards, terms, truncs, infos = super().step(actions)
        return obs, {a: r + float(self.np_random.normal()) for a, r in rewards.items()}, terms, truncs, infos


class DictObservations(StageGameEnv):
    """Dict observations (the generic task needs one flat Box)."""

    @functools.cache
    def observation_space(self, agent: str) -> spaces.Dict:
        return spaces.Dict({"round": spaces.Box(0.0, 1.0, (self.rounds,), np.float32)})


class MissingAgentAtReset(StageGameEnv):
    """Returns observations for all but the last agent at reset."""

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        obs, infos = super().reset(seed=seed, options=options)
        obs.pop(self.possible_agents[-1])
        return obs, infos

