"""Batched iterated matrix games: B copies of a :class:`~incentive_envs.matrix_game.MatrixGameEnv` as arrays.

One class serves every stage game of :mod:`incentive_envs.matrix_game` (normal-form tables, heterogeneous action
counts included, and the compact symmetric N-player tables) and so the prisoner's dilemma, stag hunt and
chicken. The games are deterministic and all copies play the same number of rounds, so they end together;
observations, rewards, truncations and states equal the single env's (see :mod:`incentive_envs.vector` for the
batched interface).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from incentive_envs.matrix_game import MatrixGame, MatrixGameEnv
from incentive_envs.validation import check_positive_int, check_seed
from incentive_envs.vector import BatchedInfos, BatchedStep, LockstepBatchedEnv

__all__ = ["BatchedMatrixGame", "joint_rewards"]


def joint_rewards(game: MatrixGame, actions: NDArray[np.int64]) -> NDArray[np.float64]:
    """:meth:`MatrixGame.rewards` over leading axes: ``actions[..., N]`` (valid indices) -> payoffs ``[..., N]``."""
    if not game.symmetric:
        return game.payoffs[tuple(np.moveaxis(actions, -1, 0))]
    # Symmetric table: own action, then how many *others* chose each action j >= 1.
    chose = [actions == j for j in range(1, game.n_actions[0])]
    index = (actions, *(c.sum(axis=-1, keepdims=True) - c for c in chose))  # a name: mypy's 3.10 target
    return game.payoffs[index]


class BatchedMatrixGame(LockstepBatchedEnv):
    """B copies of an iterated :class:`MatrixGame`, stepped together with arrays.

    Args:
        env: the single env (a ``MatrixGameEnv``, as ``matrix_game``, ``ipd``, ``stag_hunt`` and ``chicken``
            build) giving the stage game, ``max_cycles`` and the spaces; it is not stepped.
        n_envs: number of copies B.

    Player ``i`` acts in ``Discrete(action_counts[i])``; ``action_space`` is the largest of these (they are all
    equal except in normal-form games with different action counts). The game draws no random numbers, so a
    seed changes nothing (it is still checked).

    Raises:
        TypeError: ``env`` is not a ``MatrixGameEnv`` or is a subclass (which may change the rules: batch it
            with :func:`incentive_envs.vector.batch_of`).
    """

    def __init__(self, env: MatrixGameEnv, n_envs: int) -> None:
        if type(env) is not MatrixGameEnv:
            raise TypeError(f"{type(env).__name__} cannot be batched natively: BatchedMatrixGame runs "
                            "MatrixGameEnv's own rules (batch a subclass with incentive_envs.vector.batch_of)")
        self.n_envs = check_positive_int("n_envs", n_envs)
        self.game, self.max_cycles = env.game, env.max_cycles
        self.possible_agents = tuple(env.possible_agents)
        self.observation_space = env.observation_space(self.possible_agents[0])
        self._counts = tuple(int(k) for k in env.game.n_actions)
        self.action_space = spaces.Discrete(max(self._counts))
        self.state_space = env.state_space
        self._offsets, self._no_previous, self._views = env._offsets, env._no_previous, env._views
        self._rows = np.arange(self.n_envs)[:, None]
        self._round = 0
        self._encoding = np.zeros((self.n_envs, *self.observation_space.shape), dtype=np.float32)

    @property
    def action_counts(self) -> tuple[int, ...]:
        return self._counts

    def reset(self, seed: int | None = None) -> tuple[NDArray[np.float32], BatchedInfos]:
        check_seed(seed)
        self._round = 0
        self._running = self._started = True
        self._encode(self._no_previous)
        return self._encoding[:, self._views], {}

    def step(self, actions: Any) -> BatchedStep:
        acts = self._check_actions(actions)
        if not self._running:
            return self._blank_step()
        self._round += 1
        rewards = joint_rewards(self.game, acts)
        self._encode(self._offsets + acts)
        truncated = self._round >= self.max_cycles
        self._running = not truncated
        shape = (self.n_envs, self.n_agents)
        return self._encoding[:, self._views], rewards, np.zeros(shape, dtype=bool), np.full(shape, truncated), {}

    def state(self) -> NDArray[np.float32]:
        """``[B, dim]``: every player's last action (or "no previous round"), one-hot, in player index order."""
        return self._encoding.copy()

    def _encode(self, hot: NDArray[np.int64]) -> None:
        self._encoding = np.zeros_like(self._encoding)
        self._encoding[self._rows, hot] = 1.0
