"""Batched multi-agent envs: B copies of a game stepped together with arrays (the vectorized training path).

:class:`BatchedParallelEnv` keeps PettingZoo's vocabulary with a leading batch axis. Arrays are indexed
``[copy, agent, ...]`` with agents in ``possible_agents`` order:

==================== ============================== ===================================================
what                 shape                          meaning
==================== ============================== ===================================================
observations         ``[B, N, *obs_shape]``         each agent's observation (zeros for an agent gone)
actions              ``[B, N]`` integer             one Discrete action per agent (ignored where not active)
rewards              ``[B, N]`` float64             the step's rewards (0 where the agent did not act)
terminations         ``[B, N]`` bool                as PettingZoo's, per agent
truncations          ``[B, N]`` bool                as PettingZoo's, per agent
active               ``[B, N]`` bool                the agent acts at the next step (PettingZoo ``agents``)
infos                ``{key: [B, N, ...]}``         each numeric info key, stacked (0 where absent)
state                ``[B, *state_shape]``          ``state()`` of each copy, when the game has one
==================== ============================== ===================================================

Seeding: ``reset(seed=s)`` resets copy ``b`` exactly as the single env's ``reset(seed=s + b)``; ``reset()``
without a seed continues each copy's own random stream, as the single env's does. So B copies equal B single
envs seeded ``s, s + 1, ...``, step by step (the contract the tests check for every game).

Episodes end per copy (Escape Room ends early in some copies). Autoreset is disabled
(``metadata["autoreset_mode"] == "disabled"``, Gymnasium's ``AutoresetMode.DISABLED``): a copy whose agents are
all done stays done, its actions are ignored and its rewards are 0, until the next ``reset()`` resets every copy
together — the designer's rollouts collect whole episodes in lockstep.

:func:`batch_of` batches any PettingZoo parallel game whose agents share a ``Box`` observation space and a
``Discrete`` action space (third-party games included) by stepping B single envs; games with a native batched
engine (Cleanup/Harvest, Gather-Trade-Build, Escape Room, the matrix games) provide their own subclass.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from pettingzoo import ParallelEnv

from incentive_envs.validation import check_positive_int, check_seed

__all__ = ["BatchedParallelEnv", "PettingZooBatch", "batch_of", "check_batched_actions"]

BatchedInfos = dict[str, NDArray[Any]]
BatchedStep = tuple[NDArray[Any], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], BatchedInfos]


def check_batched_actions(actions: Any, n_envs: int, agents: Sequence[str], n_actions: int,
                          active: NDArray[np.bool_] | None = None) -> NDArray[np.int64]:
    """``actions`` as an int64 ``[B, N]`` array; ``ValueError`` naming the batch index and agent of a bad one.

    Only active agents' actions are range-checked (an inactive agent's entry is ignored by the env).
    """
    arr = np.asarray(actions)
    if arr.shape != (n_envs, len(agents)):
        raise ValueError(f"actions must have shape [B, N] = {(n_envs, len(agents))}, got {arr.shape}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"actions must be integers (one Discrete action per agent), got dtype {arr.dtype}")
    bad = (arr < 0) | (arr >= n_actions)
    if active is not None:
        bad &= active
    if bad.any():
        b, i = (int(x) for x in np.argwhere(bad)[0])
        raise ValueError(f"batch index {b}, {agents[i]}: action {arr[b, i]} is outside Discrete({n_actions})")
    return arr.astype(np.int64, copy=False)


class BatchedParallelEnv(abc.ABC):
    """B copies of one PettingZoo parallel game, stepped together with arrays (see the module docstring).

    Subclasses set ``possible_agents``, ``n_envs``, ``observation_space`` and ``action_space`` (one agent's,
    shared by all agents), ``state_space`` (None without a global state) and implement :meth:`reset`,
    :meth:`step`, :attr:`active` and, with a global state, :meth:`state`.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": "disabled"}

    possible_agents: tuple[str, ...]
    n_envs: int
    observation_space: spaces.Box
    action_space: spaces.Discrete
    state_space: spaces.Box | None = None

    @property
    def n_agents(self) -> int:
        return len(self.possible_agents)

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> tuple[NDArray[Any], BatchedInfos]:
        """Reset every copy (copy ``b`` with ``seed + b`` when a seed is given); returns observations and infos."""

    @abc.abstractmethod
    def step(self, actions: Any) -> BatchedStep:
        """Step every copy that is not done with ``actions[b]``; returns observations, rewards, terminations,
        truncations and infos."""

    @property
    @abc.abstractmethod
    def active(self) -> NDArray[np.bool_]:
        """``[B, N]``: the agents that act at the next step (PettingZoo's ``agents`` of each copy)."""

    @property
    def done(self) -> NDArray[np.bool_]:
        """``[B]``: copies whose episode has ended."""
        return ~self.active.any(axis=1)

    def state(self) -> NDArray[Any]:
        """``[B, *state_shape]``: each copy's global state."""
        raise NotImplementedError(f"{type(self).__name__} has no global state")

    def close(self) -> None:  # noqa: B027 - optional hook, like gymnasium.Env.close
        """Release resources (nothing by default)."""


class PettingZooBatch(BatchedParallelEnv):
    """Any PettingZoo parallel game batched by stepping B single envs (the generic, reference path).

    Args:
        env_fns: one factory per copy (all the same game).

    Raises:
        TypeError: the game cannot be batched: agents' spaces are not one shared ``Box`` observation space and
            ``Discrete`` action space, or the copies differ in agents or spaces.
    """

    def __init__(self, env_fns: Sequence[Callable[[], ParallelEnv]]) -> None:
        if not env_fns:
            raise ValueError("PettingZooBatch needs at least one env factory")
        self.envs = [fn() for fn in env_fns]
        first = self.envs[0]
        if not isinstance(first, ParallelEnv):
            raise TypeError(f"env factories must build PettingZoo ParallelEnvs, got {type(first).__name__}")
        self.possible_agents = tuple(first.possible_agents)
        obs_space = first.observation_space(self.possible_agents[0])
        act_space = first.action_space(self.possible_agents[0])
        if not isinstance(obs_space, spaces.Box) or not isinstance(act_space, spaces.Discrete):
            raise TypeError(f"{type(first).__name__} cannot be batched: it needs Box observations and Discrete "
                            f"actions, got {obs_space} and {act_space}")
        if int(act_space.start) != 0:
            raise TypeError(f"{type(first).__name__} cannot be batched: Discrete actions must start at 0")
        for b, env in enumerate(self.envs):
            if tuple(env.possible_agents) != self.possible_agents:
                raise TypeError(f"copy {b} has agents {env.possible_agents}, copy 0 has {self.possible_agents}")
            for a in self.possible_agents:
                if env.observation_space(a) != obs_space or env.action_space(a) != act_space:
                    raise TypeError(f"copy {b}, {a}: every agent needs the spaces {obs_space} and {act_space}")
        self.n_envs = len(self.envs)
        self.observation_space = obs_space
        self.action_space = act_space
        state_space = getattr(first, "state_space", None)
        self.state_space = state_space if isinstance(state_space, spaces.Box) else None
        self._obs = np.zeros((self.n_envs, self.n_agents, *obs_space.shape), dtype=obs_space.dtype)
        self._active = np.zeros((self.n_envs, self.n_agents), dtype=bool)
        self._info_keys: tuple[str, ...] | None = None

    @property
    def active(self) -> NDArray[np.bool_]:
        return self._active.copy()

    def reset(self, seed: int | None = None) -> tuple[NDArray[Any], BatchedInfos]:
        base = check_seed(seed)
        self._obs[:] = 0
        infos: list[Mapping[str, Any]] = []
        for b, env in enumerate(self.envs):
            obs, info = env.reset(seed=None if base is None else base + b)
            self._store(b, obs)
            self._active[b] = [a in env.agents for a in self.possible_agents]
            infos.append(info)
        return self._obs.copy(), self._stack_infos(infos)

    def step(self, actions: Any) -> BatchedStep:
        active = self._active.copy()
        acts = check_batched_actions(actions, self.n_envs, self.possible_agents, int(self.action_space.n), active)
        shape = (self.n_envs, self.n_agents)
        rewards = np.zeros(shape, dtype=np.float64)
        terms = np.zeros(shape, dtype=bool)
        truncs = np.zeros(shape, dtype=bool)
        infos: list[Mapping[str, Any]] = []
        for b, env in enumerate(self.envs):
            if not active[b].any():
                infos.append({})
                continue
            joint = {a: int(acts[b, i]) for i, a in enumerate(self.possible_agents) if active[b, i]}
            obs, rew, term, trunc, info = env.step(joint)
            for i, a in enumerate(self.possible_agents):
                rewards[b, i] = float(rew.get(a, 0.0))
                terms[b, i] = bool(term.get(a, False))
                truncs[b, i] = bool(trunc.get(a, False))
            self._store(b, obs)
            self._active[b] = [a in env.agents for a in self.possible_agents]
            infos.append(info)
        return self._obs.copy(), rewards, terms, truncs, self._stack_infos(infos)

    def state(self) -> NDArray[Any]:
        if self.state_space is None:
            return super().state()
        return np.stack([np.asarray(env.state()) for env in self.envs])

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def _store(self, b: int, obs: Mapping[str, Any]) -> None:
        for i, a in enumerate(self.possible_agents):
            if a in obs:
                self._obs[b, i] = obs[a]

    def _stack_infos(self, infos: Sequence[Mapping[str, Mapping[str, Any]]]) -> BatchedInfos:
        """Numeric info values stacked ``[B, N, ...]`` (0 where an agent has none); other values as objects."""
        keys = sorted({k for info in infos for agent_info in info.values() for k in agent_info})
        out: BatchedInfos = {}
        for key in keys:
            values = [[info.get(a, {}).get(key) for a in self.possible_agents] for info in infos]
            sample = next(v for row in values for v in row if v is not None)
            arr = np.asarray(sample)
            if arr.dtype.kind in "biuf":
                stacked = np.zeros((self.n_envs, self.n_agents, *arr.shape), dtype=arr.dtype)
                for b, row in enumerate(values):
                    for i, v in enumerate(row):
                        if v is not None:
                            stacked[b, i] = v
                out[key] = stacked
            else:
                out[key] = np.asarray(values, dtype=object)
        return out


def batch_of(env_fn: Callable[[], ParallelEnv], n_envs: int) -> PettingZooBatch:
    """``n_envs`` copies of the game ``env_fn`` builds, batched by the generic adapter."""
    return PettingZooBatch([env_fn] * check_positive_int("n_envs", n_envs))
