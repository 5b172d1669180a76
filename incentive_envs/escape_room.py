"""Escape Room ER(N, M): a one-room social dilemma where someone must pull the lever so that others escape.

| Property      | Value                                                                          |
|---------------|--------------------------------------------------------------------------------|
| IDs           | ``incentive_envs/escape_room-v0`` (PettingZoo), ``incentive_envs/EscapeRoom-v0`` |
|               | and ``incentive_envs/EscapeRoomSingleAgent-v0`` (Gymnasium views); contextual:  |
|               | ``incentive_envs/escape_room_contextual-v0``, ``.../EscapeRoomContextual-v0``  |
| Agents        | ``agent_0`` .. ``agent_{N-1}``                                                  |
| Actions       | ``Discrete(3)``: the target position, 0 lever, 1 start, 2 door                 |
| Observations  | ``Box(0, 1, (3N,), float32)``: one-hot own position, then each other agent's   |
|               | one-hot position in increasing index order                                     |
| State         | ``Box(0, 1, (3N,), float32)``: all positions one-hot, in agent index order     |
| Rewards       | +10 for choosing the door while it is open; else 0 for staying, -1 for moving  |
| Infos         | ``position`` (int, after the step) and ``door_open`` (bool, this step; False   |
|               | at reset), plus ``lever`` (int) when contextual: the same keys at reset and at |
|               | every step                                                                     |
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

### Contextual Escape Room
With ``n_levers=L >= 2`` the lever sits at one of L places, drawn uniformly at each reset (after the random
starts, from the same generator) and fixed for the episode. Positions are then the L lever places ``0 .. L-1``,
the start ``L`` and the door ``L+1``; an action is the target position (``Discrete(L+2)``), and only agents
choosing the place where the lever is pull it. Observations and ``state()`` are the one-hot positions over the
L+2 positions, followed by the one-hot lever place (``L`` values): ``Box(0, 1, ((L+2)N + L,), float32)``;
infos carry ``lever``. Moving costs 1 as before, so the optimum is unchanged. ``n_levers=1`` is the game
above, bit for bit. ``incentive_envs/escape_room_contextual-v0`` is this game with ``n_levers=3`` by default.

### Arguments
``pettingzoo.make("parallel", "incentive_envs/escape_room-v0", n_agents=5, min_at_lever=2, max_steps=5,
randomize=False, render_mode=None, n_levers=1)``

- ``n_agents`` (N >= 2) and ``min_at_lever`` (1 <= M < N).
- ``max_steps``: truncation horizon (the paper uses 5). ``max_cycles`` is accepted as an alias so that
  PettingZoo's registry and ``max_cycles_test`` work.
- ``randomize``: if True every agent starts at a uniform random position, else at the start (1, or L).
- ``n_levers``: the number L of places the lever may be at (1: the original game; >= 2: contextual).

Many games at once: ``batched_env(n_envs, **kwargs)`` (same arguments) is a :class:`BatchedEscapeRoom`, B games
stepped as NumPy arrays ``[B, N]`` (:mod:`incentive_envs.vector`); game b reset with seed s equals this env reset
with seed s + b. Games end at different steps; a finished game waits for the next reset.

### Version History
* v0: initial release; the contextual option (``n_levers``) added without changing the ``n_levers=1`` game.
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

__all__ = [
    "CONTEXTUAL_LEVERS",
    "BatchedEscapeRoom",
    "EscapeRoomEnv",
    "batched_env",
    "contextual_batched_env",
    "contextual_env",
    "contextual_parallel_env",
    "env",
    "optimal_welfare",
    "parallel_env",
    "raw_env",
]

# Positions of the original game (n_levers=1); the contextual game has L lever places, then start and door.
LEVER: Final = 0
START: Final = 1
DOOR: Final = 2
N_POSITIONS: Final = 3
DOOR_REWARD: Final = 10.0
MOVE_COST: Final = -1.0
CONTEXTUAL_LEVERS: Final = 3
"""L of the registered contextual game ``escape_room_contextual``."""


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
        n_levers: int = 1,
    ) -> None:
        EzPickle.__init__(self, n_agents, min_at_lever, max_steps, randomize, render_mode, max_cycles, n_levers)
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
        self.n_levers = check_positive_int("n_levers", n_levers, 1)
        self.contextual = self.n_levers >= 2
        self.n_positions = self.n_levers + 2
        self.start, self.door = self.n_levers, self.n_levers + 1

        self.possible_agents = [f"agent_{i}" for i in range(self.n_agents)]
        self.agent_name_mapping = {a: i for i, a in enumerate(self.possible_agents)}
        dim = self.n_positions * self.n_agents + (self.n_levers if self.contextual else 0)
        self._obs_space = spaces.Box(0.0, 1.0, shape=(dim,), dtype=np.float32)
        self.state_space = spaces.Box(0.0, 1.0, shape=(dim,), dtype=np.float32)
        self._act_space = spaces.Discrete(self.n_positions)
        self._act_spaces = [self._act_space] * self.n_agents
        self.np_random, _ = seeding.np_random(None)
        self.agents: list[str] = []
        self._positions = np.full(self.n_agents, self.start, dtype=np.int64)
        self._lever = 0
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
            self._positions = self.np_random.integers(0, self.n_positions, size=self.n_agents).astype(np.int64)
        else:
            self._positions = np.full(self.n_agents, self.start, dtype=np.int64)
        self._lever = int(self.np_random.integers(self.n_levers)) if self.contextual else 0
        self._steps = 0
        self._started = True
        self._last_door_open = False
        obs = self._observations()
        return obs, {a: self._info(i, False) for i, a in enumerate(self.agents)}

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

        door_open = int(np.count_nonzero(acts == self._lever)) >= self.min_at_lever
        rewards_arr = np.where(acts == self._positions, 0.0, MOVE_COST)
        if door_open:
            rewards_arr = np.where(acts == self.door, DOOR_REWARD, rewards_arr)
        self._positions = acts
        self._steps += 1
        self._last_door_open = door_open

        terminated = bool(door_open and np.any(acts == self.door))
        truncated = (not terminated) and self._steps >= self.max_steps
        obs = self._observations()
        rewards = {a: float(rewards_arr[i]) for i, a in enumerate(self.agents)}
        terms = {a: terminated for a in self.agents}
        truncs = {a: truncated for a in self.agents}
        infos = {a: self._info(i, door_open) for i, a in enumerate(self.agents)}
        if terminated or truncated:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    @property
    def lever(self) -> int:
        """Where the lever is this episode (always 0 when not contextual)."""
        return self._lever

    def _info(self, i: int, door_open: bool) -> dict[str, Any]:
        info: dict[str, Any] = {"position": int(self._positions[i]), "door_open": door_open}
        if self.contextual:
            info["lever"] = self._lever
        return info

    def state(self) -> NDArray[np.float32]:
        """All agents' positions, one-hot, in agent index order, then the lever's place when contextual (the
        designer's view)."""
        out = np.zeros((self.n_agents, self.n_positions), dtype=np.float32)
        out[np.arange(self.n_agents), self._positions] = 1.0
        return np.concatenate([out.reshape(-1), self._context()])

    def _context(self) -> NDArray[np.float32]:
        """The one-hot lever place (empty when not contextual)."""
        return (np.arange(self.n_levers) == self._lever).astype(np.float32) if self.contextual else np.zeros(
            0, dtype=np.float32)

    def _observations(self) -> dict[str, NDArray[np.float32]]:
        onehot = np.zeros((self.n_agents, self.n_positions), dtype=np.float32)
        onehot[np.arange(self.n_agents), self._positions] = 1.0
        context = self._context()
        obs = {}
        for i, agent in enumerate(self.possible_agents):
            order = [i, *(j for j in range(self.n_agents) if j != i)]
            obs[agent] = np.concatenate([onehot[order].reshape(-1), context])
        return obs

    def position_name(self, position: int) -> str:
        """``lever``, ``start``, ``door``, or (contextual) ``place<k>`` for a lever place without the lever."""
        if position == self.start:
            return "start"
        if position == self.door:
            return "door"
        return "lever" if position == self._lever else f"place{position}"

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        where = zip(self.possible_agents, self._positions, strict=True)
        pos = ", ".join(f"{a}@{self.position_name(int(p))}" for a, p in where)
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
        env: a single env giving the parameters (N, M, ``max_steps``, ``randomize``, ``n_levers``) and spaces;
            it is not stepped.
        n_envs: number of games B.

    Each game draws its random starts (``randomize=True``) and, contextual, its lever place from its own
    generator, seeded as the single env's ``seeding.np_random``, so game b reset with seed s equals
    ``EscapeRoomEnv`` reset with seed s + b.
    """

    def __init__(self, env: EscapeRoomEnv, n_envs: int) -> None:
        self.n_envs = b = check_positive_int("n_envs", n_envs)
        self.n, self.min_at_lever, self.max_steps, self.randomize = (
            env.n_agents, env.min_at_lever, env.max_steps, env.randomize)
        self.n_levers, self.contextual, self.n_positions = env.n_levers, env.contextual, env.n_positions
        self.start, self.door = env.start, env.door
        self.possible_agents = tuple(env.possible_agents)
        self.observation_space = env.observation_space(self.possible_agents[0])
        self.action_space = env.action_space(self.possible_agents[0])
        self.state_space = env.state_space
        self.rngs = [seeding.np_random(None)[0] for _ in range(b)]
        self._positions = np.full((b, self.n), self.start, dtype=np.int64)
        self._levers = np.zeros(b, dtype=np.int64)
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
        positions, levers = [], []
        for g in self.rngs:  # per game in the single env's order: starts, then the lever place
            positions.append(g.integers(0, self.n_positions, size=self.n) if self.randomize
                             else np.full(self.n, self.start))
            levers.append(int(g.integers(self.n_levers)) if self.contextual else 0)
        self._positions = np.stack(positions).astype(np.int64)
        self._levers = np.asarray(levers, dtype=np.int64)
        self._steps[:] = 0
        self._running[:] = True
        self._started = True
        infos = self._infos(self._running, np.zeros(self.n_envs, dtype=bool))
        return self._observations(self._running), infos

    def step(self, actions: Any) -> BatchedStep:
        acts = self._check_actions(actions)
        running = self._running.copy()
        live = running[:, None]
        door_open = running & ((acts == self._levers[:, None]).sum(axis=1) >= self.min_at_lever)
        at_door = acts == self.door
        rewards = np.where(live & (acts != self._positions), MOVE_COST, 0.0)
        rewards[door_open[:, None] & at_door] = DOOR_REWARD
        self._positions = np.where(live, acts, self._positions)
        self._steps += running
        terminated = door_open & at_door.any(axis=1)
        truncated = running & ~terminated & (self._steps >= self.max_steps)
        self._running = running & ~terminated & ~truncated
        terms, truncs = _per_agent(terminated, self.n), _per_agent(truncated, self.n)
        return self._observations(running), rewards, terms, truncs, self._infos(running, door_open)

    def _infos(self, live: NDArray[np.bool_], door_open: NDArray[np.bool_]) -> BatchedInfos:
        """``position`` (0 in finished games), ``door_open`` and, contextual, ``lever`` (0 in finished games)."""
        infos = {"position": self._positions * live[:, None], "door_open": _per_agent(door_open, self.n)}
        if self.contextual:
            infos["lever"] = _per_agent(self._levers * live, self.n)
        return infos

    def state(self) -> NDArray[np.float32]:
        """``[B, S]``: every game's ``EscapeRoomEnv.state`` (positions one-hot in agent index order, then the
        lever place one-hot when contextual)."""
        return np.concatenate([self._one_hot().reshape(self.n_envs, -1), self._context()], axis=1)

    def _one_hot(self) -> NDArray[np.float32]:
        return (self._positions[..., None] == np.arange(self.n_positions)).astype(np.float32)

    def _context(self) -> NDArray[np.float32]:
        """``[B, L]`` one-hot lever places (``[B, 0]`` when not contextual)."""
        if not self.contextual:
            return np.zeros((self.n_envs, 0), dtype=np.float32)
        return (self._levers[:, None] == np.arange(self.n_levers)).astype(np.float32)

    def _observations(self, shown: NDArray[np.bool_]) -> NDArray[np.float32]:
        """``[B, N, obs]`` observations of the games in ``shown`` (zeros for the others)."""
        positions = self._one_hot()[:, self._views].reshape(self.n_envs, self.n, -1)
        context = np.repeat(self._context()[:, None, :], self.n, axis=1)
        obs = np.concatenate([positions, context], axis=2)
        obs[~shown] = 0.0
        return obs


def _per_agent(values: NDArray[Any], n: int) -> NDArray[Any]:
    """``[B] -> [B, N]``: each game's value repeated for its N agents."""
    return np.repeat(values[:, None], n, axis=1)


def batched_env(n_envs: int, **kwargs: Any) -> BatchedEscapeRoom:
    """``n_envs`` Escape Room games stepped together with arrays (same arguments as :func:`parallel_env`)."""
    return BatchedEscapeRoom(EscapeRoomEnv(**kwargs), n_envs)


def parallel_env(**kwargs: Any) -> EscapeRoomEnv:
    """Escape Room as a PettingZoo ``ParallelEnv``."""
    return EscapeRoomEnv(**kwargs)


def _contextual(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"n_levers": CONTEXTUAL_LEVERS, **kwargs}


def contextual_parallel_env(**kwargs: Any) -> EscapeRoomEnv:
    """Contextual Escape Room (``n_levers=3`` unless given) as a PettingZoo ``ParallelEnv``."""
    return EscapeRoomEnv(**_contextual(kwargs))


def contextual_env(**kwargs: Any) -> AECEnv:
    """Contextual Escape Room as a checked AEC env (see :func:`env`)."""
    return env(**_contextual(kwargs))


def contextual_batched_env(n_envs: int, **kwargs: Any) -> BatchedEscapeRoom:
    """``n_envs`` contextual Escape Room games stepped together (see :func:`batched_env`)."""
    return batched_env(n_envs, **_contextual(kwargs))


def raw_env(**kwargs: Any) -> AECEnv:
    """Escape Room as an AEC env (converted from the parallel implementation)."""
    from incentive_envs._aec import aec_from_parallel

    return aec_from_parallel(parallel_env(**kwargs))


def env(**kwargs: Any) -> AECEnv:
    """Escape Room as an AEC env with order enforcement and action checks."""
    from incentive_envs._aec import checked_aec

    return checked_aec(raw_env(**kwargs))
