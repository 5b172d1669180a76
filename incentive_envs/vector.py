"""Batched multi-agent envs: B copies of a game stepped together with arrays (the vectorized training path).

:class:`BatchedParallelEnv` keeps PettingZoo's vocabulary with a leading batch axis. Arrays are indexed
``[copy, agent, ...]`` with agents in ``possible_agents`` order; row ``b`` holds what copy ``b``'s single env
returns for that call, and zeros where it returns nothing (an agent gone, a copy done):

==================== ============================== ===================================================
what                 shape                          meaning
==================== ============================== ===================================================
observations         ``[B, N, *obs_shape]``         each agent's observation (zeros for an agent gone)
actions              ``[B, N]`` integer             one Discrete action per agent (ignored where not active)
rewards              ``[B, N]`` float64             the step's rewards (0 where the agent did not act)
terminations         ``[B, N]`` bool                as PettingZoo's, per agent (False once done)
truncations          ``[B, N]`` bool                as PettingZoo's, per agent (False once done)
active               ``[B, N]`` bool                the agent acts at the next step (PettingZoo ``agents``)
infos                ``{key: [B, N, ...]}``         each numeric info key, stacked (0 where absent)
state                ``[B, *state_shape]``          ``state()`` of each copy, when the game has one
==================== ============================== ===================================================

Actions are checked by :func:`check_batched_actions`: a wrong shape, a dtype other than integers (bools and
floats included) or an active agent's action out of its range raises ``ValueError`` naming the batch index and
the agent. Agents share one ``Discrete`` action space, except in native batches of games whose agents have
different numbers of actions (normal-form matrix games: :attr:`BatchedParallelEnv.action_counts`).

Seeding: ``reset(seed=s)`` resets copy ``b`` exactly as the single env's ``reset(seed=s + b)``; ``reset()``
without a seed continues each copy's own random stream, as the single env's does. So B copies equal B single
envs seeded ``s, s + 1, ...``, step by step (the contract the tests check for every game).

Episodes end per copy (Escape Room ends early in some copies). Autoreset is disabled
(``metadata["autoreset_mode"] == "disabled"``, Gymnasium's ``AutoresetMode.DISABLED``): a copy whose agents are
all done stays done, its actions are ignored (not even range-checked) and it returns zeros and no terminations,
until the next ``reset()`` resets every copy together — the designer's rollouts collect whole episodes in
lockstep. :attr:`BatchedParallelEnv.done` says which copies are done.

:func:`batch_of` batches any PettingZoo parallel game whose agents share a ``Box`` observation space and a
``Discrete`` action space (third-party games included) by stepping B single envs, and refuses any other game at
construction with the reason (``TypeError``). Games with a native batched engine provide their own subclass
(Escape Room, the matrix games, Cleanup/Harvest, Gather-Trade-Build), built from one single env of the game
(its parameters, validation and spaces; those whose copies all end together derive from
:class:`LockstepBatchedEnv`); ``incentive_envs.make_batched(name, n_envs, **kwargs)`` returns the
native batch when the game has one, else ``batch_of``."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from pettingzoo import ParallelEnv

from incentive_envs.validation import check_positive_int, check_seed

__all__ = ["BatchedParallelEnv", "LockstepBatchedEnv", "PettingZooBatch", "batch_of", "check_batched_actions"]

BatchedInfos = dict[str, NDArray[Any]]
BatchedStep = tuple[NDArray[Any], NDArray[np.float64], NDArray[np.bool_], NDArray[np.bool_], BatchedInfos]


def check_batched_actions(actions: Any, n_envs: int, agents: Sequence[str], n_actions: int | Sequence[int],
                          active: NDArray[np.bool_] | None = None) -> NDArray[np.int64]:
    """``actions`` as an int64 ``[B, N]`` array; ``ValueError`` naming the batch index and agent of a bad one.

    ``n_actions`` is every agent's number of actions, or one count per agent (agent ``i`` acts in
    ``Discrete(n_actions[i])``). Shape and dtype are checked everywhere (bools and floats are refused, even
    integral ones); ranges only where ``active`` (an inactive agent's entry is ignored by the env).
    """
    try:
        arr = np.asarray(actions)
    except ValueError as err:  # ragged nested sequences
        raise ValueError(f"actions must be a [B, N] integer array (one row per batch index, one column per agent "
                         f"{list(agents)}): {err}") from None
    if arr.shape != (n_envs, len(agents)):
        raise ValueError(_shape_error(arr.shape, n_envs, agents))
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        b, i = _first_non_integer(arr)
        value = arr[b, i].item() if isinstance(arr[b, i], np.generic) else arr[b, i]
        raise ValueError(f"batch index {b}, {agents[i]}: action {value!r} is not an integer (actions must be an "
                         f"integer array, one Discrete action per agent; got dtype {arr.dtype})")
    counts = np.asarray(n_actions, dtype=np.int64)  # a scalar or one count per agent (column)
    bad = (arr < 0) | (arr >= counts)
    if active is not None:
        bad &= active
    if bad.any():
        b, i = (int(x) for x in np.argwhere(bad)[0])
        limit = counts[i] if counts.ndim else counts
        raise ValueError(f"batch index {b}, {agents[i]}: action {arr[b, i]} is outside Discrete({limit})")
    return arr.astype(np.int64, copy=False)


def _shape_error(shape: tuple[int, ...], n_envs: int, agents: Sequence[str]) -> str:
    want = f"[B, N] = ({n_envs}, {len(agents)}): one row per batch index, one column per agent {list(agents)}"
    if len(shape) != 2:
        return f"actions must have shape {want}; got shape {shape}"
    rows, cols = shape
    if rows != n_envs:
        where = f"no actions for batch index {rows}" if rows < n_envs else f"batch index {n_envs} does not exist"
    else:
        where = f"no action for {agents[cols]}" if cols < len(agents) else f"column {len(agents)} is no agent"
    return f"actions must have shape {want}; got shape {shape} ({where})"


def _first_non_integer(arr: NDArray[Any]) -> tuple[int, int]:
    """``(b, i)`` of the first entry of a non-integer array that is not a whole number (else the first entry)."""
    if arr.dtype.kind == "f":
        bad = np.argwhere(~np.isfinite(arr) | (arr != np.round(arr)))
    elif arr.dtype == object:
        bad = np.argwhere(np.vectorize(lambda v: isinstance(v, bool) or not isinstance(v, (int, np.integer)),
                                       otypes=[bool])(arr))
    else:
        bad = np.zeros((0, 2), dtype=np.int64)
    return (int(bad[0, 0]), int(bad[0, 1])) if len(bad) else (0, 0)


class BatchedParallelEnv(abc.ABC):
    """B copies of one PettingZoo parallel game, stepped together with arrays (see the module docstring).

    Subclasses set ``possible_agents``, ``n_envs``, ``observation_space`` and ``action_space`` (one agent's,
    shared by all agents; a game whose agents have different numbers of actions also overrides
    :attr:`action_counts`), ``state_space`` (None without a global state) and implement :meth:`reset`,
    :meth:`step`, :attr:`active` and, with a global state, :meth:`state`. :meth:`reset` sets ``_started``.
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": "disabled"}

    possible_agents: tuple[str, ...]
    n_envs: int
    observation_space: spaces.Box
    action_space: spaces.Discrete
    state_space: spaces.Box | None = None
    _started: bool = False

    @property
    def n_agents(self) -> int:
        return len(self.possible_agents)

    @property
    def action_counts(self) -> tuple[int, ...]:
        """Each agent's number of actions: agent ``i`` acts in ``Discrete(action_counts[i])``."""
        return (int(self.action_space.n),) * self.n_agents

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
        return np.logical_not(self.active.any(axis=1))

    def state(self) -> NDArray[Any]:
        """``[B, *state_shape]``: each copy's global state."""
        raise NotImplementedError(f"{type(self).__name__} has no global state")

    def close(self) -> None:  # noqa: B027 - optional hook, like gymnasium.Env.close
        """Release resources (nothing by default)."""

    # ------------------------------------------------------------------ helpers for subclasses
    def _check_actions(self, actions: Any) -> NDArray[np.int64]:
        """:func:`check_batched_actions` against this batch (ranges checked for active agents only)."""
        if not self._started:
            raise RuntimeError("step() called before reset(); call reset() first")
        return check_batched_actions(actions, self.n_envs, self.possible_agents, self.action_counts, self.active)

    def _blank_step(self) -> BatchedStep:
        """Zero observations and rewards, no terminations or truncations, no infos: what done copies return."""
        shape = (self.n_envs, self.n_agents)
        obs = np.zeros((*shape, *self.observation_space.shape), dtype=self.observation_space.dtype)
        return obs, np.zeros(shape), np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool), {}


class LockstepBatchedEnv(BatchedParallelEnv):
    """A native batch whose copies start and end together (fixed-length episodes: the matrix games,
    Cleanup/Harvest, Gather-Trade-Build): every agent of every copy is active while ``_running``."""

    _running: bool = False

    @property
    def active(self) -> NDArray[np.bool_]:
        return np.full((self.n_envs, self.n_agents), self._running)


class PettingZooBatch(BatchedParallelEnv):
    """Any PettingZoo parallel game batched by stepping B single envs (the generic, reference path).

    Args:
        env_fns: one factory per copy (all the same game).

    Raises:
        TypeError: the game cannot be batched: agents' spaces are not one shared ``Box`` observation space and
            ``Discrete`` action space (starting at 0), or the copies differ in agents or spaces.
    """

    def __init__(self, env_fns: Sequence[Callable[[], ParallelEnv]]) -> None:
        if not env_fns:
            raise ValueError("PettingZooBatch needs at least one env factory")
        self.envs = [fn() for fn in env_fns]
        first = self.envs[0]
        if not isinstance(first, ParallelEnv):
            raise TypeError(f"env factories must build PettingZoo ParallelEnvs, got {type(first).__name__}")
        name = type(first).__name__
        self.possible_agents = tuple(first.possible_agents)
        obs_space = first.observation_space(self.possible_agents[0])
        act_space = first.action_space(self.possible_agents[0])
        if not isinstance(obs_space, spaces.Box) or not isinstance(act_space, spaces.Discrete):
            raise TypeError(f"{name} cannot be batched: it needs Box observations and Discrete actions, got "
                            f"{obs_space} and {act_space}")
        if int(act_space.start) != 0:
            raise TypeError(f"{name} cannot be batched: Discrete actions must start at 0, got {act_space}")
        for b, env in enumerate(self.envs):
            if tuple(env.possible_agents) != self.possible_agents:
                raise TypeError(f"{name} cannot be batched: copy {b} has agents {env.possible_agents}, copy 0 has "
                                f"{list(self.possible_agents)}")
            for a in self.possible_agents:
                if env.observation_space(a) != obs_space or env.action_space(a) != act_space:
                    raise TypeError(f"{name} cannot be batched: copy {b}, {a} has the spaces "
                                    f"{env.observation_space(a)} and {env.action_space(a)}; every agent needs "
                                    f"{obs_space} and {act_space}")
        self.n_envs = len(self.envs)
        self.observation_space = obs_space
        self.action_space = act_space
        state_space = getattr(first, "state_space", None)
        self.state_space = state_space if isinstance(state_space, spaces.Box) else None
        self._active = np.zeros((self.n_envs, self.n_agents), dtype=bool)

    @property
    def active(self) -> NDArray[np.bool_]:
        return self._active.copy()

    def reset(self, seed: int | None = None) -> tuple[NDArray[Any], BatchedInfos]:
        base = check_seed(seed)
        obs = self._blank_step()[0]
        infos: list[Mapping[str, Any]] = []
        for b, env in enumerate(self.envs):
            obs_b, info = env.reset(seed=None if base is None else base + b)
            self._store(obs, b, obs_b)
            self._active[b] = [a in env.agents for a in self.possible_agents]
            infos.append(info)
        self._started = True
        return obs, self._stack_infos(infos)

    def step(self, actions: Any) -> BatchedStep:
        active = self._active.copy()
        acts = self._check_actions(actions)
        obs, rewards, terms, truncs, _ = self._blank_step()
        infos: list[Mapping[str, Any]] = []
        for b, env in enumerate(self.envs):
            if not active[b].any():
                infos.append({})
                continue
            joint = {a: int(acts[b, i]) for i, a in enumerate(self.possible_agents) if active[b, i]}
            obs_b, rew, term, trunc, info = env.step(joint)
            for i, a in enumerate(self.possible_agents):
                rewards[b, i] = float(rew.get(a, 0.0))
                terms[b, i] = bool(term.get(a, False))
                truncs[b, i] = bool(trunc.get(a, False))
            self._store(obs, b, obs_b)
            self._active[b] = [a in env.agents for a in self.possible_agents]
            infos.append(info)
        return obs, rewards, terms, truncs, self._stack_infos(infos)

    def state(self) -> NDArray[Any]:
        if self.state_space is None:
            return super().state()
        return np.stack([np.asarray(env.state()) for env in self.envs])

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def _store(self, out: NDArray[Any], b: int, obs: Mapping[str, Any]) -> None:
        for i, a in enumerate(self.possible_agents):
            if a in obs:
                out[b, i] = obs[a]

    def _stack_infos(self, infos: Sequence[Mapping[str, Mapping[str, Any]]]) -> BatchedInfos:
        """Numeric info values stacked ``[B, N, ...]`` (0 where an agent has none); other values in a ``[B, N]``
        object array (None where an agent has none)."""
        keys = sorted({k for info in infos for agent_info in info.values() for k in agent_info})
        out: BatchedInfos = {}
        for key in keys:
            values = [[info.get(a, {}).get(key) for a in self.possible_agents] for info in infos]
            given = [v for row in values for v in row if v is not None]
            try:
                sample = np.asarray(given)  # one dtype and shape for all values, or an error / object array
            except ValueError:
                sample = np.asarray(given, dtype=object)
            if sample.dtype.kind in "biuf":
                stacked = np.zeros((self.n_envs, self.n_agents, *sample.shape[1:]), dtype=sample.dtype)
            else:
                stacked = np.full((self.n_envs, self.n_agents), None, dtype=object)
            for b, row in enumerate(values):
                for i, v in enumerate(row):
                    if v is not None:
                        stacked[b, i] = v
            out[key] = stacked
        return out


def batch_of(env_fn: Callable[[], ParallelEnv], n_envs: int) -> PettingZooBatch:
    """``n_envs`` copies of the game ``env_fn`` builds, batched by the generic adapter."""
    return PettingZooBatch([env_fn] * check_positive_int("n_envs", n_envs))
