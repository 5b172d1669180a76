"""Escape Room ER(N, M): a one-room social dilemma where someone must pull the lever so that others escape.

| Property      | Value                                                                          |
|---------------|--------------------------------------------------------------------------------|
| IDs           | ``incentive_envs/escape_room-v0`` (PettingZoo), ``incentive_envs/EscapeRoom-v0`` |
|               | and ``incentive_envs/EscapeRoomSingleAgent-v0`` (Gymnasium views)              |
| Agents        | ``agent_0`` .. ``agent_{N-1}``                                                  |
| Actions       | ``Discrete(3)``: the target position, 0 lever, 1 start, 2 door                 |
| Observations  | ``Box(0, 1, (3N,), float32)``: one-hot own position, then each other agent's   |
|               | one-hot position in increasing index order                                     |
| State         | ``Box(0, 1, (3N,), float32)``: all positions one-hot, in agent index order     |
| Rewards       | +10 for choosing the door while it is open; else 0 for staying, -1 for moving  |
| Infos         | ``position`` (int, after the step) and ``door_open`` (bool, this step; False   |
|               | at reset): the same keys at reset and at every step                            |
| Episode end   | terminated when the door is open and someone reaches it; truncated after       |
|               | ``max_steps`` steps                                                           |

Rules (Yang et al. 2022, identical to LIO's ``room_symmetric``): every agent picks a target position and
teleports there at the end of the step. The door is open this step iff at least ``min_at_lever`` agents choose
the lever (action 0). Rewards are computed from the *pre-move* position ``p_i``: +10 if the door is open and
``a_i == 2`` (even when already at the door), otherwise 0 if ``a_i == p_i`` and -1 if the agent moved. The
episode terminates when the door is open and some agent's new position is the door.

The social optimum is reached in one step: M agents go to the lever (-1 each) and N - M go to the door (+10
each), so the best social welfare is ``optimal_welfare(N, M) = 10 (N - M) - M`` (28 for ER(5, 2), 9 for
ER(2, 1)).

### Arguments
``pettingzoo.make("parallel", "incentive_envs/escape_room-v0", n_agents=5, min_at_lever=2, max_steps=5,
randomize=False, render_mode=None)``

- ``n_agents`` (N >= 2) and ``min_at_lever`` (1 <= M < N).
- ``max_steps``: truncation horizon (the paper uses 5). ``max_cycles`` is accepted as an alias so that
  PettingZoo's registry and ``max_cycles_test`` work.
- ``randomize``: if True every agent starts at a uniform random position, else at the start (1).

Many games at once: ``batched_env(n_envs, **kwargs)`` (same arguments) is a :class:`BatchedEscapeRoom`, B games
stepped as NumPy arrays ``[B, N]`` (:mod:`incentive_envs.vector`); game b reset with seed s equals this env reset
with seed s + b. Games end at different steps; a finished game waits for the next reset.

### Version History
* v0: initial release.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Final

import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle, seeding
from numpy.typing import NDArray
from pettingzoo import AECEnv, ParallelEnv

from incentive_envs.validation import check_positive_int, check_seed, coerce_joint_discrete, require_started
from incentive_envs.vector import BatchedInfos, BatchedParallelEnv, BatchedStep

__all__ = ["BatchedEscapeRoom", "EscapeRoomEnv", "batched_env", "env", "optimal_welfare", "parallel_env", "raw_env"]

LEVER: Final = 0
START: Final = 1
DOOR: Final = 2
N_POSITIONS: Final = 3
DOOR_REWARD: Final = 10.0
MOVE_COST: Final = -1.0
_NAMES: Final = ("lever", "start", "door")


def optimal_welfare(n_agents: int, min_at_lever: int) -> float:
    """Best undiscounted social welfare of ER(N, M): ``10 (N - M) - M``, reached in a single step."""
    n = check_positive_int("n_agents", n_agents, 2)
    m = check_positive_int("min_at_lever", min_at_lever, 1)
    if m >= n:
        raise ValueError(f"min_at_lever must be < n_agents, got M={m}, N={n}")
    return DOOR_REWARD * (n - m) + MOVE_COST * m


class EscapeRoomEnv(ParallelEnv[str, NDArray[np.float32], int], EzPickle):
    """Parallel Escape Room ER(N, M); see the module docstring for the rules."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "escape_room_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
        "render_fps": 1,
    }

    def __init__(
        self,
        n_agents: int = 5,
        min_at_lever: int = 2,
        max_steps: int = 5,
        randomize: bool = False,
        render_mode: str | None = None,
        max_cycles: int | None = None,
    ) -> None:
        EzPickle.__init__(self, n_agents, min_at_lever, max_steps, randomize, render_mode, max_cycles)
        self.n_agents = check_positive_int("n_agents", n_agents, 2)
        self.min_at_lever = check_positive_int("min_at_lever", min_at_lever, 1)
        if self.min_at_lever >= self.n_agents:
            raise ValueError(f"min_at_lever must be < n_agents, got M={min_at_lever}, N={n_agents}")
        if max_cycles is not None:
            max_steps = max_cycles
        self.max_steps = check_positive_int("max_steps", max_steps, 1)
        if not isinstance(randomize, (bool, np.bool_)):
            raise ValueError(f"randomize must be a bool, got {randomize!r}")
        self.randomize = bool(randomize)
        if render_mode is not None and render_mode not in ("ansi", "human"):
            raise ValueError(f"render_mode must be None, 'ansi' or 'human', got {render_mode!r}")
        self.render_mode = render_mode

        self.possible_agents = [f"agent_{i}" for i in range(self.n_agents)]
        self.agent_name_mapping = {a: i for i, a in enumerate(self.possible_agents)}
        dim = N_POSITIONS * self.n_agents
        self._obs_space = spaces.Box(0.0, 1.0, shape=(dim,), dtype=np.float32)
        self.state_space = spaces.Box(0.0, 1.0, shape=(dim,), dtype=np.float32)
        self._act_space = spaces.Discrete(N_POSITIONS)
        self._act_spaces = [self._act_space] * self.n_agents
        self.np_random, _ = seeding.np_random(None)
        self.agents: list[str] = []
        self._positions = np.full(self.n_agents, START, dtype=np.int64)
        self._steps = 0
        self._started = False
        self._last_door_open = False

    @functools.cache
    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    @functools.cache
    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[np.float32]], dict[str, dict[str, Any]]]:
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        self.agents = list(self.possible_agents)
        if self.randomize:
            self._positions = self.np_random.integers(0, N_POSITIONS, size=self.n_agents).astype(np.int64)
        else:
            self._positions = np.full(self.n_agents, START, dtype=np.int64)
        self._steps = 0
        self._started = True
        self._last_door_open = False
        obs = self._observations()
        return obs, {a: {"position": int(self._positions[i]), "door_open": False} for i, a in enumerate(self.agents)}

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, NDArray[np.float32]],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        if self._started and not self.agents and not actions:
            return {}, {}, {}, {}, {}  # PettingZoo convention: step({}) on a finished env is a no-op
        require_started(self._started, self.agents)
        acts = np.array(coerce_joint_discrete(actions, self.agents, self._act_spaces), dtype=np.int64)

        door_open = int(np.count_nonzero(acts == LEVER)) >= self.min_at_lever
        rewards_arr = np.where(acts == self._positions, 0.0, MOVE_COST)
        if door_open:
            rewards_arr = np.where(acts == DOOR, DOOR_REWARD, rewards_arr)
        self._positions = acts
        self._steps += 1
        self._last_door_open = door_open

        terminated = bool(door_open and np.any(acts == DOOR))
        truncated = (not terminated) and self._steps >= self.max_steps
        obs = self._observations()
        rewards = {a: float(rewards_arr[i]) for i, a in enumerate(self.agents)}
        terms = {a: terminated for a in self.agents}
        truncs = {a: truncated for a in self.agents}
        infos = {
            a: {"position": int(self._positions[i]), "door_open": door_open}
            for i, a in enumerate(self.agents)
        }
        if terminated or truncated:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def state(self) -> NDArray[np.float32]:
        """All agents' positions, one-hot, in agent index order (the designer's view)."""
        out = np.zeros((self.n_agents, N_POSITIONS), dtype=np.float32)
        out[np.arange(self.n_agents), self._positions] = 1.0
        return out.reshape(-1)

    def _observations(self) -> dict[str, NDArray[np.float32]]:
        onehot = np.zeros((self.n_agents, N_POSITIONS), dtype=np.float32)
        onehot[np.arange(self.n_agents), self._positions] = 1.0
        obs = {}
        for i, agent in enumerate(self.possible_agents):
            order = [i, *(j for j in range(self.n_agents) if j != i)]
            obs[agent] = onehot[order].reshape(-1)
        return obs

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        where = zip(self.possible_agents, self._positions, strict=True)
        pos = ", ".join(f"{a}@{_NAMES[p]}" for a, p in where)
        text = f"step {self._steps}: {pos}; door {'open' if self._last_door_open else 'closed'}"
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass


class BatchedEscapeRoom(BatchedParallelEnv):
    """B Escape Room games stepped together as NumPy arrays (no per-game Python loop in :meth:`step`).

    Args:
        env: a single env giving the parameters (N, M, ``max_steps``, ``randomize``) and spaces; it is not
            stepped.
        n_envs: number of games B.

    Each game draws its random starts (``randomize=True``) from its own generator, seeded as the single env's
    ``seeding.np_random``, so game b reset with seed s equals ``EscapeRoomEnv`` reset with seed s + b.
    """

    def __init__(self, env: EscapeRoomEnv, n_envs: int) -> None:
        self.n_envs = b = check_positive_int("n_envs", n_envs)
        self.n, self.min_at_lever, self.max_steps, self.randomize = (
            env.n_agents, env.min_at_lever, env.max_steps, env.randomize)
        self.possible_agents = tuple(env.possible_agents)
        self.observation_space = env.observation_space(self.possible_agents[0])
        self.action_space = env.action_space(self.possible_agents[0])
        self.state_space = env.state_space
        self.rngs = [seeding.np_random(None)[0] for _ in range(b)]
        self._positions = np.full((b, self.n), START, dtype=np.int64)
        self._steps = np.zeros(b, dtype=np.int64)
        self._running = np.zeros(b, dtype=bool)
        # Row i lists the agents in agent i's observation order: itself, then the others in index order.
        self._views = np.array([[i, *(j for j in range(self.n) if j != i)] for i in range(self.n)])

    @property
    def active(self) -> NDArray[np.bool_]:
        return np.repeat(self._running[:, None], self.n, axis=1)

    def reset(self, seed: int | None = None) -> tuple[NDArray[np.float32], BatchedInfos]:
        base = check_seed(seed)
        if base is not None:
            self.rngs = [seeding.np_random(base + b)[0] for b in range(self.n_envs)]
        if self.randomize:
            self._positions = np.stack([g.integers(0, N_POSITIONS, size=self.n) for g in self.rngs]).astype(np.int64)
        else:
            self._positions = np.full((self.n_envs, self.n), START, dtype=np.int64)
        self._steps[:] = 0
        self._running[:] = True
        self._started = True
        infos = {"position": self._positions.copy(), "door_open": np.zeros((self.n_envs, self.n), dtype=bool)}
        return self._observations(self._running), infos

    def step(self, actions: Any) -> BatchedStep:
        acts = self._check_actions(actions)
        running = self._running.copy()
        live = running[:, None]
        door_open = running & ((acts == LEVER).sum(axis=1) >= self.min_at_lever)
        at_door = acts == DOOR
        rewards = np.where(live & (acts != self._positions), MOVE_COST, 0.0)
        rewards[door_open[:, None] & at_door] = DOOR_REWARD
        self._positions = np.where(live, acts, self._positions)
        self._steps += running
        terminated = door_open & at_door.any(axis=1)
        truncated = running & ~terminated & (self._steps >= self.max_steps)
        self._running = running & ~terminated & ~truncated
        per_agent = functools.partial(np.repeat, repeats=self.n, axis=1)  # [B, 1] -> [B, N]
        infos = {"position": self._positions * live, "door_open": per_agent(door_open[:, None])}
        terms, truncs = per_agent(terminated[:, None]), per_agent(truncated[:, None])
        return self._observations(running), rewards, terms, truncs, infos

    def state(self) -> NDArray[np.float32]:
        """``[B, 3N]``: every game's positions one-hot, in agent index order (``EscapeRoomEnv.state``)."""
        return self._one_hot().reshape(self.n_envs, -1)

    def _one_hot(self) -> NDArray[np.float32]:
        return (self._positions[..., None] == np.arange(N_POSITIONS)).astype(np.float32)

    def _observations(self, shown: NDArray[np.bool_]) -> NDArray[np.float32]:
        """``[B, N, 3N]`` observations of the games in ``shown`` (zeros for the others)."""
        obs = self._one_hot()[:, self._views].reshape(self.n_envs, self.n, -1)
        obs[~shown] = 0.0
        return obs


def batched_env(n_envs: int, **kwargs: Any) -> BatchedEscapeRoom:
    """``n_envs`` Escape Room games stepped together with arrays (same arguments as :func:`parallel_env`)."""
    return BatchedEscapeRoom(EscapeRoomEnv(**kwargs), n_envs)


def parallel_env(**kwargs: Any) -> EscapeRoomEnv:
    """Escape Room as a PettingZoo ``ParallelEnv``."""
    return EscapeRoomEnv(**kwargs)


def raw_env(**kwargs: Any) -> AECEnv:
    """Escape Room as an AEC env (converted from the parallel implementation)."""
    from incentive_envs._aec import aec_from_parallel

    return aec_from_parallel(parallel_env(**kwargs))


def env(**kwargs: Any) -> AECEnv:
    """Escape Room as an AEC env with order enforcement and action checks."""
    from incentive_envs._aec import checked_aec

    return checked_aec(raw_env(**kwargs))
