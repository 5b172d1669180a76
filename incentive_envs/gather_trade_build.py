"""Gather-Trade-Build: four agents gather wood and stone, trade them, build houses for coin, and pay taxes.

| Property      | Value                                                                                  |
|---------------|----------------------------------------------------------------------------------------|
| IDs           | ``incentive_envs/gather_trade_build-v0`` (PettingZoo), ``incentive_envs/GatherTradeBuild-v0`` |
|               | and ``incentive_envs/GatherTradeBuildSingleAgent-v0`` (Gymnasium views)                |
| Agents        | ``agent_0`` .. ``agent_3``                                                             |
| Actions       | ``Discrete(50)``: 0 no-op, 1 build, 2-12 buy stone at 0..10, 13-23 sell stone,         |
|               | 24-34 buy wood, 35-45 sell wood, 46-49 move left/right/up/down                         |
| Observations  | ``observation_mode="flat"`` (default): ``Box((1089 + 138 + 50,), float32)`` =          |
|               | spatial (9, 11, 11) flattened, flat features (138), action mask (50);                  |
|               | ``"dict"``: ``Dict(spatial, flat, action_mask)`` with the same three parts            |
| Action mask   | ``infos[agent]["action_mask"]`` (int8, 50) and inside the observation; no-op always 1  |
| State         | ``Box((8·15·15 + 83 + 4·13,), float32)``: full map, global and per-agent features       |
| Rewards       | change of ``U = (c^0.77 - 1) / 0.77 - 0.21 L`` (c total coin, L cumulative labour)     |
| Episode end   | truncated after ``max_cycles`` (default 100) steps; never terminated                   |

This is Foundation's ``layout_from_file/simple_wood_and_stone`` with the four fixed skills and corners
(method.md §3.3), reimplemented on a batched NumPy engine (:class:`incentive_envs.gtb.BatchedGTB`, of which
this env is the one-world case).

**Rules** (each step, in this order; method.md §3.3.10):

1. *Build*: with >= 1 wood and >= 1 stone in inventory, on a tile without resource, source, water or house,
   an agent builds a house (labour 10) and earns its build payment. Payments of the four skill slots are
   ``[11.33, 13.27, 16.47, 22.25]``; the slots start at the top-right, bottom-left, top-left and bottom-right
   corners respectively, and agents are randomly permuted over the slots at every reset.
2. *Market* (continuous double auction, prices 0..10): an agent with fewer than 5 open orders for a resource
   may bid (inventory coin >= price; the price goes to escrow) or ask (>= 1 unit; it goes to escrow); each
   order costs 0.25 labour. The highest bid meets the lowest ask of another agent; they trade at the price of
   the earlier order (the ask's when both are new). Orders resting more than 50 steps are refunded.
3. *Gather*: in a random agent order, moves to in-bounds, non-water, unoccupied tiles (not another agent's
   house) succeed and cost 1 labour; then every agent collects the resource on its tile (+1, labour 1).
4. *Tax*: rates set with :meth:`GatherTradeBuildEnv.set_tax_rates` come into force at the first step of the
   next 10-step period; at the end of steps 10, 20, ... each agent's period income (total coin minus total
   coin after the last enactment) is taxed with the 7 brackets of the scaled 2018 US schedule (cut-offs
   ``[0, 9.7, 39.475, 84.2, 160.725, 204.1, 510.3]``), at most its inventory coin is collected, and the
   revenue is returned as an equal lump sum. Default rates are 0 (free market).
5. *Regeneration*: each empty source tile regrows with probability 0.01 (also under a standing agent).

Masked actions are legal, as in Foundation: a masked build or order does nothing (a bid the agent cannot pay
for is simply not placed), and a move is checked against the tiles at the moment the agent moves (it may
succeed if the agent in the way moved first). Total coin = inventory + escrow; utility uses ``max(c, 0.01)``
(``incentive_envs.economics``).

**Observation layout.** ``spatial`` is the 11x11 egocentric view, channels first, channels
:data:`incentive_envs.gtb.SPATIAL_CHANNELS`: stone, wood, stone source, wood source, water, house, inside the
world, house owner and agent (1 = self, k + 2 = agent k, 0 = none). ``flat`` slots are named by
:func:`incentive_envs.gtb.flat_feature_names`: inventory coin/stone/wood and escrow coin/stone/wood (x0.01),
labour (x0.01), row/15, column/15, t/T, build payment/10; per resource (stone, then wood): market rate,
decayed trade-price histogram (x0.01), other agents' open asks and bids per price, own asks and bids per
price; then tax: is-tax-day, is-first-day, cycle position/10, last period's incomes sorted (/10), the 7
rates in force, and the agent's current marginal rate. :meth:`GatherTradeBuildEnv.split_observation` cuts a
flat observation back into the three parts.

**State** (the designer's view, method.md §7.1.5 fixed): the full map (8 channels:
:data:`incentive_envs.gtb.STATE_MAP_CHANNELS`), then time, tax flags and phase, sorted last incomes, rates in
force, per-resource market rate, price history and all open asks/bids, then for each agent its inventory,
escrow, labour, location, build payment, last income, last and current marginal rate
(:func:`incentive_envs.gtb.state_feature_names`).

**Infos** (per agent, at reset and every step, with the same keys and value types): the keys
:data:`incentive_envs.gtb.STEP_INFO_KEYS` (its docstring says what each means and when): ``action_mask``,
``coin`` (total, after the step), ``coin_pre_tax`` (after the components, before this step's tax and lump
sum), ``labour``, ``income`` (this period so far; the taxed income on enactment steps), ``tax_paid``,
``lump_sum``, ``marginal_rates`` (7 rates in force), ``tax_enacted``, ``tax_cycle_position``, and the social
metrics ``productivity`` (Σ coin), ``equality`` (1 - normalised Gini) and ``equality_times_productivity``,
then the agent's ``houses_built`` and ``trades`` (units bought plus sold) so far this episode.
At reset: 40, 1 and 40 (so eq·prod/N = 10).

**For designers** (beyond the PettingZoo API; :mod:`incentive_envs.gtb.schema`, re-exported here):
:attr:`GatherTradeBuildEnv.schema` (a :class:`GTBSchema`) gives the observation and state layout and decodes
the state (escrow coin, build payments, period start, rates in force; NumPy or torch); :func:`utility`,
:func:`agent_reward` and :func:`period_tax` are the reward and tax rules the engine itself computes with, so
a designer rebuilding the agents' rewards under other rates uses exactly the env's rule::

    paid, lump = period_tax(income, rates, coin_pre_tax - schema.escrow_coin(next_state), config)
    reward = agent_reward(coin_pre_tax - paid + lump, labour, utility_before, config)  # on enactment steps

### Arguments
``pettingzoo.make("parallel", "incentive_envs/gather_trade_build-v0", max_cycles=100,
layout="env-pure_and_mixed-15x15", initial_tax_rates=None, observation_mode="flat", config=None,
render_mode=None)``

- ``max_cycles`` (alias ``episode_length``): steps per episode.
- ``layout``: a packaged layout (``env-pure_and_mixed-15x15``, ``env-pure_and_mixed-25x25``) or a file.
- ``initial_tax_rates``: rates in force at every reset (7 values in [0, 1]); default all 0.
- ``observation_mode``: ``"flat"`` (one Box vector; what PettingZoo's and SB3's checkers accept without
  warnings) or ``"dict"``.
- ``config``: a :class:`incentive_envs.gtb.GTBConfig` overriding any other constant.

### Version History
* v0: initial release.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle
from numpy.typing import ArrayLike, NDArray
from pettingzoo import AECEnv, ParallelEnv

from incentive_envs.gtb.config import GTBConfig
from incentive_envs.gtb.engine import SPATIAL_CHANNELS, BatchedGTB, GTBStep, gym_seed
from incentive_envs.gtb.layout import DEFAULT_LAYOUT, MapLayout
from incentive_envs.gtb.schema import STEP_INFO_KEYS, GTBSchema, agent_reward, period_tax, utility
from incentive_envs.validation import check_joint_action, check_positive_int, require_started

__all__ = [
    "STEP_INFO_KEYS",
    "GTBSchema",
    "GatherTradeBuildEnv",
    "agent_reward",
    "batched_env",
    "env",
    "parallel_env",
    "period_tax",
    "raw_env",
    "utility",
]

OBSERVATION_MODES: Final = ("flat", "dict")


class GatherTradeBuildEnv(ParallelEnv[str, Any, int], EzPickle):
    """Parallel Gather-Trade-Build with an externally set tax schedule; see the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": "gather_trade_build_v0",
        "render_modes": ["ansi"],
        "is_parallelizable": True,
        "render_fps": 4,
    }

    def __init__(
        self,
        max_cycles: int | None = None,
        layout: str | Path | MapLayout = DEFAULT_LAYOUT,
        initial_tax_rates: ArrayLike | None = None,
        observation_mode: str = "flat",
        config: GTBConfig | None = None,
        render_mode: str | None = None,
        episode_length: int | None = None,
    ) -> None:
        EzPickle.__init__(
            self, max_cycles, layout, initial_tax_rates, observation_mode, config, render_mode, episode_length
        )
        if observation_mode not in OBSERVATION_MODES:
            raise ValueError(f"observation_mode must be one of {OBSERVATION_MODES}, got {observation_mode!r}")
        if render_mode is not None and render_mode not in ("ansi", "human"):
            raise ValueError(f"render_mode must be None, 'ansi' or 'human', got {render_mode!r}")
        self.observation_mode = observation_mode
        self.render_mode = render_mode
        self.sim = BatchedGTB(1, config=config, layout=layout, initial_tax_rates=initial_tax_rates)
        length = max_cycles if max_cycles is not None else episode_length
        if length is not None:
            self.sim.set_episode_length(check_positive_int("max_cycles", length))
        self.possible_agents = [f"agent_{i}" for i in range(self.sim.n_agents)]
        self.agent_name_mapping = {a: i for i, a in enumerate(self.possible_agents)}
        self.agents: list[str] = []
        self._started = False
        self._last: GTBStep | None = None

        v = 2 * self.sim.config.view_radius + 1
        n_ch = len(SPATIAL_CHANNELS)
        spatial_high = np.ones((n_ch, v, v), dtype=np.float32)
        spatial_high[-2:] = self.sim.n_agents + 1
        flat_low, flat_high = self.sim.flat_bounds()
        n_act = self.sim.actions.n
        self._spatial_space = spaces.Box(np.zeros_like(spatial_high), spatial_high, dtype=np.float32)
        self._flat_space = spaces.Box(flat_low, flat_high, dtype=np.float32)
        self._mask_space = spaces.Box(0, 1, shape=(n_act,), dtype=np.int8)
        self._spatial_size = n_ch * v * v
        self._flat_size = flat_low.size
        if observation_mode == "flat":
            self._obs_space: spaces.Space[Any] = spaces.Box(
                np.concatenate([np.zeros(self._spatial_size, np.float32), flat_low, np.zeros(n_act, np.float32)]),
                np.concatenate([spatial_high.reshape(-1), flat_high, np.ones(n_act, np.float32)]),
                dtype=np.float32,
            )
        else:
            self._obs_space = spaces.Dict(
                {"spatial": self._spatial_space, "flat": self._flat_space, "action_mask": self._mask_space}
            )
        self._act_space = spaces.Discrete(n_act)
        state_low, state_high = self.sim.state_bounds()
        self.state_space = spaces.Box(state_low, state_high, dtype=np.float32)
        self._schema = GTBSchema.of(self.sim.config, self.sim.layout)

    # ------------------------------------------------------------------ PettingZoo API
    @functools.cache
    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return self._obs_space

    @functools.cache
    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    @property
    def max_cycles(self) -> int:
        """Steps per episode; a new value applies from the next reset."""
        return self.sim.episode_length

    @max_cycles.setter
    def max_cycles(self, value: int) -> None:
        self.sim.set_episode_length(check_positive_int("max_cycles", value))

    @property
    def np_random(self) -> np.random.Generator:
        """The env's seeded generator (all of the game's randomness is drawn from it at reset)."""
        return self.sim.rngs[0]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Start an episode; a bad ``seed`` (bool, float, string, sequence, negative) raises Gymnasium's error."""
        out = self.sim.reset(seed=None if seed is None else gym_seed(seed))
        self.agents = list(self.possible_agents)
        self._started = True
        self._last = out
        return self._obs_dict(out), self._infos(out)

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]
    ]:
        if self._started and not self.agents and not actions:
            return {}, {}, {}, {}, {}  # PettingZoo convention: step({}) on a finished env is a no-op
        require_started(self._started, self.agents)
        check_joint_action(actions, self.agents, self.action_space)
        joint = np.array([[int(actions[a]) for a in self.possible_agents]], dtype=np.int64)
        out = self.sim.step(joint, checked=True)  # each action was checked against its space just above
        self._last = out
        rewards = dict(zip(self.possible_agents, out.reward[0].tolist()))
        terms = dict.fromkeys(self.possible_agents, False)
        truncs = dict.fromkeys(self.possible_agents, out.done)
        obs, infos = self._obs_dict(out), self._infos(out)
        if out.done:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def state(self) -> NDArray[np.float32]:
        """The designer's view: full map, global and per-agent features (see the module docstring)."""
        return self.sim.state()[0]

    def render(self) -> str | None:
        if self.render_mode is None or not self._started:
            return None
        text = self.sim.render_text(0)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ tax interface and metrics
    @property
    def schema(self) -> GTBSchema:
        """This game's observation/state layout and state decoders (:class:`incentive_envs.gtb.GTBSchema`)."""
        return self._schema

    @property
    def tax_cycle_position(self) -> int:
        """Cycle position of the next step (1 = first step of a tax period, 10 = the enactment step)."""
        return self.sim.tax_cycle_position

    @property
    def tax_rates(self) -> NDArray[np.float64]:
        """The 7 marginal rates currently in force."""
        return self.sim.tax_rates[0]

    def set_tax_rates(self, rates: ArrayLike) -> None:
        """Rates (7 values in [0, 1]) for the next tax period; see :meth:`BatchedGTB.set_tax_rates`.

        Raises:
            ValueError: wrong length, a rate that is not a real number (a string, a bool; the bracket is named)
                or outside [0, 1]. FloatingPointError: a non-finite rate.
            RuntimeError: before reset, or after the episode ended (the rates would never apply).
        """
        self.sim.set_tax_rates(rates)

    def metrics(self) -> dict[str, float]:
        """Social metrics of the current state: productivity, equality and their product."""
        out = self._require_last()
        prod, eq = float(out.productivity[0]), float(out.equality[0])
        return {"productivity": prod, "equality": eq, "equality_times_productivity": eq * prod}

    def split_observation(self, observation: NDArray[np.float32]) -> dict[str, NDArray[Any]]:
        """Cut a flat observation into ``spatial`` (9, 11, 11), ``flat`` and ``action_mask`` (int8)."""
        obs = np.asarray(observation)
        expected = self._spatial_size + self._flat_size + self._act_space.n
        if obs.shape[-1] != expected:
            raise ValueError(f"observation must end in a dimension of {expected}, got shape {obs.shape}")
        a, b = self._spatial_size, self._spatial_size + self._flat_size
        return {
            "spatial": obs[..., :a].reshape(*obs.shape[:-1], *self._spatial_space.shape),
            "flat": obs[..., a:b],
            "action_mask": obs[..., b:].astype(np.int8),
        }

    # ------------------------------------------------------------------ helpers
    def _require_last(self) -> GTBStep:
        if self._last is None:
            raise RuntimeError("the environment has not been reset; call reset() first")
        return self._last

    def _obs_dict(self, out: GTBStep) -> dict[str, Any]:
        o = out.obs
        if self.observation_mode == "flat":
            packed = o.packed()[0]
            return {a: packed[i] for i, a in enumerate(self.possible_agents)}
        return {
            a: {"spatial": o.spatial[0, i], "flat": o.flat[0, i], "action_mask": o.action_mask[0, i]}
            for i, a in enumerate(self.possible_agents)
        }

    def _infos(self, out: GTBStep) -> dict[str, dict[str, Any]]:
        """Each agent's infos: the same keys (:data:`STEP_INFO_KEYS`) and value types at reset and at every step."""
        prod, eq = float(out.productivity[0]), float(out.equality[0])
        shared = {
            "marginal_rates": out.marginal_rates[0],
            "tax_enacted": out.tax_enacted,
            "tax_cycle_position": self.sim.tax_cycle_position,
            "productivity": prod,
            "equality": eq,
            "equality_times_productivity": eq * prod,
        }
        keys = ("coin", "coin_pre_tax", "labour", "income", "tax_paid", "lump_sum", "houses_built", "trades")
        columns = [getattr(out, k)[0].tolist() for k in keys]
        infos = {}
        for i, a in enumerate(self.possible_agents):
            mine = {"action_mask": out.obs.action_mask[0, i], **{k: c[i] for k, c in zip(keys, columns)}, **shared}
            infos[a] = {k: mine[k] for k in STEP_INFO_KEYS}
        return infos


def parallel_env(**kwargs: Any) -> GatherTradeBuildEnv:
    """Gather-Trade-Build as a PettingZoo ``ParallelEnv``."""
    return GatherTradeBuildEnv(**kwargs)


def batched_env(n_envs: int, **kwargs: Any) -> Any:
    """``n_envs`` worlds with the batched multi-agent interface of :mod:`incentive_envs.vector` (same arguments
    as :func:`parallel_env`, flat observations only): an :class:`incentive_envs.gtb.vector.BatchedGTBEnv`, with
    ``set_tax_rates(rates[B, 7])``; world b reset with seed s equals this env reset with seed s + b."""
    from incentive_envs.gtb.vector import BatchedGTBEnv

    return BatchedGTBEnv(parallel_env(**kwargs), n_envs)


def raw_env(**kwargs: Any) -> AECEnv:
    """Gather-Trade-Build as an AEC env (converted from the parallel implementation)."""
    from incentive_envs._aec import aec_from_parallel

    return aec_from_parallel(parallel_env(**kwargs))


def env(**kwargs: Any) -> AECEnv:
    """Gather-Trade-Build as an AEC env with order enforcement and action checks."""
    from incentive_envs._aec import checked_aec

    return checked_aec(raw_env(**kwargs))
