"""The rules of Gather-Trade-Build, written once and vectorised over a batch of B worlds.

The batched engine (:class:`incentive_envs.gtb.engine.BatchedGTB`) holds one :class:`GTBState` and calls the
components in Foundation's order each step (method.md §3.3.10):

1. :class:`Build` — 1 wood + 1 stone on an empty tile → a house and the agent's build payment;
2. :class:`ContinuousDoubleAuction` — order creation, matching, expiry;
3. :class:`Gather` — moves in a random agent order, then collection;
4. :class:`PeriodicBracketTax` — rates set at cycle position 1, taxes enacted at the end of every period;
5. :func:`regenerate` — empty source tiles regrow.

Every array has the batch on axis 0; agents are on axis 1 (or after the resource axis for order books).
Resources are indexed ``STONE = 0``, ``WOOD = 1`` everywhere (the action layout lists stone first).
"""

from __future__ import annotations

import dataclasses
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from incentive_envs.gtb import kernels
from incentive_envs.gtb.config import GTBConfig
from incentive_envs.gtb.layout import MapLayout
from incentive_envs.gtb.rewards import period_tax

__all__ = [
    "ASK",
    "BID",
    "MOVES",
    "NO_ORDER",
    "RESOURCES",
    "STONE",
    "WOOD",
    "ActionLayout",
    "Build",
    "ContinuousDoubleAuction",
    "GTBState",
    "Gather",
    "PeriodicBracketTax",
    "regenerate",
]

STONE: Final = 0
WOOD: Final = 1
RESOURCES: Final = ("stone", "wood")
NO_ORDER: Final = 0
BID: Final = 1
ASK: Final = 2
MOVES: Final = ("left", "right", "up", "down")


@dataclasses.dataclass(frozen=True)
class ActionLayout:
    """Index layout of the agent's ``Discrete`` action (method.md §3.3.4; 50 actions with prices 0..10).

    ``0`` no-op, ``1`` build, then for stone and wood in turn: buy at price ``0..P-1``, sell at ``0..P-1``;
    then move left, right, up, down.
    """

    n_prices: int

    @property
    def n(self) -> int:
        return 2 + 4 * self.n_prices + 4

    @property
    def move_start(self) -> int:
        return 2 + 4 * self.n_prices

    def buy(self, resource: int, price: int) -> int:
        return 2 + 2 * self.n_prices * resource + price

    def sell(self, resource: int, price: int) -> int:
        return 2 + 2 * self.n_prices * resource + self.n_prices + price

    def move(self, direction: int) -> int:
        return self.move_start + direction

    def describe(self, action: int) -> str:
        """Human-readable name of an action index (for rendering and error messages)."""
        if action == 0:
            return "noop"
        if action == 1:
            return "build"
        if action >= self.move_start:
            return f"move_{MOVES[action - self.move_start]}"
        rel = action - 2
        resource, rest = divmod(rel, 2 * self.n_prices)
        side, price = divmod(rest, self.n_prices)
        return f"{'sell' if side else 'buy'}_{RESOURCES[resource]}@{price}"


@dataclasses.dataclass
class GTBState:
    """Mutable state of B worlds with N agents, R = 2 resources, K = ``max_orders`` slots and P prices.

    Per-agent amounts live in one float64 array ``agent`` (B, N, 7) with columns coin, stone, wood, escrow coin,
    escrow stone, escrow wood, labour; the properties below are views into it, so in-place updates through
    them change the state. Coin is fractional (payments, taxes); resources are counted in float64 as well.
    """

    resource: NDArray[np.int8]  # (B, R, H, W) 1 where a unit lies on the tile
    owner: NDArray[np.int8]  # (B, H, W) house owner index, -1 for no house
    occupant: NDArray[np.int8]  # (B, H, W) agent index standing on the tile, -1 for none
    pos: NDArray[np.int64]  # (B, N, 2) row, column
    agent: NDArray[np.float64]  # (B, N, 7) see the class docstring
    payment: NDArray[np.float64]  # (B, N) build payment of each agent this episode
    order_kind: NDArray[np.int8]  # (B, R, N, K) NO_ORDER, BID or ASK
    order_price: NDArray[np.int64]  # (B, R, N, K)
    order_created: NDArray[np.int64]  # (B, R, N, K) step at which the order was placed
    my_orders: NDArray[np.float64]  # (B, N, R, 2, P) open bids (side 0) and asks (side 1) per price
    price_history: NDArray[np.float64]  # (B, R, P) decayed count of trades at each price
    rates: NDArray[np.float64]  # (B, n_brackets) marginal rates in force
    pending_rates: NDArray[np.float64]  # (B, n_brackets) rates for the next period
    has_pending: NDArray[np.bool_]  # (B,) whether pending_rates is set
    last_coin: NDArray[np.float64]  # (B, N) total coin right after the last enactment (or reset)
    last_income: NDArray[np.float64]  # (B, N) income taxed at the last enactment
    last_marginal_rate: NDArray[np.float64]  # (B, N) marginal rate at that income
    tax_paid: NDArray[np.float64]  # (B, N) tax collected this step (0 off enactment steps)
    lump_sum: NDArray[np.float64]  # (B, N) lump sum received this step
    coin_pre_tax: NDArray[np.float64]  # (B, N) total coin after the components, before this step's tax
    houses_built: NDArray[np.float64]  # (B, N) houses built this episode
    trades: NDArray[np.float64]  # (B, N) trades this episode (units bought plus units sold)
    timestep: int = 0
    tax_cycle_pos: int = 1
    tax_enacted: bool = False

    @property
    def coin(self) -> NDArray[np.float64]:
        """(B, N) inventory coin (view)."""
        return self.agent[..., 0]

    @property
    def goods(self) -> NDArray[np.float64]:
        """(B, N, R) inventory stone, wood (view)."""
        return self.agent[..., 1:3]

    @property
    def escrow_coin(self) -> NDArray[np.float64]:
        """(B, N) coin locked in open bids (view)."""
        return self.agent[..., 3]

    @property
    def escrow_goods(self) -> NDArray[np.float64]:
        """(B, N, R) units locked in open asks (view)."""
        return self.agent[..., 4:6]

    @property
    def labour(self) -> NDArray[np.float64]:
        """(B, N) cumulative labour (view)."""
        return self.agent[..., 6]

    @property
    def my_bids(self) -> NDArray[np.float64]:
        """(B, N, R, P) open bids of each agent per price (view)."""
        return self.my_orders[..., 0, :]

    @property
    def my_asks(self) -> NDArray[np.float64]:
        """(B, N, R, P) open asks of each agent per price (view)."""
        return self.my_orders[..., 1, :]

    @property
    def total_coin(self) -> NDArray[np.float64]:
        """Inventory plus escrowed coin: what utility, income and the social metrics are computed on."""
        return self.agent[..., 0] + self.agent[..., 3]


class Build:
    """Build a house on the agent's own tile: needs >= 1 stone and >= 1 wood in inventory and a tile without
    resource or landmark (house, water, source block). Pays the agent's build payment and costs labour.

    Agents are on distinct tiles and building changes only the builder's tile and inventory, so Foundation's
    random processing order cannot change the outcome; all builders are handled at once.
    """

    def __init__(self, config: GTBConfig) -> None:
        self.labour = config.build_labour

    def step(self, s: GTBState, actions: NDArray[np.int64], mask: NDArray[np.int8]) -> None:
        """``mask`` is the (B, N, A) action mask of this step's start state: its build entry
        (:func:`incentive_envs.gtb.kernels.observe`) is exactly the rule above."""
        s.houses_built += (actions == 1) & (mask[..., 1] != 0)
        kernels.build_step(actions, mask, s.owner, s.pos, s.agent, s.payment, self.labour)


class ContinuousDoubleAuction:
    """Foundation's continuous double auction for stone and wood (method.md §3.3.10).

    - Creation: each market action creates one order if the agent has fewer than ``max_orders`` open orders
      (bids + asks) for that resource and, for a bid, inventory coin >= price (the price goes to escrow), or,
      for an ask, >= 1 unit in inventory (the unit goes to escrow). Each order costs ``order_labour``.
    - Matching, per resource: the best bid (highest price, then oldest, then lowest agent index) of a buyer not
      yet ruled out meets the best ask of another agent (lowest price, then oldest, then lowest index). If the
      bid price reaches the ask price they trade at the price of the earlier order (the ask's when both are
      equally old); otherwise the buyer is ruled out for this step. Repeat until no buyer is left. (The tie
      order among equal price and age is Foundation's list order: orders of one step are placed in agent
      index order and its sorts are stable.)
    - Expiry: an order that has rested through ``order_duration`` steps after the one it was placed in is
      refunded from escrow at the end of the step (Foundation: lifetime > duration after the increment).

    The mechanics are one compiled loop over the worlds, :func:`incentive_envs.gtb.kernels.market_step`; matching
    runs only on books whose best bid reaches their best ask (a handful of orders each).
    """

    def __init__(self, config: GTBConfig, n_agents: int) -> None:
        self.cfg = config
        self.n_agents = n_agents
        p = config.n_prices
        self.prices = np.arange(p)
        self.prices_f = self.prices.astype(np.float64)
        # Decoding tables of the action index: market flag, resource, side (1 = ask), price, and the change of
        # the agent's (coin, stone, wood, escrow coin, escrow stone, escrow wood, labour) when the order is placed.
        n_act = 2 + 4 * p + 4
        a = np.arange(n_act)
        rel = np.clip(a - 2, 0, 4 * p - 1)
        self._is_market = (a >= 2) & (a < 2 + 4 * p)
        self._lut_resource, rest = np.divmod(rel, 2 * p)
        self._lut_ask, self._lut_price = np.divmod(rest, p)
        delta = np.zeros((n_act, 7))
        bid = self._lut_ask == 0
        delta[bid, 0], delta[bid, 3] = -self._lut_price[bid], self._lut_price[bid]
        ask_rows = np.flatnonzero(~bid)
        delta[ask_rows, 1 + self._lut_resource[ask_rows]] = -1.0
        delta[ask_rows, 4 + self._lut_resource[ask_rows]] = 1.0
        delta[:, 6] = config.order_labour
        delta[~self._is_market] = 0.0
        self._lut_delta = delta

    def step(self, s: GTBState, actions: NDArray[np.int64], mask: NDArray[np.int8]) -> None:
        """``mask`` is the (B, N, A) action mask of this step's start state: for a market action its entry is
        exactly the creation rule above (order room, and coin for a bid or a unit for an ask)."""
        kernels.market_step(actions, mask, s.order_kind, s.order_price, s.order_created, s.agent, s.my_orders,
                            s.price_history, s.trades, s.timestep, self.cfg.price_history_decay,
                            self.cfg.order_duration, self._is_market, self._lut_resource, self._lut_ask,
                            self._lut_price, self._lut_delta)

    def market_rate(self, s: GTBState) -> NDArray[np.float64]:
        """(B, R) mean trade price under the decayed price history (0 before any trade)."""
        total = s.price_history.sum(-1)
        return (s.price_history @ self.prices_f) / np.maximum(0.001, total)


class Gather:
    """Moves and collection (method.md §3.3.10).

    Agents are processed in a random order (drawn per step): a move to an in-bounds tile that is not water,
    not another agent's house and not occupied *at that moment* succeeds and costs ``move_labour``. Afterwards
    every agent collects any resource on its tile (+1 unit, ``collect_labour``), moved or not. Collection after
    all moves equals Foundation's per-agent collection because no two agents share a tile. The mechanics are
    :func:`incentive_envs.gtb.kernels.gather_step`; the move mask (:func:`incentive_envs.gtb.kernels.observe`)
    allows a move to an in-bounds, non-water tile without another agent or another agent's house.
    """

    def __init__(self, config: GTBConfig, layout: MapLayout) -> None:
        self.cfg = config
        self.water = layout.water

    def step(self, s: GTBState, actions: NDArray[np.int64], order: NDArray[np.int64], move_start: int) -> None:
        """Apply moves (``order`` is each world's (B, N) processing order this step), then collect."""
        kernels.gather_step(actions, order, move_start, s.occupant, s.owner, s.pos, s.agent, s.resource, self.water,
                            self.cfg.move_labour, self.cfg.collect_labour)


class PeriodicBracketTax:
    """Foundation's periodic bracket tax with lump-sum redistribution (method.md §3.3.2, §3.3.10).

    At cycle position 1 (steps 1, 11, ...) rates set from outside (:meth:`BatchedGTB.set_tax_rates`) come into
    force; without new rates the previous ones stay. At the end of every period (steps 10, 20, ...) each agent's
    income (total coin minus total coin after the last enactment) is taxed bracket by bracket, at most its
    inventory coin is collected (escrow is never touched), and the revenue is split equally among all agents.
    The arithmetic is :func:`incentive_envs.gtb.rewards.period_tax`, the function a designer rebuilding the
    agents' rewards calls too.
    """

    def __init__(self, config: GTBConfig) -> None:
        self.cfg = config
        self.cutoffs = np.asarray(config.tax_cutoffs, dtype=np.float64)
        self._zero: NDArray[np.float64] = np.zeros((0, 0))

    def _zeros(self, s: GTBState) -> NDArray[np.float64]:
        """A shared read-only (B, N) zero array for the steps without enactment."""
        if self._zero.shape != s.coin.shape:
            self._zero = np.zeros(s.coin.shape)
            self._zero.setflags(write=False)
        return self._zero

    def marginal_rate(self, s: GTBState, income: NDArray[np.float64]) -> NDArray[np.float64]:
        """(B, N) rate in force on the bracket that ``income`` falls into; 0 for negative income."""
        return marginal_rate(income, s.rates, self.cutoffs)

    def step(self, s: GTBState) -> None:
        if s.tax_cycle_pos == 1 and s.has_pending.any():
            s.rates[s.has_pending] = s.pending_rates[s.has_pending]
            s.has_pending[:] = False
        s.coin_pre_tax = s.total_coin
        s.tax_enacted = s.tax_cycle_pos >= self.cfg.tax_period
        if s.tax_enacted:
            income = s.coin_pre_tax - s.last_coin
            paid, share = period_tax(income, s.rates, s.coin, self.cfg)
            s.agent[..., 0] -= paid  # paid <= coin, so inventory coin stays >= 0 exactly
            s.agent[..., 0] += share
            s.tax_paid, s.lump_sum = paid, share
            s.last_income = income
            s.last_marginal_rate = self.marginal_rate(s, income)
            s.last_coin = s.total_coin
            s.tax_cycle_pos = 0
        else:
            s.tax_paid = s.lump_sum = self._zeros(s)
        s.tax_cycle_pos += 1


def marginal_rate(income: ArrayLike, rates: ArrayLike, cutoffs: ArrayLike) -> NDArray[np.float64]:
    """Marginal rate at ``income``: the rate of the bracket it falls into (``cut_b <= income < cut_{b+1}``),
    0 for negative income (Foundation's ``PeriodicBracketTax.marginal_rate``).

    Args:
        income: (B, N) incomes.
        rates: (B, n_brackets) rates, one row per world.
        cutoffs: (n_brackets,) bracket lower edges.
    """
    inc = np.asarray(income, dtype=np.float64)
    r = np.asarray(rates, dtype=np.float64)
    bracket = np.searchsorted(np.asarray(cutoffs, dtype=np.float64), inc, side="right") - 1  # -1 if negative
    rate = r[np.arange(r.shape[0])[:, None], bracket]
    return np.where(bracket < 0, 0.0, rate)


def regenerate(s: GTBState, source_index: NDArray[np.int64], regrow: NDArray[np.bool_]) -> None:
    """Regrow resources: ``regrow`` (B, S) marks which of the S source tiles (flat indices into (R, H, W))
    regrow this step; a tile that still holds its unit is unaffected, and a standing agent does not block it.
    """
    kernels.regenerate(s.resource.reshape(s.resource.shape[0], -1), source_index, regrow)
