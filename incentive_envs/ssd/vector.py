"""Cleanup / Harvest as a :class:`~incentive_envs.vector.BatchedParallelEnv` over the batched engine.

:class:`BatchedSSD` already steps B games with arrays; this class gives it the batched multi-agent interface
(PettingZoo's five returns with a leading batch axis, ``active``, ``done``, ``state()``) with the single env's
values: ``float64`` rewards, truncation at ``max_steps`` for every agent, and the infos of
:data:`~incentive_envs.ssd.engine.INFO_KEYS` as ``[B, N]`` arrays. Episodes have a fixed length, so all games end
together.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from incentive_envs.ssd.engine import INFO_KEYS, BatchedSSD
from incentive_envs.ssd.parallel import SSDParallelEnv
from incentive_envs.validation import check_positive_int, check_seed
from incentive_envs.vector import BatchedInfos, BatchedStep, LockstepBatchedEnv

__all__ = ["BatchedSSDEnv"]


class BatchedSSDEnv(LockstepBatchedEnv):
    """B Cleanup or Harvest games with the batched multi-agent interface (see :mod:`incentive_envs.vector`).

    Args:
        env: a single env (``cleanup.parallel_env(...)`` or ``harvest.parallel_env(...)``) giving the game's
            configuration and spaces; it is not stepped.
        n_envs: number of games B.

    Attributes:
        engine: the :class:`BatchedSSD` (for its extra views: ``positions()``, ``cell_grid()``, ...).
    """

    def __init__(self, env: SSDParallelEnv, n_envs: int) -> None:
        self.engine = BatchedSSD(env.config, check_positive_int("n_envs", n_envs))
        self.n_envs = self.engine.batch_size
        self.possible_agents = tuple(env.possible_agents)
        self.observation_space = env.observation_space(self.possible_agents[0])
        self.action_space = env.action_space(self.possible_agents[0])
        self.state_space = env.state_space

    def reset(self, seed: int | None = None) -> tuple[NDArray[np.uint8], BatchedInfos]:
        obs = self.engine.reset(seed=check_seed(seed))
        self._running = self._started = True
        shape = (self.n_envs, self.n_agents)
        infos: BatchedInfos = {k: np.zeros(shape, dtype=np.int64 if k == "waste_cleared" else bool) for k in INFO_KEYS}
        infos["present"][:] = True
        return obs, infos

    def step(self, actions: Any) -> BatchedStep:
        acts = self._check_actions(actions)
        if not self._running:
            return self._blank_step()
        obs, rewards, done, infos = self.engine.step(acts)
        self._running = not bool(done.all())
        shape = (self.n_envs, self.n_agents)
        truncs = np.repeat(done[:, None], self.n_agents, axis=1)
        return obs, rewards.astype(np.float64), np.zeros(shape, dtype=bool), truncs, infos

    def state(self) -> NDArray[np.uint8]:
        """``[B, H+2, W+2, 3]``: every game's map image (``SSDParallelEnv.state``)."""
        return self.engine.state()
