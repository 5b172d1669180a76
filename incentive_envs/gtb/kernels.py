"""Numba kernels of Gather-Trade-Build's per-step loops: the market, the moves and collection, the observations.

These loops (order books of a handful of orders, sequential moves, 11x11 crops, 50-entry masks) are too small
for NumPy to pay off: as array code they cost dozens of NumPy calls per step, each far dearer than the work it
does. Here each is one compiled loop over the worlds of a batch. The components of
:mod:`incentive_envs.gtb.components` call them and document the rules; the kernels carry the mechanics only.

Every floating-point operation is the one the rules specify, in the same order (e.g. an expired bid's refund is
added to the coin of its owner in the order (resource, agent, slot), as ``np.add.at`` over ``np.nonzero`` did in
the NumPy engine), so trajectories are bit-for-bit those of the NumPy engine;
``tests/envs/test_gtb_golden.py`` pins them. Float reductions whose NumPy summation order would have to be
copied (the market rate) stay in NumPy and come in as arguments.
"""

from __future__ import annotations

from typing import Final

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ["build_step", "gather_step", "market_step", "observe", "regenerate"]

_NO_ORDER: Final = 0
_BID: Final = 1
_ASK: Final = 2
_DR: Final = np.array([0, 0, -1, 1], dtype=np.int64)  # row offset of move left, right, up, down
_DC: Final = np.array([-1, 1, 0, 0], dtype=np.int64)  # column offset

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def build_step(
    actions: NDArray[np.int64],
    mask: NDArray[np.int8],
    owner: NDArray[np.int8],
    pos: NDArray[np.int64],
    agent: NDArray[np.float64],
    payment: NDArray[np.float64],
    labour: float,
) -> None:
    """Every agent whose action is build (1) and allowed by ``mask`` builds a house where it stands."""
    for b in range(actions.shape[0]):
        for i in range(actions.shape[1]):
            if actions[b, i] == 1 and mask[b, i, 1] != 0:
                agent[b, i, 1] -= 1.0
                agent[b, i, 2] -= 1.0
                owner[b, pos[b, i, 0], pos[b, i, 1]] = i
                agent[b, i, 0] += payment[b, i]
                agent[b, i, 6] += labour


@_jit
def market_step(
    actions: NDArray[np.int64],
    mask: NDArray[np.int8],
    order_kind: NDArray[np.int8],
    order_price: NDArray[np.int64],
    order_created: NDArray[np.int64],
    agent: NDArray[np.float64],
    my_orders: NDArray[np.float64],
    price_history: NDArray[np.float64],
    trades: NDArray[np.float64],
    timestep: int,
    decay: float,
    order_duration: int,
    is_market: NDArray[np.bool_],
    lut_resource: NDArray[np.int64],
    lut_ask: NDArray[np.int64],
    lut_price: NDArray[np.int64],
    lut_delta: NDArray[np.float64],
) -> None:
    """One step of the continuous double auction in every world: decay, creation, matching, expiry.

    ``lut_*`` decode an action index (market flag, resource, 1 for an ask, price, change of the agent's 7
    amounts); see :class:`incentive_envs.gtb.components.ContinuousDoubleAuction` for the rules. Each trade
    adds 1 to the buyer's and the seller's ``trades`` (B, N).
    """
    price_history *= decay
    placed = False
    for b in range(actions.shape[0]):
        for i in range(actions.shape[1]):
            a = actions[b, i]
            if is_market[a] and mask[b, i, a] != 0:
                placed = True
                _place(b, i, lut_resource[a], lut_ask[a], lut_price[a], lut_delta[a], timestep, order_kind,
                       order_price, order_created, agent, my_orders)
    if placed:  # matching and expiry only remove orders, so only a new order can make a book matchable
        for b in range(order_kind.shape[0]):
            for r in range(order_kind.shape[1]):
                if _crossing(my_orders, b, r):
                    _match_book(b, r, order_kind, order_price, order_created, agent, my_orders, price_history,
                                trades)
    if timestep - order_duration >= 1:
        _expire(timestep - order_duration, order_kind, order_price, order_created, agent, my_orders)


@_jit
def _place(
    b: int, i: int, r: int, ask: int, price: int, delta: NDArray[np.float64], timestep: int,
    order_kind: NDArray[np.int8], order_price: NDArray[np.int64], order_created: NDArray[np.int64],
    agent: NDArray[np.float64], my_orders: NDArray[np.float64],
) -> None:
    """Agent i of world b places a bid (``ask`` 0) or an ask at ``price`` for resource r in its first free slot."""
    slot = 0  # argmin of the kinds (NO_ORDER is 0)
    for kk in range(1, order_kind.shape[3]):
        if order_kind[b, r, i, kk] < order_kind[b, r, i, slot]:
            slot = kk
    order_kind[b, r, i, slot] = _BID + ask
    order_price[b, r, i, slot] = price
    order_created[b, r, i, slot] = timestep
    for c in range(agent.shape[2]):
        agent[b, i, c] += delta[c]
    my_orders[b, i, r, ask, price] += 1.0


@_jit
def _expire(
    cutoff: int, order_kind: NDArray[np.int8], order_price: NDArray[np.int64], order_created: NDArray[np.int64],
    agent: NDArray[np.float64], my_orders: NDArray[np.float64],
) -> None:
    """Refund every order placed at or before step ``cutoff`` from escrow, in (world, resource, agent, slot)
    order."""
    n_b, n_res, n, k = order_kind.shape
    for b in range(n_b):
        for r in range(n_res):
            for i in range(n):
                for kk in range(k):
                    kind = order_kind[b, r, i, kk]
                    if kind == _NO_ORDER or order_created[b, r, i, kk] > cutoff:
                        continue
                    price = order_price[b, r, i, kk]
                    is_ask = 1 if kind == _ASK else 0
                    bid = 1 - is_ask
                    agent[b, i, 0] += bid * price
                    agent[b, i, 3] += -bid * price
                    agent[b, i, 1 + r] += is_ask
                    agent[b, i, 4 + r] += -is_ask
                    my_orders[b, i, r, is_ask, price] += -1.0
                    order_kind[b, r, i, kk] = _NO_ORDER


@_jit
def _crossing(my_orders: NDArray[np.float64], b: int, r: int) -> bool:
    """Whether book (b, r)'s highest bid reaches its lowest ask, owners ignored."""
    n, n_p = my_orders.shape[1], my_orders.shape[4]
    top_bid, low_ask = -1, n_p
    for q in range(n_p):
        bids = 0.0
        asks = 0.0
        for i in range(n):
            bids += my_orders[b, i, r, 0, q]
            asks += my_orders[b, i, r, 1, q]
        if bids > 0:
            top_bid = q
        if asks > 0 and low_ask == n_p:
            low_ask = q
    return top_bid >= low_ask


@_jit
def _sorted_orders(
    order_kind: NDArray[np.int8], order_price: NDArray[np.int64], order_created: NDArray[np.int64],
    b: int, r: int, kind: int, sign: int,
) -> NDArray[np.int64]:
    """(m, 4) rows (price, created, agent, slot) of book (b, r)'s orders of ``kind``, sorted stably by
    (sign * price, created, agent) from the (agent, slot) order: best first."""
    n, k = order_kind.shape[2], order_kind.shape[3]
    rows = np.empty((n * k, 4), dtype=np.int64)
    m = 0
    for i in range(n):
        for kk in range(k):
            if order_kind[b, r, i, kk] == kind:
                rows[m, 0], rows[m, 1] = order_price[b, r, i, kk], order_created[b, r, i, kk]
                rows[m, 2], rows[m, 3] = i, kk
                m += 1
    for j in range(1, m):  # insertion sort: stable
        cur = rows[j].copy()
        at = j
        while at > 0 and _before(cur, rows[at - 1], sign):
            rows[at] = rows[at - 1]
            at -= 1
        rows[at] = cur
    return rows[:m]


@_jit
def _before(x: NDArray[np.int64], y: NDArray[np.int64], sign: int) -> bool:
    """Whether order row ``x`` sorts strictly before ``y`` by (sign * price, created, agent)."""
    if sign * x[0] != sign * y[0]:
        return sign * x[0] < sign * y[0]
    if x[1] != y[1]:
        return x[1] < y[1]
    return x[2] < y[2]


@_jit
def _match_book(
    b: int, r: int, order_kind: NDArray[np.int8], order_price: NDArray[np.int64], order_created: NDArray[np.int64],
    agent: NDArray[np.float64], my_orders: NDArray[np.float64], price_history: NDArray[np.float64],
    trades: NDArray[np.float64],
) -> None:
    """Match book (b, r): best bid of a buyer not ruled out against the best ask of another agent, until none."""
    bids = _sorted_orders(order_kind, order_price, order_created, b, r, _BID, -1)
    asks = _sorted_orders(order_kind, order_price, order_created, b, r, _ASK, 1)
    bid_open = np.ones(bids.shape[0], dtype=np.bool_)
    ask_open = np.ones(asks.shape[0], dtype=np.bool_)
    ruled_out = np.zeros(order_kind.shape[2], dtype=np.bool_)
    while True:
        jb = -1
        for j in range(bids.shape[0]):
            if bid_open[j] and not ruled_out[bids[j, 2]]:
                jb = j
                break
        if jb < 0:
            return
        bid_price, bid_created, buyer, bid_slot = bids[jb, 0], bids[jb, 1], bids[jb, 2], bids[jb, 3]
        ja = -1
        for j in range(asks.shape[0]):
            if ask_open[j] and asks[j, 2] != buyer:
                ja = j
                break
        if ja < 0 or bid_price < asks[ja, 0]:
            ruled_out[buyer] = True
            continue
        ask_price, ask_created, seller, ask_slot = asks[ja, 0], asks[ja, 1], asks[ja, 2], asks[ja, 3]
        bid_open[jb] = False
        ask_open[ja] = False
        paid = ask_price if bid_created >= ask_created else bid_price
        agent[b, seller, 4 + r] -= 1.0
        agent[b, buyer, 1 + r] += 1.0
        agent[b, buyer, 3] -= bid_price
        agent[b, buyer, 0] += bid_price - paid
        agent[b, seller, 0] += paid
        price_history[b, r, paid] += 1.0
        trades[b, buyer] += 1.0
        trades[b, seller] += 1.0
        order_kind[b, r, buyer, bid_slot] = _NO_ORDER
        order_kind[b, r, seller, ask_slot] = _NO_ORDER
        my_orders[b, buyer, r, 0, bid_price] -= 1.0
        my_orders[b, seller, r, 1, ask_price] -= 1.0


@_jit
def gather_step(
    actions: NDArray[np.int64],
    order: NDArray[np.int64],
    move_start: int,
    occupant: NDArray[np.int8],
    owner: NDArray[np.int8],
    pos: NDArray[np.int64],
    agent: NDArray[np.float64],
    resource: NDArray[np.int8],
    water: NDArray[np.bool_],
    move_labour: float,
    collect_labour: float,
) -> None:
    """Moves of every world in its processing order ``order`` (B, N), then collection (see ``Gather``)."""
    n_b, n = actions.shape
    for b in range(n_b):
        for j in range(n):
            i = order[b, j]
            d = actions[b, i] - move_start
            if 0 <= d < 4 and _can_enter(b, i, pos[b, i, 0] + _DR[d], pos[b, i, 1] + _DC[d], water, occupant, owner):
                occupant[b, pos[b, i, 0], pos[b, i, 1]] = -1
                pos[b, i, 0] += _DR[d]
                pos[b, i, 1] += _DC[d]
                occupant[b, pos[b, i, 0], pos[b, i, 1]] = i
                agent[b, i, 6] += move_labour
    _collect(pos, agent, resource, collect_labour)


@_jit
def _can_enter(
    b: int, i: int, r: int, c: int, water: NDArray[np.bool_], occupant: NDArray[np.int8], owner: NDArray[np.int8]
) -> bool:
    """Whether agent i of world b may step onto tile (r, c) now: in bounds, dry, free, not another's house."""
    if not (0 <= r < water.shape[0] and 0 <= c < water.shape[1]) or water[r, c] or occupant[b, r, c] >= 0:
        return False
    return owner[b, r, c] < 0 or owner[b, r, c] == i


@_jit
def _collect(
    pos: NDArray[np.int64], agent: NDArray[np.float64], resource: NDArray[np.int8], collect_labour: float
) -> None:
    """Every agent collects the resource units on its tile."""
    n_b, n, n_res = pos.shape[0], pos.shape[1], resource.shape[1]
    found = False
    for b in range(n_b):
        for i in range(n):
            for res in range(n_res):
                if resource[b, res, pos[b, i, 0], pos[b, i, 1]] != 0:
                    found = True
    if not found:
        return
    for b in range(n_b):  # as the NumPy engine: once anything is collected, every agent adds its (maybe 0) units
        for i in range(n):
            r, c = pos[b, i, 0], pos[b, i, 1]
            units = 0
            for res in range(n_res):
                here = resource[b, res, r, c]
                agent[b, i, 1 + res] += here
                units += here
            agent[b, i, 6] += collect_labour * units
    for b in range(n_b):
        for i in range(n):
            for res in range(n_res):
                resource[b, res, pos[b, i, 0], pos[b, i, 1]] = 0


@_jit
def regenerate(resource: NDArray[np.int8], source_index: NDArray[np.int64], regrow: NDArray[np.bool_]) -> None:
    """``resource`` (B, R·H·W) gets a unit on each source tile ``source_index[j]`` with ``regrow[b, j]``."""
    for b in range(resource.shape[0]):
        for j in range(source_index.shape[0]):
            if regrow[b, j]:
                resource[b, source_index[j]] |= 1


@_jit
def _index_code(index: int, observer: int) -> float:
    """Index-map code of agent ``index`` seen by ``observer``: 1 itself, k + 2 agent k, 0 none (-1)."""
    if index < 0:
        return 0.0
    if index == observer:
        return 1.0
    return index + 2.0


@_jit
def observe(
    resource: NDArray[np.int8],
    owner: NDArray[np.int8],
    occupant: NDArray[np.int8],
    pos: NDArray[np.int64],
    agent: NDArray[np.float64],
    order_kind: NDArray[np.int8],
    my_orders: NDArray[np.float64],
    price_history: NDArray[np.float64],
    rates: NDArray[np.float64],
    last_coin: NDArray[np.float64],
    market_rate: NDArray[np.float64],
    payment_obs: NDArray[np.float64],
    income_obs: NDArray[np.float64],
    statics: NDArray[np.uint8],
    cutoffs: NDArray[np.float64],
    head: NDArray[np.float64],
    obs_scale: float,
    view_radius: int,
    max_orders: int,
    out: NDArray[np.float32],
    mask: NDArray[np.int8],
) -> None:
    """Fill ``out`` (B, N, 9·V·V + F + 50) with each agent's packed observation and ``mask`` (B, N, 50).

    ``statics`` is (4, H, W) uint8: stone sources, wood sources, water, buildable tiles. ``head`` holds
    time / T, is-tax-day, is-first-day and cycle position / period. The layouts are those of
    :mod:`incentive_envs.gtb.observation`.
    """
    flat0 = 9 * (2 * view_radius + 1) ** 2
    mask0 = out.shape[2] - mask.shape[2]
    for b in range(pos.shape[0]):
        for i in range(pos.shape[1]):
            o = out[b, i]
            _spatial(o, b, i, resource, owner, occupant, pos, statics, view_radius)
            at = _flat_features(o, flat0, b, i, pos, agent, my_orders, price_history, market_rate, payment_obs,
                                statics.shape[1], statics.shape[2], head, obs_scale)
            at = _tax_features(o, at, b, i, agent, rates, last_coin, income_obs, cutoffs, head)
            _mask(mask[b, i], b, i, owner, pos, agent, order_kind, statics, max_orders)
            for a in range(mask.shape[2]):
                o[mask0 + a] = mask[b, i, a]


@_jit
def _spatial(
    o: NDArray[np.float32], b: int, i: int, resource: NDArray[np.int8], owner: NDArray[np.int8],
    occupant: NDArray[np.int8], pos: NDArray[np.int64], statics: NDArray[np.uint8], view_radius: int,
) -> None:
    """Agent i's egocentric (9, V, V) view, channels first, into ``o[:9·V·V]``."""
    h, w = owner.shape[1], owner.shape[2]
    v = 2 * view_radius + 1
    area = v * v
    for y in range(v):
        r = pos[b, i, 0] + y - view_radius
        for x in range(v):
            c = pos[b, i, 1] + x - view_radius
            cell = y * v + x
            if r < 0 or r >= h or c < 0 or c >= w:
                for ch in range(9):
                    o[ch * area + cell] = 0.0
                continue
            o[cell] = resource[b, 0, r, c]
            o[area + cell] = resource[b, 1, r, c]
            for ch in range(3):  # stone source, wood source, water (0 or 1)
                o[(2 + ch) * area + cell] = statics[ch, r, c]
            o[5 * area + cell] = 1.0 if owner[b, r, c] >= 0 else 0.0
            o[6 * area + cell] = 1.0
            o[7 * area + cell] = _index_code(owner[b, r, c], i)
            o[8 * area + cell] = _index_code(occupant[b, r, c], i)


@_jit
def _flat_features(
    o: NDArray[np.float32], at: int, b: int, i: int, pos: NDArray[np.int64], agent: NDArray[np.float64],
    my_orders: NDArray[np.float64], price_history: NDArray[np.float64], market_rate: NDArray[np.float64],
    payment_obs: NDArray[np.float64], h: int, w: int, head: NDArray[np.float64], obs_scale: float,
) -> int:
    """Agent i's amounts, location, time, payment and market features from ``o[at]``; returns the next slot."""
    n_res, n_p = price_history.shape[1], price_history.shape[2]
    for c in range(7):
        o[at + c] = agent[b, i, c] * obs_scale
    o[at + 7] = pos[b, i, 0] * (1.0 / h)
    o[at + 8] = pos[b, i, 1] * (1.0 / w)
    o[at + 9] = head[0]
    o[at + 10] = payment_obs[b, i]
    at += 11
    for r in range(n_res):
        o[at] = market_rate[b, r]
        for q in range(n_p):
            o[at + 1 + q] = price_history[b, r, q] * obs_scale
            for side in range(2):  # asks (my_orders side 1) first, then bids (side 0)
                mine = my_orders[b, i, r, 1 - side, q]
                total = 0.0
                for j in range(my_orders.shape[1]):
                    total += my_orders[b, j, r, 1 - side, q]
                o[at + 1 + (1 + side) * n_p + q] = total - mine
                o[at + 1 + (3 + side) * n_p + q] = mine
        at += 1 + 5 * n_p
    return at


@_jit
def _tax_features(
    o: NDArray[np.float32], at: int, b: int, i: int, agent: NDArray[np.float64], rates: NDArray[np.float64],
    last_coin: NDArray[np.float64], income_obs: NDArray[np.float64], cutoffs: NDArray[np.float64],
    head: NDArray[np.float64],
) -> int:
    """Agent i's tax features from ``o[at]`` (flags, phase, sorted incomes, rates, its marginal rate)."""
    o[at], o[at + 1], o[at + 2] = head[1], head[2], head[3]
    at += 3
    for j in range(income_obs.shape[1]):
        o[at + j] = income_obs[b, j]
    at += income_obs.shape[1]
    for j in range(rates.shape[1]):
        o[at + j] = rates[b, j]
    at += rates.shape[1]
    income = agent[b, i, 0] + agent[b, i, 3] - last_coin[b, i]
    bracket = -1  # np.searchsorted(cutoffs, income, side="right") - 1, which puts NaN last
    for j in range(cutoffs.shape[0]):
        if cutoffs[j] <= income or income != income:
            bracket = j
    o[at] = 0.0 if bracket < 0 else rates[b, bracket]
    return at + 1


@_jit
def _mask(
    m: NDArray[np.int8], b: int, i: int, owner: NDArray[np.int8], pos: NDArray[np.int64],
    agent: NDArray[np.float64], order_kind: NDArray[np.int8], statics: NDArray[np.uint8], max_orders: int,
) -> None:
    """Agent i's action mask: no-op, build, bids and asks per resource and price, moves."""
    pr, pc = pos[b, i, 0], pos[b, i, 1]
    n_res, n_p = order_kind.shape[1], (m.shape[0] - 6) // 4
    m[0] = 1
    has_goods = agent[b, i, 1] >= 1 and agent[b, i, 2] >= 1
    m[1] = owner[b, pr, pc] < 0 and statics[2, pr, pc] == 0 and statics[3, pr, pc] != 0 and has_goods
    for r in range(n_res):
        open_orders = 0
        for kk in range(order_kind.shape[3]):
            if order_kind[b, r, i, kk] != _NO_ORDER:
                open_orders += 1
        room = open_orders < max_orders
        for q in range(n_p):
            m[2 + r * 2 * n_p + q] = room and q <= agent[b, i, 0]
            m[2 + r * 2 * n_p + n_p + q] = room and agent[b, i, 1 + r] >= 1
    for d in range(4):
        r, c = pr + _DR[d], pc + _DC[d]
        ok = 0 <= r < owner.shape[1] and 0 <= c < owner.shape[2] and statics[2, r, c] == 0
        if ok:
            ok = owner[b, r, c] < 0 or owner[b, r, c] == i
        for j in range(pos.shape[1]):
            if pos[b, j, 0] == r and pos[b, j, 1] == c:
                ok = False
        m[m.shape[0] - 4 + d] = ok
