"""Iterated matrix games: any N-player normal-form game, or a symmetric game given by a compact table.

| Property      | Value                                                                            |
|---------------|----------------------------------------------------------------------------------|
| IDs           | ``incentive_envs/matrix_game-v0`` (PettingZoo), ``incentive_envs/MatrixGame-v0`` |
|               | and ``incentive_envs/MatrixGameSingleAgent-v0`` (Gymnasium views)                |
| Agents        | ``player_0`` .. ``player_{N-1}``                                                  |
| Actions       | ``Discrete(k_i)`` for player ``i``                                               |
| Observations  | ``Box(0, 1, (sum_j (k_j + 1),), float32)``: one-hot last action of the player    |
|               | itself, then of each other player in increasing index order; each block has a    |
|               | last slot meaning "no previous round"                                            |
| State         | the same encoding in player index order (player 0's viewpoint)                   |
| Rewards       | the stage game's payoff for the joint action of this round                       |
| Episode end   | truncated after ``max_cycles`` rounds; never terminated                          |

The stage game is a :class:`MatrixGame`, in one of two forms:

- **normal form** (``MatrixGame(payoffs)``): ``payoffs[a_0][a_1]...[a_{N-1}][i]`` is player ``i``'s payoff,
  so the shape is ``(k_0, ..., k_{N-1}, N)``. For two players this is the bimatrix
  ``payoffs[a0][a1] -> (r0, r1)``.
- **symmetric** (``MatrixGame(payoffs, symmetric=True)``): every player has the same ``k`` actions and a
  payoff that depends only on its own action and on how many *other* players chose each action.
  ``payoffs[a][n_1]...[n_{k-1}]`` is the payoff of a player choosing ``a`` when ``n_j`` others choose action
  ``j`` (the remaining others choose action 0), so the shape is ``(k, N, ..., N)`` with ``k - 1`` count axes.
  Entries with ``n_1 + ... + n_{k-1} > N - 1`` never occur but must still be finite.
  ``MatrixGame.from_symmetric_function(fn, n_agents, n_actions)`` tabulates ``fn(own_action, counts)``.

Tables must be finite and of the right shape (else ``ValueError``). Presets: ``MatrixGame.symmetric_2x2(R, S,
T, P)`` (action 0 is the cooperative one), ``MatrixGame.public_goods(n_agents, multiplier)``; the prisoner's
dilemma, stag hunt and chicken modules (``ipd``, ``stag_hunt``, ``chicken``) are this env with fixed tables.

Iterated-game boundary semantics: one ``step`` is one round of the stage game. The episode is truncated after
exactly ``max_cycles`` rounds (the last round's step returns ``truncated=True`` for every player) and is never
terminated. The first observation of an episode has every player's "no previous round" slot set, so it is
never all zeros. Observations carry only the last round (memory-one), as in LOLA's IPD.

### Arguments
``pettingzoo.make("parallel", "incentive_envs/matrix_game-v0", game=None, max_cycles=100, render_mode=None)``

- ``game``: the stage game (default: ``MatrixGame.public_goods(3, 1.5)``, a 3-player public-goods game).
- ``max_cycles``: number of rounds per episode.
- ``render_mode``: ``"ansi"`` (returns a string) or ``"human"`` (prints it).

### Version History
* v0: initial release.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle, seeding
from numpy.typing import ArrayLike, NDArray
from pettingzoo import AECEnv, ParallelEnv

from incentive_envs._aec import aec_from_parallel, checked_aec
from incentive_envs.validation import check_positive_int, coerce_joint_discrete, require_started

__all__ = ["MatrixGame", "MatrixGameEnv", "batched_env", "env", "parallel_env", "raw_env"]

DEFAULT_MAX_CYCLES: Final = 100
DEFAULT_PUBLIC_GOODS_AGENTS: Final = 3
DEFAULT_PUBLIC_GOODS_MULTIPLIER: Final = 1.5


def _finite_table(payoffs: ArrayLike) -> NDArray[np.float64]:
    """``payoffs`` as a read-only float64 array, or ``ValueError`` if it is not numeric or not finite."""
    try:
        table = np.array(payoffs, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"payoffs must be a numeric array, got {payoffs!r} ({err})") from None
    bad = np.argwhere(~np.isfinite(table))
    if len(bad):
        index = tuple(int(i) for i in bad[0])
        raise ValueError(
            f"payoffs must be finite; {len(bad)} entries are not, e.g. payoffs{list(index)} = {table[index]}"
        )
    table.setflags(write=False)
    return table


@dataclass(frozen=True, eq=False, init=False)
class MatrixGame:
    """A stage game: payoff table, its form and the action names; validated on construction.

    Args:
        payoffs: the payoff table (see the module docstring for both forms): an array or nested sequences,
            stored as a read-only float64 array.
        symmetric: whether ``payoffs`` is the compact symmetric form.
        action_names: one name per action (all players must then have the same number of actions);
            default ``"0"``, ``"1"``, ...
        name: short identifier, used in the env's ``metadata["name"]`` (``"<name>_v0"``).
    """

    payoffs: NDArray[np.float64]
    symmetric: bool
    action_names: tuple[str, ...] | None
    name: str
    n_agents: int = field(init=False)
    n_actions: tuple[int, ...] = field(init=False)

    def __init__(
        self,
        payoffs: ArrayLike,
        symmetric: bool = False,
        action_names: Sequence[str] | None = None,
        name: str = "matrix_game",
    ) -> None:
        # A hand-written __init__ (the dataclass keeps repr and frozenness): it takes any array-like table.
        table = _finite_table(payoffs)
        if not isinstance(symmetric, (bool, np.bool_)):
            raise ValueError(f"symmetric must be a bool, got {symmetric!r}")
        if symmetric:
            k = table.shape[0] if table.ndim else 0
            if table.ndim < 2 or table.ndim != k or len(set(table.shape[1:])) != 1 or table.shape[1] < 2:
                raise ValueError(
                    "a symmetric table for k >= 2 actions and N >= 2 players has shape (k, N, ..., N) with "
                    f"k - 1 count axes; got shape {table.shape}"
                )
            n_agents, n_actions = table.shape[1], (k,) * table.shape[1]
        else:
            n_agents = table.ndim - 1
            if table.ndim < 3 or table.shape[-1] != n_agents or min(table.shape[:-1]) < 2:
                raise ValueError(
                    "a normal-form table for N >= 2 players with k_i >= 2 actions each has shape "
                    f"(k_0, ..., k_(N-1), N); got shape {table.shape} (pass symmetric=True for the compact "
                    "symmetric form)"
                )
            n_actions = tuple(int(k) for k in table.shape[:-1])
        names = None if action_names is None else tuple(action_names)
        if names is not None:
            shared = len(set(n_actions)) == 1 and len(names) == n_actions[0]
            if not shared or not all(isinstance(n, str) for n in names):
                raise ValueError(
                    f"action_names must be {n_actions[0]} strings shared by all players (actions per player: "
                    f"{n_actions}); got {action_names!r}"
                )
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name must be a Python identifier, got {name!r}")
        object.__setattr__(self, "payoffs", table)
        object.__setattr__(self, "symmetric", bool(symmetric))
        object.__setattr__(self, "action_names", names)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "n_agents", int(n_agents))
        object.__setattr__(self, "n_actions", n_actions)

    @classmethod
    def symmetric_2x2(
        cls,
        reward: float,
        sucker: float,
        temptation: float,
        punishment: float,
        *,
        action_names: tuple[str, str] = ("cooperate", "defect"),
        name: str = "matrix_game",
    ) -> MatrixGame:
        """Two-player symmetric game in the (R, S, T, P) convention; action 0 cooperates, 1 defects.

        ``payoffs[C][C] = (R, R)``, ``[C][D] = (S, T)``, ``[D][C] = (T, S)``, ``[D][D] = (P, P)``.
        """
        r, s, t, p = reward, sucker, temptation, punishment
        return cls((((r, r), (s, t)), ((t, s), (p, p))), action_names=action_names, name=name)

    @classmethod
    def public_goods(
        cls,
        n_agents: int = DEFAULT_PUBLIC_GOODS_AGENTS,
        multiplier: float = DEFAULT_PUBLIC_GOODS_MULTIPLIER,
    ) -> MatrixGame:
        """Linear public-goods game: action 0 contributes 1 to a pot, multiplied and shared by all N players.

        A contributor gets ``multiplier * contributors / N - 1``, a free rider
        ``multiplier * contributors / N``.
        For ``1 < multiplier < N`` free riding dominates, yet everyone contributing beats nobody contributing.
        """
        n = check_positive_int("n_agents", n_agents, 2)
        m = float(multiplier)
        if not np.isfinite(m) or m <= 0:
            raise ValueError(f"multiplier must be a finite number > 0, got {multiplier!r}")
        others_keep = np.arange(n)  # n_1: how many of the N - 1 others keep (action 1)
        contribute = m * (n - others_keep) / n - 1.0
        keep = m * (n - 1 - others_keep) / n
        return cls(
            np.stack([contribute, keep]),
            symmetric=True,
            action_names=("contribute", "keep"),
            name="public_goods",
        )

    @classmethod
    def from_symmetric_function(
        cls,
        fn: Callable[[int, tuple[int, ...]], float],
        n_agents: int,
        n_actions: int,
        *,
        action_names: tuple[str, ...] | None = None,
        name: str = "matrix_game",
    ) -> MatrixGame:
        """Tabulate ``fn(own_action, counts)`` into the symmetric form.

        ``counts[j]`` is the number of *other* players choosing action ``j`` (length ``n_actions``, summing to
        ``n_agents - 1``); unreachable table entries are set to 0.
        """
        n = check_positive_int("n_agents", n_agents, 2)
        k = check_positive_int("n_actions", n_actions, 2)
        table = np.zeros((k,) + (n,) * (k - 1))
        for tail in itertools.product(range(n), repeat=k - 1):
            if sum(tail) <= n - 1:
                counts = (n - 1 - sum(tail), *tail)
                for own in range(k):
                    cell = (own, *tail)  # mypy (target 3.10) mistakes table[(own, *tail)] for 3.11's table[own, *tail]
                    table[cell] = fn(own, counts)
        return cls(table, symmetric=True, action_names=action_names, name=name)

    def rewards(self, joint_action: Sequence[int]) -> NDArray[np.float64]:
        """Every player's payoff for ``joint_action`` (one valid action index per player), shape (N,)."""
        if not self.symmetric:
            return self.payoffs[tuple(joint_action)]
        acts = np.asarray(joint_action)
        k = self.n_actions[0]
        counts = np.bincount(acts, minlength=k)
        # Others choosing j = all choosing j minus oneself if one chose j.
        index = (acts, *(counts[j] - (acts == j) for j in range(1, k)))
        return self.payoffs[index]

    def action_name(self, action: int) -> str:
        return str(action) if self.action_names is None else self.action_names[action]


class MatrixGameEnv(ParallelEnv[str, NDArray[np.float32], int], EzPickle):
    """A :class:`MatrixGame` repeated for ``max_cycles`` rounds; see the module docstring."""

    # Not a ClassVar: every env sets its own copy, named after its game.
    metadata: dict[str, Any] = {
        "name": "matrix_game_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
        "render_fps": 1,
    }

    def __init__(
        self,
        game: MatrixGame | None = None,
        max_cycles: int = DEFAULT_MAX_CYCLES,
        render_mode: str | None = None,
    ) -> None:
        EzPickle.__init__(self, game, max_cycles, render_mode)
        if game is None:
            game = MatrixGame.public_goods()
        if not isinstance(game, MatrixGame):
            raise TypeError(f"game must be a MatrixGame, got {type(game).__name__}")
        self.game = game
        self.max_cycles = check_positive_int("max_cycles", max_cycles, 1)
        if render_mode is not None and render_mode not in ("ansi", "human"):
            raise ValueError(f"render_mode must be None, 'ansi' or 'human', got {render_mode!r}")
        self.render_mode = render_mode
        self.metadata = {**type(self).metadata, "name": f"{game.name}_v0"}

        n = game.n_agents
        self.possible_agents = [f"player_{i}" for i in range(n)]
        self.agent_name_mapping = {a: i for i, a in enumerate(self.possible_agents)}
        self._act_spaces = [spaces.Discrete(k) for k in game.n_actions]
        self._act_space_of = dict(zip(self.possible_agents, self._act_spaces, strict=True))
        # Block j of the global encoding covers player j's k_j actions plus the "no previous round" slot k_j.
        sizes = np.array(game.n_actions) + 1
        self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]], dtype=np.int64)
        self._no_previous = self._offsets + sizes - 1
        blocks = [np.arange(o, o + s) for o, s in zip(self._offsets, sizes, strict=True)]
        # Row i reorders the global encoding to player i's view: own block, then the others in index order.
        self._views = np.stack([np.concatenate([blocks[i], *blocks[:i], *blocks[i + 1 :]]) for i in range(n)])
        dim = int(sizes.sum())
        self._obs_space = spaces.Box(0.0, 1.0, shape=(dim,), dtype=np.float32)
        self.state_space = spaces.Box(0.0, 1.0, shape=(dim,), dtype=np.float32)
        self.np_random, _ = seeding.np_random(None)
        self.agents: list[str] = []
        self._started = False
        self._round = 0
        self._encoding = np.zeros(dim, dtype=np.float32)
        self._last_actions: list[int] | None = None
        self._last_rewards: list[float] | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        if agent not in self.agent_name_mapping:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Discrete:
        try:
            return self._act_space_of[agent]
        except KeyError:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}") from None

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[np.float32]], dict[str, dict[str, Any]]]:
        if seed is not None:
            # The game is deterministic; the RNG is kept for the seeding contract (and for subclasses).
            self.np_random, _ = seeding.np_random(seed)
        self.agents = list(self.possible_agents)
        self._started = True
        self._round = 0
        self._last_actions = self._last_rewards = None
        self._encode(self._no_previous)
        return self._observations(), {a: {} for a in self.agents}

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
        acts = coerce_joint_discrete(actions, self.agents, self._act_spaces)
        rewards_arr = self.game.rewards(acts).tolist()
        self._round += 1
        self._last_actions, self._last_rewards = acts, rewards_arr
        self._encode(self._offsets + acts)

        agents = self.agents
        truncated = self._round >= self.max_cycles
        rewards = dict(zip(agents, rewards_arr, strict=True))
        terms = dict.fromkeys(agents, False)
        truncs = dict.fromkeys(agents, truncated)
        infos: dict[str, dict[str, Any]] = {a: {} for a in agents}
        obs = self._observations()
        if truncated:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def _encode(self, hot: NDArray[np.int64]) -> None:
        self._encoding = np.zeros(self._obs_space.shape, dtype=np.float32)
        self._encoding[hot] = 1.0

    def _observations(self) -> dict[str, NDArray[np.float32]]:
        views = self._encoding[self._views]
        return dict(zip(self.possible_agents, views, strict=True))

    def state(self) -> NDArray[np.float32]:
        """Every player's last action (or "no previous round"), one-hot, in player index order."""
        return self._encoding.copy()

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        if self._last_actions is None or self._last_rewards is None:
            text = f"round 0/{self.max_cycles}: no previous round"
        else:
            acts = ", ".join(
                f"{a}={self.game.action_name(x)}"
                for a, x in zip(self.possible_agents, self._last_actions, strict=True)
            )
            rews = ", ".join(f"{r:g}" for r in self._last_rewards)
            text = f"round {self._round}/{self.max_cycles}: {acts}; rewards {rews}"
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass


def parallel_env(**kwargs: Any) -> MatrixGameEnv:
    """An iterated :class:`MatrixGame` as a PettingZoo ``ParallelEnv``."""
    return MatrixGameEnv(**kwargs)


def batched_env(n_envs: int, **kwargs: Any) -> Any:
    """``n_envs`` copies of an iterated :class:`MatrixGame` stepped together with arrays (same arguments as
    :func:`parallel_env`): an :class:`incentive_envs.matrix_vector.BatchedMatrixGame`."""
    from incentive_envs.matrix_vector import BatchedMatrixGame  # it imports this module

    return BatchedMatrixGame(parallel_env(**kwargs), n_envs)


def raw_env(**kwargs: Any) -> AECEnv:
    """An iterated :class:`MatrixGame` as an AEC env (converted from the parallel implementation)."""
    return aec_from_parallel(parallel_env(**kwargs))


def env(**kwargs: Any) -> AECEnv:
    """An iterated :class:`MatrixGame` as an AEC env with order enforcement and action checks."""
    return checked_aec(raw_env(**kwargs))
