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

from incentive_envs.gtb.config import GTBConfig
from incentive_envs.gtb.layout import MapLayout
from incentive_envs.gtb.rewards import period_tax

__all__ = [
    "ASK",
    "BID",
    "BLOCKED_TILE",
    "FREE_TILE",
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
_DR_LIST: Final = _DR.tolist()
FREE_TILE: Final = 255  # tile code (uint8): walkable, no house; a house holds its owner's index
BLOCKED_TILE: Final = 254  # tile code: water, outside the map, or occupied
_DC_LIST: Final = _DC.tolist()


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

    def __init__(self, config: GTBConfig, layout: MapLayout) -> None:
        self.labour = config.build_labour
        self.buildable = ~(layout.stone | layout.wood | layout.water)  # no source block or water

    def can_build(self, s: GTBState, own_tile: NDArray[np.uint8], has_goods: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """(B, N) whether each agent could build where it stands, given each agent's tile code and whether it
        holds >= 1 unit of each resource (B, N, R)."""
        r, c = s.pos[..., 0], s.pos[..., 1]
        return (own_tile == FREE_TILE) & self.buildable[r, c] & has_goods.all(-1)

    def step(self, s: GTBState, actions: NDArray[np.int64], valid: NDArray[np.bool_]) -> None:
        """``valid`` is the action mask entry of each chosen action, evaluated on this step's start state (the
        mask's build entry is exactly :meth:`can_build`)."""
        build = (actions == 1) & valid
        if not build.any():
            return
        b, i = np.nonzero(build)
        s.agent[b, i, 1:3] -= 1.0
        s.owner[b, s.pos[b, i, 0], s.pos[b, i, 1]] = i
        s.agent[b, i, 0] += s.payment[b, i]
        s.agent[b, i, 6] += self.labour


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

    Creation, expiry and the crossing pre-check are vectorised over worlds; the matching loop itself runs in
    plain Python, only on books whose best bid reaches their best ask (a handful of orders each).
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

    def step(self, s: GTBState, actions: NDArray[np.int64], valid: NDArray[np.bool_]) -> None:
        """``valid`` is the action mask entry of each chosen action on this step's start state: for a market
        action it is exactly the creation rule above (order room, and coin for a bid or a unit for an ask)."""
        s.price_history *= self.cfg.price_history_decay
        # After matching no two orders of different agents cross and expiry only removes orders, so a book
        # can only become matchable through a new order.
        if self._create(s, actions, valid):
            for b, r in self._crossing_books(s):
                self._match_book(s, b, r)
        self._expire(s)

    def _create(self, s: GTBState, actions: NDArray[np.int64], valid: NDArray[np.bool_]) -> bool:
        """Place the valid market orders; returns whether any order was placed."""
        place = self._is_market[actions] & valid
        if not place.any():
            return False
        b, i = np.nonzero(place)
        a = actions[b, i]
        r, is_ask, price = self._lut_resource[a], self._lut_ask[a], self._lut_price[a]
        slot = np.argmin(s.order_kind[b, r, i], axis=-1)  # first free slot (NO_ORDER is 0)
        s.order_kind[b, r, i, slot] = BID + is_ask
        s.order_price[b, r, i, slot] = price
        s.order_created[b, r, i, slot] = s.timestep
        s.agent[b, i] += self._lut_delta[a]
        s.my_orders[b, i, r, is_ask, price] += 1.0
        return True

    def _crossing_books(self, s: GTBState) -> list[tuple[int, int]]:
        """Books (world, resource) whose highest bid is at or above their lowest ask (owners ignored)."""
        book = s.my_orders.sum(1)  # (B, R, 2, P)
        bid_any, ask_any = book[..., 0, :], book[..., 1, :]
        top_bid = np.where(bid_any > 0, self.prices, -1).max(-1)
        low_ask = np.where(ask_any > 0, self.prices, self.cfg.n_prices).min(-1)
        return [(int(b), int(r)) for b, r in zip(*np.nonzero(top_bid >= low_ask))]

    def _match_book(self, s: GTBState, b: int, r: int) -> None:
        kind, price, created = s.order_kind[b, r].tolist(), s.order_price[b, r].tolist(), s.order_created[b, r].tolist()
        bids: list[tuple[int, int, int, int]] = []
        asks: list[tuple[int, int, int, int]] = []
        for i, row in enumerate(kind):
            for k, kd in enumerate(row):
                if kd != NO_ORDER:
                    (bids if kd == BID else asks).append((price[i][k], created[i][k], i, k))
        bids.sort(key=lambda e: (-e[0], e[1], e[2]))  # highest price, oldest, lowest index
        asks.sort(key=lambda e: (e[0], e[1], e[2]))  # lowest price, oldest, lowest index
        ruled_out: set[int] = set()
        while True:
            bid = next((e for e in bids if e[2] not in ruled_out), None)
            if bid is None:
                return
            ask = next((e for e in asks if e[2] != bid[2]), None)
            if ask is None or bid[0] < ask[0]:
                ruled_out.add(bid[2])
                continue
            bids.remove(bid)
            asks.remove(ask)
            self._settle(s, b, r, bid, ask)

    def _settle(self, s: GTBState, b: int, r: int, bid: tuple[int, ...], ask: tuple[int, ...]) -> None:
        bid_price, bid_created, buyer, bid_slot = bid
        ask_price, ask_created, seller, ask_slot = ask
        # The earlier order sets the price; a bid placed no earlier than the ask pays the ask price.
        paid = ask_price if bid_created >= ask_created else bid_price
        row_b, row_s = s.agent[b, buyer], s.agent[b, seller]
        row_s[4 + r] -= 1.0
        row_b[1 + r] += 1.0
        row_b[3] -= bid_price
        row_b[0] += bid_price - paid
        row_s[0] += paid
        s.price_history[b, r, paid] += 1.0
        s.order_kind[b, r, buyer, bid_slot] = NO_ORDER
        s.order_kind[b, r, seller, ask_slot] = NO_ORDER
        s.my_orders[b, buyer, r, 0, bid_price] -= 1.0
        s.my_orders[b, seller, r, 1, ask_price] -= 1.0

    def _expire(self, s: GTBState) -> None:
        cutoff = s.timestep - self.cfg.order_duration
        if cutoff < 1:
            return
        expired = (s.order_created <= cutoff) & (s.order_kind != NO_ORDER)
        if not expired.any():
            return
        b, r, i, k = np.nonzero(expired)
        price = s.order_price[b, r, i, k]
        is_ask = (s.order_kind[b, r, i, k] == ASK).astype(np.int64)
        bid = 1 - is_ask
        np.add.at(s.agent[..., 0], (b, i), bid * price)
        np.add.at(s.agent[..., 3], (b, i), -bid * price)
        np.add.at(s.agent, (b, i, 1 + r), is_ask)
        np.add.at(s.agent, (b, i, 4 + r), -is_ask)
        np.add.at(s.my_orders, (b, i, r, is_ask, price), -1.0)
        s.order_kind[b, r, i, k] = NO_ORDER

    def market_rate(self, s: GTBState) -> NDArray[np.float64]:
        """(B, R) mean trade price under the decayed price history (0 before any trade)."""
        total = s.price_history.sum(-1)
        return (s.price_history @ self.prices_f) / np.maximum(0.001, total)


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
        self._water = layout.water.tolist()
        self.h, self.w = layout.shape
        self._agent_ids = np.arange(config.n_agents, dtype=np.uint8)[None, :, None]

    def step(self, s: GTBState, actions: NDArray[np.int64], order: NDArray[np.int64], move_start: int) -> None:
        """Apply moves (``order`` is each world's (B, N) processing order this step), then collect."""
        direction = actions - move_start
        moving = (direction >= 0) & (direction < 4)
        if moving.any():
            for b in np.flatnonzero(moving.any(1)).tolist():
                self._move_world(s, b, direction[b].tolist(), moving[b].tolist(), order[b].tolist())
        self._collect(s)

    def _move_world(self, s: GTBState, b: int, direction: list[int], moving: list[bool], order: list[int]) -> None:
        """Sequential moves of one world: an agent's move sees the moves of the agents before it."""
        occupant, owner, pos, agent = s.occupant[b], s.owner[b], s.pos[b], s.agent[b]
        for i in order:
            if not moving[i]:
                continue
            r0, c0 = int(pos[i, 0]), int(pos[i, 1])
            r1, c1 = r0 + _DR_LIST[direction[i]], c0 + _DC_LIST[direction[i]]
            if not (0 <= r1 < self.h and 0 <= c1 < self.w) or self._water[r1][c1] or occupant[r1, c1] >= 0:
                continue
            house = owner[r1, c1]
            if house >= 0 and house != i:
                continue
            occupant[r0, c0] = -1
            occupant[r1, c1] = i
            pos[i, 0], pos[i, 1] = r1, c1
            agent[i, 6] += self.cfg.move_labour

    def _collect(self, s: GTBState) -> None:
        b = np.arange(s.pos.shape[0])[:, None]
        r, c = s.pos[..., 0], s.pos[..., 1]
        here = s.resource[b, :, r, c]  # (B, N, R)
        if not here.any():
            return
        s.agent[..., 1:3] += here
        s.agent[..., 6] += self.cfg.collect_labour * here.sum(-1)
        s.resource[b, :, r, c] = 0

    def move_mask(self, s: GTBState, codes: NDArray[np.uint8]) -> NDArray[np.bool_]:
        """(B, N, 4) whether each move targets an in-bounds, accessible, currently unoccupied tile.

        ``codes`` is the (B, H + 2, W + 2) tile-code map padded by one blocked tile, with occupied tiles blocked.
        """
        b = np.arange(codes.shape[0])[:, None, None]
        target = codes[b, s.pos[..., 0, None] + (_DR + 1), s.pos[..., 1, None] + (_DC + 1)]  # (B, N, 4)
        return (target == FREE_TILE) | (target == self._agent_ids)

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
    flat = s.resource.reshape(s.resource.shape[0], -1)
    flat[:, source_index] |= regrow
