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
from numpy.typing import NDArray

from incentive_envs.economics import collect_and_redistribute
from incentive_envs.gtb.config import GTBConfig
from incentive_envs.gtb.layout import MapLayout

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
_DR: Final = np.array([0, 0, -1, 1], dtype=np.int64)  # row offset of each move
_DC: Final = np.array([-1, 1, 0, 0], dtype=np.int64)  # column offset of each move


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
    def market_start(self) -> int:
        return 2

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
    """Mutable state of B worlds with N agents, R = 2 resources and K = ``max_orders`` order slots.

    Coin amounts are float64 (payments and taxes are fractional); resources are counted in float64 too so that
    inventory arithmetic never mixes dtypes.
    """

    resource: NDArray[np.int8]  # (B, R, H, W) 1 where a unit lies on the tile
    owner: NDArray[np.int8]  # (B, H, W) house owner index, -1 for no house
    occupant: NDArray[np.int8]  # (B, H, W) agent index standing on the tile, -1 for none
    pos: NDArray[np.int64]  # (B, N, 2) row, column
    coin: NDArray[np.float64]  # (B, N) inventory coin
    goods: NDArray[np.float64]  # (B, N, R) inventory stone, wood
    escrow_coin: NDArray[np.float64]  # (B, N) coin locked in open bids
    escrow_goods: NDArray[np.float64]  # (B, N, R) units locked in open asks
    labour: NDArray[np.float64]  # (B, N) cumulative labour
    payment: NDArray[np.float64]  # (B, N) build payment of each agent this episode
    order_kind: NDArray[np.int8]  # (B, R, N, K) NO_ORDER, BID or ASK
    order_price: NDArray[np.int64]  # (B, R, N, K)
    order_age: NDArray[np.int64]  # (B, R, N, K) steps the order has rested (its "lifetime")
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
    timestep: int = 0
    tax_cycle_pos: int = 1
    tax_enacted: bool = False

    @property
    def total_coin(self) -> NDArray[np.float64]:
        """Inventory plus escrowed coin: what utility, income and the social metrics are computed on."""
        return self.coin + self.escrow_coin


class Build:
    """Build a house on the agent's own tile: needs >= 1 stone and >= 1 wood in inventory and a tile without
    resource or landmark (house, water, source block). Pays the agent's build payment and costs labour.

    Agents are on distinct tiles and building changes only the builder's tile and inventory, so Foundation's
    random processing order cannot change the outcome; all builders are handled at once.
    """

    def __init__(self, config: GTBConfig, layout: MapLayout) -> None:
        self.labour = config.build_labour
        self.landmark = (layout.stone | layout.wood | layout.water).copy()

    def can_build(self, s: GTBState) -> NDArray[np.bool_]:
        """(B, N) whether each agent could build where it stands."""
        r, c = s.pos[..., 0], s.pos[..., 1]
        b = np.arange(s.pos.shape[0])[:, None]
        free = ~self.landmark[r, c] & (s.owner[b, r, c] < 0)
        return free & (s.goods[..., STONE] >= 1) & (s.goods[..., WOOD] >= 1)

    def step(self, s: GTBState, actions: NDArray[np.int64]) -> None:
        build = (actions == 1) & self.can_build(s)
        if not build.any():
            return
        b, i = np.nonzero(build)
        s.goods[b, i] -= 1.0
        s.owner[b, s.pos[b, i, 0], s.pos[b, i, 1]] = i
        s.coin[b, i] += s.payment[b, i]
        s.labour[b, i] += self.labour


class ContinuousDoubleAuction:
    """Foundation's continuous double auction for stone and wood (method.md §3.3.10).

    - Creation: each market action creates one order if the agent has fewer than ``max_orders`` open orders
      (bids + asks) for that resource and, for a bid, inventory coin >= price (the price goes to escrow), or,
      for an ask, >= 1 unit in inventory (the unit goes to escrow). Each order costs ``order_labour``.
    - Matching, per resource: the best bid (highest price, then oldest, then lowest agent index) of a buyer not
      yet ruled out meets the best ask of another agent (lowest price, then oldest, then lowest index). If the
      bid price reaches the ask price they trade at the price of the earlier order (the ask's when both are
      equally old); otherwise the buyer is ruled out for this step. Repeat until no buyer is left.
    - Expiry: every resting order ages by one; one older than ``order_duration`` is refunded from escrow.
    """

    def __init__(self, config: GTBConfig, n_agents: int) -> None:
        self.cfg = config
        self.n_agents = n_agents
        self.prices = np.arange(config.n_prices)
        # Sort keys: price dominates age, age dominates agent index (ages are <= order_duration when matching).
        self._age_span = config.order_duration + 2
        self._price_span = self._age_span * n_agents

    def n_orders(self, s: GTBState) -> NDArray[np.int64]:
        """(B, R, N) open orders per agent and resource."""
        return (s.order_kind != NO_ORDER).sum(-1)

    def step(self, s: GTBState, actions: NDArray[np.int64]) -> None:
        s.price_history *= self.cfg.price_history_decay
        self._create(s, actions)
        if self._any_crossing(s):
            self._match(s)
        self._expire(s)

    def _create(self, s: GTBState, actions: NDArray[np.int64]) -> None:
        p = self.cfg.n_prices
        rel = actions - 2
        market = (rel >= 0) & (rel < 4 * p)
        if not market.any():
            return
        b, i = np.nonzero(market)
        rel = rel[b, i]
        r, rest = np.divmod(rel, 2 * p)
        is_ask, price = np.divmod(rest, p)
        is_ask = is_ask.astype(bool)
        kinds = s.order_kind[b, r, i]  # (M, K)
        room = (kinds != NO_ORDER).sum(-1) < self.cfg.max_orders
        afford = np.where(is_ask, s.goods[b, i, r] >= 1, s.coin[b, i] >= price)
        ok = room & afford
        if not ok.any():
            return
        b, i, r, price, is_ask, kinds = b[ok], i[ok], r[ok], price[ok], is_ask[ok], kinds[ok]
        slot = np.argmin(kinds != NO_ORDER, axis=-1)  # first free slot
        s.order_kind[b, r, i, slot] = np.where(is_ask, ASK, BID)
        s.order_price[b, r, i, slot] = price
        s.order_age[b, r, i, slot] = 0
        coin = np.where(is_ask, 0.0, price)
        s.coin[b, i] -= coin
        s.escrow_coin[b, i] += coin
        unit = is_ask.astype(np.float64)
        s.goods[b, i, r] -= unit
        s.escrow_goods[b, i, r] += unit
        s.labour[b, i] += self.cfg.order_labour

    def _any_crossing(self, s: GTBState) -> bool:
        """Cheap pre-check: does any book hold a bid priced at or above some ask (owners ignored)?"""
        bids = np.where(s.order_kind == BID, s.order_price, -1).max(axis=(2, 3))
        asks = np.where(s.order_kind == ASK, s.order_price, self.cfg.n_prices).min(axis=(2, 3))
        return bool((bids >= asks).any())

    def _match(self, s: GTBState) -> None:
        bsz, n_res, n, k = s.order_kind.shape
        kind = s.order_kind.reshape(bsz * n_res, n * k)  # one row per (world, resource) book; views
        price = s.order_price.reshape(bsz * n_res, n * k)
        age = s.order_age.reshape(bsz * n_res, n * k)
        owner = np.repeat(np.arange(n), k)[None, :]
        rows = np.arange(bsz * n_res)
        ruled_out = np.zeros((bsz * n_res, n), dtype=bool)
        while True:
            bid_ok = (kind == BID) & ~ruled_out[rows[:, None], owner]
            has_bid = bid_ok.any(-1)
            if not has_bid.any():
                return
            bid_key = np.where(bid_ok, price * self._price_span + age * n + (n - 1 - owner), -1)
            best_bid = bid_key.argmax(-1)
            buyer = best_bid // k
            ask_ok = (kind == ASK) & (owner != buyer[:, None])
            ask_key = np.where(ask_ok, price * self._price_span - age * n + owner, np.iinfo(np.int64).max)
            best_ask = ask_key.argmin(-1)
            bid_price, ask_price = price[rows, best_bid], price[rows, best_ask]
            trade = has_bid & ask_ok[rows, best_ask] & (bid_price >= ask_price)
            ruled_out[rows[has_bid & ~trade], buyer[has_bid & ~trade]] = True
            if trade.any():
                self._settle(s, rows[trade], best_bid[trade], best_ask[trade], kind, price, age)

    def _settle(
        self,
        s: GTBState,
        rows: NDArray[np.int64],
        bid_slot: NDArray[np.int64],
        ask_slot: NDArray[np.int64],
        kind: NDArray[np.int8],
        price: NDArray[np.int64],
        age: NDArray[np.int64],
    ) -> None:
        k = s.order_kind.shape[-1]
        b, r = np.divmod(rows, s.order_kind.shape[1])
        buyer, seller = bid_slot // k, ask_slot // k
        bid_price, ask_price = price[rows, bid_slot], price[rows, ask_slot]
        # The earlier order sets the price; a bid placed no earlier than the ask pays the ask price.
        paid = np.where(age[rows, bid_slot] <= age[rows, ask_slot], ask_price, bid_price)
        s.escrow_goods[b, seller, r] -= 1.0
        s.goods[b, buyer, r] += 1.0
        # One world can trade stone and wood in the same round with the same agents: accumulate with add.at.
        np.add.at(s.escrow_coin, (b, buyer), -bid_price)
        np.add.at(s.coin, (b, buyer), bid_price - paid)
        np.add.at(s.coin, (b, seller), paid)
        s.price_history[b, r, paid] += 1.0
        kind[rows, bid_slot] = NO_ORDER
        kind[rows, ask_slot] = NO_ORDER

    def _expire(self, s: GTBState) -> None:
        live = s.order_kind != NO_ORDER
        s.order_age += live
        expired = live & (s.order_age > self.cfg.order_duration)
        if not expired.any():
            return
        bids = expired & (s.order_kind == BID)
        asks = expired & (s.order_kind == ASK)
        refund = np.where(bids, s.order_price, 0).sum(axis=(1, 3)).astype(np.float64)  # (B, N)
        s.coin += refund
        s.escrow_coin -= refund
        units = asks.sum(-1).transpose(0, 2, 1).astype(np.float64)  # (B, N, R)
        s.goods += units
        s.escrow_goods -= units
        s.order_kind[expired] = NO_ORDER

    def books(self, s: GTBState) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-agent price histograms of open orders: ``(bids, asks)``, each (B, R, N, P)."""
        onehot = s.order_price[..., None] == self.prices  # (B, R, N, K, P)
        bids = (onehot & (s.order_kind == BID)[..., None]).sum(3)
        asks = (onehot & (s.order_kind == ASK)[..., None]).sum(3)
        return bids.astype(np.float64), asks.astype(np.float64)

    def market_rate(self, s: GTBState) -> NDArray[np.float64]:
        """(B, R) mean trade price under the decayed price history (0 before any trade)."""
        total = s.price_history.sum(-1)
        return (s.price_history @ self.prices.astype(np.float64)) / np.maximum(0.001, total)


class Gather:
    """Moves and collection (method.md §3.3.10).

    Agents are processed in a random order (drawn per step): a move to an in-bounds tile that is not water,
    not another agent's house and not occupied *at that moment* succeeds and costs ``move_labour``. Afterwards
    every agent collects any resource on its tile (+1 unit, ``collect_labour``), moved or not. Collection after
    all moves equals Foundation's per-agent collection because no two agents share a tile.
    """

    def __init__(self, config: GTBConfig, layout: MapLayout) -> None:
        self.cfg = config
        self.water = layout.water
        self.h, self.w = layout.shape

    def step(self, s: GTBState, actions: NDArray[np.int64], order: NDArray[np.int64], move_start: int) -> None:
        direction = actions - move_start
        moving = (direction >= 0) & (direction < 4)
        if moving.any():
            self._move(s, moving, direction, order)
        self._collect(s)

    def _move(
        self, s: GTBState, moving: NDArray[np.bool_], direction: NDArray[np.int64], order: NDArray[np.int64]
    ) -> None:
        barange = np.arange(s.pos.shape[0])
        for k in range(order.shape[1]):
            agent = order[:, k]
            sel = moving[barange, agent]
            if not sel.any():
                continue
            b, i = barange[sel], agent[sel]
            d = direction[b, i]
            r0, c0 = s.pos[b, i, 0], s.pos[b, i, 1]
            r1, c1 = r0 + _DR[d], c0 + _DC[d]
            inside = (r1 >= 0) & (r1 < self.h) & (c1 >= 0) & (c1 < self.w)
            r1c, c1c = np.clip(r1, 0, self.h - 1), np.clip(c1, 0, self.w - 1)
            house = s.owner[b, r1c, c1c]
            ok = inside & ~self.water[r1c, c1c] & ((house < 0) | (house == i)) & (s.occupant[b, r1c, c1c] < 0)
            if not ok.any():
                continue
            b, i, r0, c0, r1, c1 = b[ok], i[ok], r0[ok], c0[ok], r1[ok], c1[ok]
            s.occupant[b, r0, c0] = -1
            s.occupant[b, r1, c1] = i
            s.pos[b, i, 0], s.pos[b, i, 1] = r1, c1
            s.labour[b, i] += self.cfg.move_labour

    def _collect(self, s: GTBState) -> None:
        b = np.arange(s.pos.shape[0])[:, None]
        r, c = s.pos[..., 0], s.pos[..., 1]
        here = s.resource[b, :, r, c]  # (B, N, R)
        if not here.any():
            return
        s.goods += here
        s.labour += self.cfg.collect_labour * here.sum(-1)
        s.resource[b, :, r, c] = 0

    def move_mask(self, s: GTBState) -> NDArray[np.bool_]:
        """(B, N, 4) whether each move targets an in-bounds, accessible, currently unoccupied tile."""
        bsz, n = s.pos.shape[:2]
        r1 = s.pos[..., 0, None] + _DR  # (B, N, 4)
        c1 = s.pos[..., 1, None] + _DC
        inside = (r1 >= 0) & (r1 < self.h) & (c1 >= 0) & (c1 < self.w)
        r1, c1 = np.clip(r1, 0, self.h - 1), np.clip(c1, 0, self.w - 1)
        b = np.arange(bsz)[:, None, None]
        house = s.owner[b, r1, c1]
        me = np.arange(n)[None, :, None]
        return inside & ~self.water[r1, c1] & ((house < 0) | (house == me)) & (s.occupant[b, r1, c1] < 0)


class PeriodicBracketTax:
    """Foundation's periodic bracket tax with lump-sum redistribution (method.md §3.3.2, §3.3.10).

    At cycle position 1 (steps 1, 11, ...) rates set from outside (:meth:`BatchedGTB.set_tax_rates`) come into
    force; without new rates the previous ones stay. At the end of every period (steps 10, 20, ...) each agent's
    income (total coin minus total coin after the last enactment) is taxed bracket by bracket, at most its
    inventory coin is collected (escrow is never touched), and the revenue is split equally among all agents.
    The arithmetic is :func:`incentive_envs.economics.collect_and_redistribute`.
    """

    def __init__(self, config: GTBConfig) -> None:
        self.cfg = config
        self.cutoffs = np.asarray(config.tax_cutoffs, dtype=np.float64)

    def marginal_rate(self, s: GTBState, income: NDArray[np.float64]) -> NDArray[np.float64]:
        """(B, N) rate in force on the bracket that ``income`` falls into; 0 for negative income."""
        bracket = np.searchsorted(self.cutoffs, income, side="right") - 1
        rate = np.take_along_axis(s.rates, np.maximum(bracket, 0), axis=-1)
        return np.where(income < 0, 0.0, rate)

    def step(self, s: GTBState) -> None:
        if s.tax_cycle_pos == 1 and s.has_pending.any():
            s.rates[s.has_pending] = s.pending_rates[s.has_pending]
            s.has_pending[:] = False
        s.coin_pre_tax = s.total_coin
        s.tax_enacted = s.tax_cycle_pos >= self.cfg.tax_period
        if s.tax_enacted:
            income = s.coin_pre_tax - s.last_coin
            paid, share = collect_and_redistribute(income, s.rates[:, None, :], self.cutoffs, available=s.coin)
            s.coin -= paid  # paid <= coin, so inventory coin stays >= 0 exactly
            s.coin += share
            s.tax_paid, s.lump_sum = paid, share
            s.last_income = income
            s.last_marginal_rate = self.marginal_rate(s, income)
            s.last_coin = s.total_coin
            s.tax_cycle_pos = 0
        else:
            s.tax_paid = np.zeros_like(s.coin)
            s.lump_sum = np.zeros_like(s.coin)
        s.tax_cycle_pos += 1


def regenerate(s: GTBState, source_index: NDArray[np.int64], regrow: NDArray[np.bool_]) -> None:
    """Regrow resources: ``regrow`` (B, S) marks which of the S source tiles (flat indices into (R, H, W))
    regrow this step; a tile that still holds its unit is unaffected, and a standing agent does not block it.
    """
    flat = s.resource.reshape(s.resource.shape[0], -1)
    flat[:, source_index] |= regrow
