"""Batched Gather-Trade-Build engine: B independent worlds stepped in lockstep with array actions.

This is the only implementation of the game's step. The PettingZoo env
(:mod:`incentive_envs.gather_trade_build`) is this engine with ``n_envs=1``. Utilities, rewards and taxes are
computed with the published rules of :mod:`incentive_envs.gtb.rewards` (:func:`~incentive_envs.gtb.utility`,
:func:`~incentive_envs.gtb.agent_reward`, :func:`~incentive_envs.gtb.period_tax`), the functions a designer
rebuilding the agents' rewards uses too. The components' inner loops are compiled
(:mod:`incentive_envs.gtb.kernels`) and the observations are built by :mod:`incentive_envs.gtb.observation`.

Each world has its own seeded generator, so world ``b`` of a batch reset with seeds ``[s_0, ..., s_{B-1}]``
replays exactly the single env reset with seed ``s_b`` under the same actions. All of an episode's randomness
(the agents' skill/corner slots, each step's gather order and regrowth draws) is drawn from that generator at
reset; episodes have a fixed length, so all worlds end together.

Example:
    >>> import numpy as np
    >>> from incentive_envs.gtb import BatchedGTB
    >>> sim = BatchedGTB(n_envs=8)
    >>> out = sim.reset(seed=0)
    >>> sim.set_tax_rates([0.1, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37])
    >>> out = sim.step(np.zeros((8, 4), dtype=np.int64))
    >>> out.reward.shape, out.obs.flat.shape
    ((8, 4), (8, 4, 138))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from gymnasium import error
from gymnasium.utils import seeding
from numpy.typing import ArrayLike, NDArray

from incentive_envs.economics import check_rates, equality, productivity
from incentive_envs.gtb.components import (
    BID,
    NO_ORDER,
    RESOURCES,
    STONE,
    WOOD,
    ActionLayout,
    Build,
    ContinuousDoubleAuction,
    Gather,
    GTBState,
    PeriodicBracketTax,
    regenerate,
)
from incentive_envs.gtb.config import GTBConfig
from incentive_envs.gtb.layout import DEFAULT_LAYOUT, MapLayout, load_layout
from incentive_envs.gtb.observation import (
    _BASE_PAYMENT,
    SPATIAL_CHANNELS,
    STATE_MAP_CHANNELS,
    GTBObservation,
    Observer,
    _agent_state_names,
    flat_feature_names,
    state_feature_names,
)
from incentive_envs.gtb.rewards import utility

__all__ = [
    "SPATIAL_CHANNELS",
    "STATE_MAP_CHANNELS",
    "BatchedGTB",
    "GTBObservation",
    "GTBStep",
    "flat_feature_names",
    "gym_seed",
    "orders_summary",
    "state_feature_names",
]


@dataclasses.dataclass(frozen=True)
class GTBStep:
    """Result of :meth:`BatchedGTB.step` (or of :meth:`BatchedGTB.reset`, with zero rewards).

    All per-agent arrays are (B, N) float64 unless noted.

    Attributes:
        obs: observations after the step.
        reward: change of each agent's utility ``U = (c^(1-eta) - 1) / (1-eta) - labour_cost * L``.
        done: the episode ended with this step (all worlds end together).
        coin: total coin (inventory + escrow) after the step.
        coin_pre_tax: total coin after the components and before this step's taxes and lump sum.
        labour: cumulative labour after the step.
        income: this period's income so far (total coin before tax minus total coin after the last
            enactment); on an enactment step it is the income that was taxed.
        tax_paid: tax collected this step (0 off enactment steps).
        lump_sum: lump sum received this step (0 off enactment steps).
        marginal_rates: (B, n_brackets) rates in force this step.
        tax_enacted: taxes were collected at the end of this step.
        productivity: (B,) sum of total coin.
        equality: (B,) ``1 - Gini * N / (N - 1)`` of total coin.
        houses_built: houses each agent built this episode.
        trades: trades each agent took part in this episode (units bought plus units sold).
    """

    obs: GTBObservation
    reward: NDArray[np.float64]
    done: bool
    coin: NDArray[np.float64]
    coin_pre_tax: NDArray[np.float64]
    labour: NDArray[np.float64]
    income: NDArray[np.float64]
    tax_paid: NDArray[np.float64]
    lump_sum: NDArray[np.float64]
    marginal_rates: NDArray[np.float64]
    tax_enacted: bool
    productivity: NDArray[np.float64]
    equality: NDArray[np.float64]
    houses_built: NDArray[np.float64]
    trades: NDArray[np.float64]


class BatchedGTB:
    """B Gather-Trade-Build worlds stepped together (method.md §3.3), 4 agents each.

    Args:
        n_envs: number of worlds B.
        config: game constants (defaults are the paper's).
        layout: packaged layout name, path to a layout file, or a :class:`MapLayout`.
        initial_tax_rates: marginal rates in force at every reset until :meth:`set_tax_rates` changes them
            (default: all 0, a free market).

    Raises:
        ValueError: bad ``n_envs``, rates, or a layout whose start corners are water.
    """

    def __init__(
        self,
        n_envs: int = 1,
        config: GTBConfig | None = None,
        layout: str | Path | MapLayout = DEFAULT_LAYOUT,
        initial_tax_rates: ArrayLike | None = None,
    ) -> None:
        if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
            raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")
        self.n_envs = int(n_envs)
        self.config = config if config is not None else GTBConfig()
        if not isinstance(self.config, GTBConfig):
            raise ValueError(f"config must be a GTBConfig, got {type(self.config).__name__}")
        self.layout = load_layout(layout)
        self.n_agents = self.config.n_agents
        self.actions = ActionLayout(self.config.n_prices)
        self.corners = self.layout.corners()
        for r, c in self.corners:
            if self.layout.water[r, c]:
                raise ValueError(f"layout {self.layout.name!r}: start corner ({r}, {c}) is water")
        n_br = self.config.n_brackets
        if initial_tax_rates is not None:
            _check_rate_numbers("initial_tax_rates", initial_tax_rates)
        self.initial_tax_rates = (
            np.zeros(n_br) if initial_tax_rates is None else check_rates(initial_tax_rates, n_br)
        )
        self.build = Build(self.config)
        self.market = ContinuousDoubleAuction(self.config, self.n_agents)
        self.gather = Gather(self.config, self.layout)
        self.tax = PeriodicBracketTax(self.config)
        sources = np.stack([self.layout.stone, self.layout.wood])  # (R, H, W)
        self._source_index = np.flatnonzero(sources)
        self._sources = sources.astype(np.int8)
        self.observer = Observer(self.config, self.layout, self.n_envs)
        self._barange = np.arange(self.n_envs)[:, None]
        self._narange = np.arange(self.n_agents)[None, :]
        self._mask = np.zeros((self.n_envs, self.n_agents, self.actions.n), dtype=np.int8)
        self.flat_names = self.observer.flat_names
        self.state_names = self.observer.state_names
        self.rngs = [seeding.np_random(None)[0] for _ in range(self.n_envs)]
        self.s: GTBState | None = None
        self._utility = np.zeros((self.n_envs, self.n_agents))
        self._metrics_of: tuple[NDArray[np.float64], ...] | None = None  # total coin, productivity, equality
        self._order = np.zeros((0, self.n_envs, self.n_agents), dtype=np.int64)
        self._regrow = np.zeros((0, self.n_envs, self._source_index.size), dtype=bool)
        self._episode_length = self.config.episode_length

    # ------------------------------------------------------------------ public API
    @property
    def episode_length(self) -> int:
        """Steps per episode; changes made with :meth:`set_episode_length` apply from the next reset."""
        return self._episode_length

    def set_episode_length(self, length: int) -> None:
        """Set the episode length used from the next reset on."""
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"episode length must be an integer >= 1, got {length!r}")
        self._episode_length = int(length)

    @property
    def timestep(self) -> int:
        return self._require_state().timestep

    @property
    def tax_cycle_position(self) -> int:
        """Position in the tax period of the *next* step: 1 at a period's first step, ``tax_period`` at its last.

        Rates passed to :meth:`set_tax_rates` come into force at the next step whose position is 1.
        """
        return self._require_state().tax_cycle_pos

    @property
    def tax_rates(self) -> NDArray[np.float64]:
        """(B, n_brackets) marginal rates currently in force (a copy)."""
        return self._require_state().rates.copy()

    def set_tax_rates(self, rates: ArrayLike) -> None:
        """Set the marginal rates of the next tax period: ``(n_brackets,)`` for every world or one row each.

        Called when :attr:`tax_cycle_position` is 1 (right after reset or after an enactment step), the rates
        apply to the period that starts with the next step; called mid-period, they wait for the next period.
        Rates are real numbers (Python or NumPy ints and floats): a string or a bool is refused, never converted.

        Raises:
            RuntimeError: before :meth:`reset`, or after the episode ended (no period would ever use the rates:
                :meth:`reset` restores the initial rates).
            ValueError: wrong shape, a rate that is not a real number (the bracket is named) or outside [0, 1].
            FloatingPointError: a non-finite rate.
        """
        s = self._require_running("set_tax_rates")
        _check_rate_numbers("rates", rates)
        n_br = self.config.n_brackets
        arr = np.asarray(rates, dtype=np.float64)
        if arr.ndim == 1:
            arr = np.broadcast_to(check_rates(arr, n_br), (self.n_envs, n_br))
        elif arr.shape == (self.n_envs, n_br):
            arr = np.stack([check_rates(row, n_br) for row in arr])
        else:
            raise ValueError(f"rates must have shape ({n_br},) or ({self.n_envs}, {n_br}), got {arr.shape}")
        s.pending_rates[:] = arr
        s.has_pending[:] = True

    def reset(self, seed: int | Sequence[int] | None = None) -> GTBStep:
        """Start a new episode in every world.

        Args:
            seed: ``None`` continues each world's generator; an int seeds world ``b`` with ``seed + b``; a
                sequence gives one seed per world.

        Raises:
            gymnasium.error.Error: a seed that is not a non-negative integer (a bool, float or string), as
                Gymnasium's ``seeding.np_random`` says for the other envs.
            ValueError: a sequence with not one seed per world.
        """
        self._reseed(seed)
        cfg, b, n, t = self.config, self.n_envs, self.n_agents, self._episode_length
        h, w = self.layout.shape
        k, n_res = cfg.max_orders, len(RESOURCES)
        slots = np.stack([rng.permutation(n) for rng in self.rngs])  # agent slots[b, j] takes skill slot j
        self._order = np.stack([np.argsort(rng.random((t, n)), axis=1) for rng in self.rngs], axis=1)
        n_src = self._source_index.size
        self._regrow = np.stack([rng.random((t, n_src)) < cfg.regen_prob for rng in self.rngs], axis=1)
        pos = np.zeros((b, n, 2), dtype=np.int64)
        payment = np.zeros((b, n))
        corners = np.array(self.corners, dtype=np.int64)
        barange = np.arange(b)[:, None]
        pos[barange, slots] = corners[None]
        payment[barange, slots] = np.asarray(cfg.build_payments)[None]
        occupant = np.full((b, h, w), -1, dtype=np.int8)
        occupant[barange, pos[..., 0], pos[..., 1]] = np.arange(n, dtype=np.int8)[None]
        zeros = np.zeros((b, n))
        agent = np.zeros((b, n, 7))
        agent[..., 0] = cfg.starting_coin
        self.s = GTBState(
            resource=np.repeat(self._sources[None], b, axis=0),
            owner=np.full((b, h, w), -1, dtype=np.int8),
            occupant=occupant,
            pos=pos,
            agent=agent,
            payment=payment,
            order_kind=np.zeros((b, n_res, n, k), dtype=np.int8),
            order_price=np.zeros((b, n_res, n, k), dtype=np.int64),
            order_created=np.zeros((b, n_res, n, k), dtype=np.int64),
            my_orders=np.zeros((b, n, n_res, 2, cfg.n_prices)),
            price_history=np.zeros((b, n_res, cfg.n_prices)),
            rates=np.repeat(self.initial_tax_rates[None], b, axis=0),
            pending_rates=np.zeros((b, cfg.n_brackets)),
            has_pending=np.zeros(b, dtype=bool),
            last_coin=np.full((b, n), float(cfg.starting_coin)),
            last_income=zeros.copy(),
            last_marginal_rate=zeros.copy(),
            tax_paid=zeros.copy(),
            lump_sum=zeros.copy(),
            coin_pre_tax=np.full((b, n), float(cfg.starting_coin)),
            houses_built=zeros.copy(),
            trades=zeros.copy(),
        )
        self._utility = self._utilities()
        self._payment_obs = payment / _BASE_PAYMENT
        self._income_obs = np.zeros((b, n))  # last period's incomes, sorted, per step of the period
        return self._result(np.zeros((b, n)), self.s.total_coin, done=False)

    def step(self, actions: ArrayLike, *, checked: bool = False) -> GTBStep:
        """Advance every world by one step.

        Args:
            actions: (B, N) integer action indices (see :class:`ActionLayout`). Masked actions are legal, as in
                Foundation: a masked build or order does nothing (e.g. a bid the agent cannot pay for is not
                placed), and a move is checked against the tiles at the moment the agent moves.
            checked: the caller has already checked ``actions``: an int64 (B, N) array of valid indices (the
                PettingZoo env, which checks each agent's action itself); skips the checks below.

        Raises:
            RuntimeError: before :meth:`reset` or after the episode ended.
            ValueError: wrong shape, non-integer dtype, or an index outside ``0..49``.
        """
        s = self._require_running("step")
        acts = cast("NDArray[np.int64]", actions) if checked else self._check_actions(actions)
        t = s.timestep
        s.timestep += 1
        # Build and market rules are exactly the mask conditions on the step's start state (see Build.step).
        self.build.step(s, acts, self._mask)
        self.market.step(s, acts, self._mask)
        self.gather.step(s, acts, self._order[t], self.actions.move_start)
        self.tax.step(s)
        if s.tax_enacted:
            self._income_obs = np.sort(s.last_income, axis=-1) / self.config.tax_period
        regenerate(s, self._source_index, self._regrow[t])
        total = s.total_coin if s.tax_enacted else s.coin_pre_tax.copy()  # no tax: total coin is pre-tax coin
        before, self._utility = self._utility, utility(total, s.labour, self.config)
        reward = self._utility - before  # agent_reward(coin, labour, before): the change of utility
        return self._result(reward, total, done=s.timestep >= self._order.shape[0])

    def observe(self) -> GTBObservation:
        """Current per-agent observations (as returned by the last reset/step).

        Also refreshes the cached action masks, which the build and market rules read; call it after editing
        :attr:`s` by hand (tests do) so that the next step sees the edits.
        """
        s = self._require_state()
        return self._observe(s)

    def state(self) -> NDArray[np.float32]:
        """(B, S) designer state: the full map (8, H, W) flattened, then global, then per-agent features.

        See :data:`STATE_MAP_CHANNELS` and :func:`state_feature_names` for the layout. This is the planner's
        true observation (it fixes the original's "last agent's view" bug, method.md §7.1.5).
        """
        s = self._require_state()
        cfg = self.config
        b, n = self.n_envs, self.n_agents
        full = self.observer.full_map(s).reshape(b, -1)
        rate = self.market.market_rate(s)
        market = np.concatenate(
            [rate[..., None], s.price_history * cfg.obs_scale, s.my_asks.sum(1), s.my_bids.sum(1)], axis=-1
        ).reshape(b, -1)
        agents = np.concatenate(
            [
                s.agent * cfg.obs_scale,
                s.pos / np.array(self.layout.shape),
                s.payment[..., None] / _BASE_PAYMENT,
                s.last_income[..., None] / cfg.tax_period,
                s.last_marginal_rate[..., None],
                self._current_marginal_rate(s)[..., None],
            ],
            axis=-1,
        ).reshape(b, n * len(_agent_state_names()))
        out = np.concatenate([full, self._time_and_tax(s), market, agents], axis=-1)
        return out.astype(np.float32)

    def state_bounds(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Finite ``(low, high)`` bounds of one world's :meth:`state` vector."""
        return self.observer.state_bounds()

    def flat_bounds(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Finite ``(low, high)`` bounds of one agent's flat observation vector."""
        return self.observer.flat_bounds()

    def render_text(self, env_index: int = 0) -> str:
        """ASCII picture of one world: agents as digits, ``h`` houses, ``W``/``S`` resources, ``w``/``s``
        depleted sources, ``@`` water, then one line per agent."""
        s = self._require_state()
        grid = np.full(self.layout.shape, ".", dtype="<U1")
        grid[self.layout.wood], grid[self.layout.stone] = "w", "s"
        grid[s.resource[env_index, WOOD] > 0], grid[s.resource[env_index, STONE] > 0] = "W", "S"
        grid[self.layout.water] = "@"
        grid[s.owner[env_index] >= 0] = "h"
        for i, (r, c) in enumerate(s.pos[env_index]):
            grid[r, c] = str(i)
        lines = [f"step {s.timestep}/{self._order.shape[0]}, tax cycle position {s.tax_cycle_pos}"]
        lines += ["".join(row) for row in grid]
        for i in range(self.n_agents):
            lines.append(
                f"agent_{i}: coin {s.coin[env_index, i]:.2f} (+{s.escrow_coin[env_index, i]:.0f} escrow), "
                f"stone {s.goods[env_index, i, STONE]:.0f}, wood {s.goods[env_index, i, WOOD]:.0f}, "
                f"labour {s.labour[env_index, i]:.2f}, payment {s.payment[env_index, i]:.2f}"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------ internals
    def _require_state(self) -> GTBState:
        if self.s is None:
            raise RuntimeError("the environment has not been reset; call reset() first")
        return self.s

    def _require_running(self, call: str) -> GTBState:
        s = self._require_state()
        if s.timestep >= self._order.shape[0]:
            raise RuntimeError(f"{call}() called after the episode finished; call reset() first")
        return s

    def _reseed(self, seed: int | Sequence[int] | None) -> None:
        if seed is None:
            return
        if isinstance(seed, (Sequence, np.ndarray)) and not isinstance(seed, (str, bytes)):
            seeds = [gym_seed(x) for x in seed]
            if len(seeds) != self.n_envs:
                raise ValueError(f"need one seed per world ({self.n_envs}), got {len(seeds)}")
        else:
            seeds = [gym_seed(seed) + j for j in range(self.n_envs)]
        self.rngs = [seeding.np_random(x)[0] for x in seeds]  # Gymnasium's error for a negative seed

    def _check_actions(self, actions: ArrayLike) -> NDArray[np.int64]:
        arr = np.asarray(actions)
        if arr.shape != (self.n_envs, self.n_agents):
            raise ValueError(f"actions must have shape ({self.n_envs}, {self.n_agents}), got {arr.shape}")
        if arr.dtype.kind not in "iu":  # signed or unsigned integers only (no bool, no float)
            raise ValueError(f"actions must be integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.actions.n):
            bad = arr[(arr < 0) | (arr >= self.actions.n)]
            raise ValueError(f"actions must lie in 0..{self.actions.n - 1}, got {bad.tolist()}")
        return arr.astype(np.int64, copy=False)

    def _utilities(self) -> NDArray[np.float64]:
        s = self._require_state()
        return utility(s.total_coin, s.labour, self.config)

    def _current_marginal_rate(self, s: GTBState) -> NDArray[np.float64]:
        return self.tax.marginal_rate(s, s.total_coin - s.last_coin)

    def _head(self, s: GTBState) -> NDArray[np.float64]:
        """(4,) time / T, is-tax-day, is-first-day, cycle position / period."""
        pos, period = s.tax_cycle_pos, self.config.tax_period
        return np.array([s.timestep / self._order.shape[0], float(pos >= period), float(pos == 1), pos / period])

    def _time_and_tax(self, s: GTBState) -> NDArray[np.float64]:
        """(B, 4 + N + n_brackets): time, tax-day flags, phase, sorted last incomes, rates in force."""
        head = np.broadcast_to(self._head(s), (self.n_envs, 4))
        return np.concatenate([head, self._income_obs, s.rates], axis=-1)

    def _observe(self, s: GTBState) -> GTBObservation:
        """Observations and masks of state ``s``; keeps a copy of the masks, which the rules read."""
        obs = self.observer.observe(s, self._head(s), self.market.market_rate(s), self._payment_obs, self._income_obs)
        self._mask = obs.action_mask.copy()  # the caller may modify the returned array
        return obs

    def _result(self, reward: NDArray[np.float64], total: NDArray[np.float64], done: bool) -> GTBStep:
        """The step's outputs; ``total`` is the total coin of the state (inventory + escrow)."""
        s = self._require_state()
        obs = self._observe(s)
        prod, eq = self._metrics(total)
        return GTBStep(
            obs=obs,
            reward=reward,
            done=done,
            coin=total,
            coin_pre_tax=s.coin_pre_tax.copy(),
            labour=s.labour.copy(),
            income=s.coin_pre_tax - s.last_coin if not s.tax_enacted else s.last_income.copy(),
            tax_paid=s.tax_paid.copy(),
            lump_sum=s.lump_sum.copy(),
            marginal_rates=s.rates.copy(),
            tax_enacted=s.tax_enacted,
            productivity=prod.copy(),
            equality=eq.copy(),
            houses_built=s.houses_built.copy(),
            trades=s.trades.copy(),
        )

    def _metrics(self, total: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(productivity, equality) of total coin ``total``, reused while it stays the same.

        Total coin (inventory + escrow) changes only with builds, trades and taxes, so most steps reuse the
        previous metrics instead of recomputing them (equality alone is about a tenth of a step).
        """
        if self._metrics_of is None or not (total == self._metrics_of[0]).all():
            self._metrics_of = (total.copy(), productivity(total), equality(total))  # the caller gets total
        return self._metrics_of[1], self._metrics_of[2]


def orders_summary(sim: BatchedGTB, env_index: int = 0) -> list[dict[str, Any]]:
    """Open orders of one world as dicts (resource, side, agent, price, placed_at step): for tests and debugging."""
    s = sim._require_state()
    out = []
    for r, res in enumerate(RESOURCES):
        for i in range(sim.n_agents):
            for k in range(sim.config.max_orders):
                kind = int(s.order_kind[env_index, r, i, k])
                if kind != NO_ORDER:
                    out.append({"resource": res, "side": "bid" if kind == BID else "ask", "agent": i,
                                "price": int(s.order_price[env_index, r, i, k]),
                                "placed_at": int(s.order_created[env_index, r, i, k])})
    return out


def gym_seed(seed: Any) -> int:
    """``seed`` as an ``int`` if it is a Python or NumPy integer, else Gymnasium's seed error.

    Raises ``gymnasium.error.Error`` with the message of ``gymnasium.utils.seeding.np_random``, so a bad seed
    reads the same as in the other envs (which pass theirs to it); unlike it, a ``bool`` is refused too.
    Negative seeds are left to ``np_random``.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise error.Error(f"Seed must be a python integer, actual type: {type(seed)}")
    return int(seed)


def _check_rate_numbers(name: str, rates: Any) -> None:
    """Raise ``ValueError`` naming the first rate (bracket, and world for a 2-D batch) that is not a real number.

    ``np.asarray(rates, dtype=float)`` would silently read ``"0.1"`` as 0.1 and ``True`` as 1.0; shapes are
    checked later.
    """
    arr = np.asarray(rates, dtype=object) if isinstance(rates, (list, tuple)) else np.asarray(rates)
    if arr.dtype.kind in "iuf" or arr.ndim not in (1, 2):
        return
    for index, rate in np.ndenumerate(arr):
        if np.asarray(rate).dtype.kind not in "iuf":
            where = f"bracket {index[-1]}" if arr.ndim == 1 else f"world {index[0]}, bracket {index[1]}"
            raise ValueError(f"{name}: the rate of {where} must be a real number, got {rate!r} "
                             f"({type(rate).__name__})")
