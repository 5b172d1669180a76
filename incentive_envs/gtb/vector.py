"""Gather-Trade-Build as a :class:`~incentive_envs.vector.BatchedParallelEnv` over :class:`BatchedGTB`.

The batch returns what B single envs (``gather_trade_build.parallel_env(observation_mode="flat")``) return, as
arrays: flat observations ``[B, N, D]``, ``float64`` rewards, truncation at ``max_cycles`` for every agent and
the infos of :data:`~incentive_envs.gtb.schema.STEP_INFO_KEYS` stacked ``[B, N, ...]`` (``action_mask``
``[B, N, 50]`` int8, ``marginal_rates`` ``[B, N, 7]``, the per-world metrics repeated for every agent). For batched
tax designers: :meth:`BatchedGTBEnv.set_tax_rates` takes one row of rates per world, :attr:`tax_cycle_position`
is shared by all worlds (they step in lockstep), and :meth:`state` is the planner's ``[B, S]`` state. Episodes
have a fixed length, so all worlds end together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from numpy.typing import ArrayLike, NDArray

from incentive_envs.gtb.engine import BatchedGTB, GTBStep
from incentive_envs.gtb.schema import GTBSchema
from incentive_envs.validation import check_positive_int, check_seed
from incentive_envs.vector import BatchedInfos, BatchedStep, LockstepBatchedEnv

if TYPE_CHECKING:
    from incentive_envs.gather_trade_build import GatherTradeBuildEnv

__all__ = ["BatchedGTBEnv"]


class BatchedGTBEnv(LockstepBatchedEnv):
    """B Gather-Trade-Build worlds with the batched multi-agent interface (see :mod:`incentive_envs.vector`).

    Args:
        env: a single env giving the configuration, layout, initial tax rates, episode length and spaces; it is
            not stepped.
        n_envs: number of worlds B.

    Raises:
        TypeError: ``env`` has Dict observations (``observation_mode="dict"``): a batch needs one Box
            observation per agent, so use ``observation_mode="flat"`` (the parts are cut back with the single
            env's ``split_observation``).

    Attributes:
        sim: the :class:`BatchedGTB` engine.
    """

    def __init__(self, env: GatherTradeBuildEnv, n_envs: int) -> None:
        obs_space = env.observation_space(env.possible_agents[0])
        if not isinstance(obs_space, spaces.Box):
            raise TypeError(f"Gather-Trade-Build with observation_mode={env.observation_mode!r} cannot be batched: "
                            "its observations are a Dict space and a batch needs one Box per agent; use "
                            "observation_mode='flat'")
        one = env.sim
        self.sim = BatchedGTB(check_positive_int("n_envs", n_envs), config=one.config, layout=one.layout,
                              initial_tax_rates=one.initial_tax_rates)
        self.sim.set_episode_length(one.episode_length)
        self.n_envs = self.sim.n_envs
        self.possible_agents = tuple(env.possible_agents)
        self.observation_space = obs_space
        self.action_space = env.action_space(self.possible_agents[0])
        self.state_space = env.state_space
        self.schema: GTBSchema = env.schema

    def reset(self, seed: int | None = None) -> tuple[NDArray[np.float32], BatchedInfos]:
        out = self.sim.reset(seed=check_seed(seed))
        self._running = self._started = True
        return out.obs.packed(), self._infos(out)

    def step(self, actions: Any) -> BatchedStep:
        acts = self._check_actions(actions)
        if not self._running:
            return self._blank_step()
        out = self.sim.step(acts)
        self._running = not out.done
        shape = (self.n_envs, self.n_agents)
        return out.obs.packed(), out.reward, np.zeros(shape, dtype=bool), np.full(shape, out.done), self._infos(out)

    def state(self) -> NDArray[np.float32]:
        """``[B, S]``: each world's designer state (``GatherTradeBuildEnv.state``)."""
        return self.sim.state()

    # ------------------------------------------------------------------ tax interface
    @property
    def tax_cycle_position(self) -> int:
        """Cycle position of the next step in every world (1 = first step of a tax period)."""
        return self.sim.tax_cycle_position

    @property
    def tax_rates(self) -> NDArray[np.float64]:
        """``[B, K]``: the marginal rates in force in each world."""
        return self.sim.tax_rates

    def set_tax_rates(self, rates: ArrayLike) -> None:
        """Rates for each world's next tax period: ``[B, K]`` (one row per world) or ``[K]`` for all worlds.

        Same rules and errors as ``GatherTradeBuildEnv.set_tax_rates`` (see :meth:`BatchedGTB.set_tax_rates`).
        """
        self.sim.set_tax_rates(rates)

    # ------------------------------------------------------------------ helpers
    def _infos(self, out: GTBStep) -> BatchedInfos:
        """The single env's per-agent infos, stacked ``[B, N, ...]``."""
        shape = (self.n_envs, self.n_agents)

        def per_agent(world: NDArray[Any]) -> NDArray[Any]:  # [B, ...] -> [B, N, ...]
            return np.repeat(world[:, None], self.n_agents, axis=1)

        return {
            "action_mask": out.obs.action_mask,
            "coin": out.coin,
            "coin_pre_tax": out.coin_pre_tax,
            "labour": out.labour,
            "income": out.income,
            "tax_paid": out.tax_paid,
            "lump_sum": out.lump_sum,
            "marginal_rates": per_agent(out.marginal_rates),
            "tax_enacted": np.full(shape, bool(out.tax_enacted)),
            "tax_cycle_position": np.full(shape, self.sim.tax_cycle_position, dtype=np.int64),
            "productivity": per_agent(out.productivity),
            "equality": per_agent(out.equality),
            "equality_times_productivity": per_agent(out.equality * out.productivity),
            "houses_built": out.houses_built,
            "trades": out.trades,
        }
