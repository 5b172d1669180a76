"""The Cleanup / Harvest rules as Numba kernels that loop over the games of a batch (and its agents and cells).

This module is the one implementation of the rules; :class:`incentive_envs.ssd.engine.BatchedSSD` owns the
state arrays and calls these kernels, and the PettingZoo env is that engine with a batch of one.

Layout (built by the engine): game ``b`` is the flat ``uint8`` row ``grid[b]`` of cell codes over the map
padded by ``OUT`` cells, so that moves, beams, neighbourhoods and views never index outside the row; agent
positions are flat indices into it. ``canvas[b]`` is ``grid[b]`` with this step's agents and beams drawn on
top (what observations and ``state()`` show). Scalar rule parameters travel in two small arrays, ``ip``
(int64, indexed by the ``I_*`` constants) and ``fp`` (float64, ``F_*``).

Randomness: every random number of an episode is ``uniform(key, counter)``, the SplitMix64 output for a
per-episode 64-bit key and a counter fixed by (step, purpose, index); see ``BatchedSSD`` for the counter
layout. A game's stream depends only on its own key, so games are independent of their batch.
"""

from __future__ import annotations

from typing import Final

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = [
    "AGENT0",
    "APPLE",
    "BEAM_CLEAN",
    "BEAM_FIRE",
    "EMPTY",
    "N_FLAGS",
    "OUT",
    "RIVER",
    "STREAM",
    "WALL",
    "WASTE",
    "regrowth_probabilities",
    "render_states",
    "reset_games",
    "spawn_probabilities",
    "step_games",
    "uniform",
]

# Cell codes.
EMPTY: Final = 0
WALL: Final = 1
APPLE: Final = 2
WASTE: Final = 3
RIVER: Final = 4
STREAM: Final = 5
OUT: Final = 6
BEAM_CLEAN: Final = 7
BEAM_FIRE: Final = 8
AGENT0: Final = 9

# Indices into the int64 parameter array ``ip``.
I_CW: Final = 0  # action id of "turn clockwise" (-1 without rotation)
I_CCW: Final = 1  # "turn counter-clockwise" (-1)
I_FIRE: Final = 2  # "fire" (-1 without the penalty beam)
I_CLEAN: Final = 3  # "clean" (-1 in Harvest)
I_CLEANUP: Final = 4  # 1 for Cleanup's pollution dynamics, 0 for Harvest's regrowth
I_TIMEOUT: Final = 5  # steps a tagged agent is removed (0: never)
I_RANDOM_ORIENTATION: Final = 6
I_RANDOM_SPAWN: Final = 7
I_STEP_DRAWS: Final = 8  # counters per step used by moves and spawning; time-out respawns follow them
I_STRIDE: Final = 9  # counters per step in all
N_IP: Final = 10
# Indices into the float64 parameter array ``fp``.
F_CLEAN_COST: Final = 0
F_FIRE_COST: Final = 1
F_HIT_PENALTY: Final = 2
F_APPLE_RESPAWN: Final = 3
F_THRESHOLD_DEPLETION: Final = 4
F_THRESHOLD_RESTORATION: Final = 5
F_WASTE_SPAWN: Final = 6
N_FP: Final = 7
# Rows of the per-step bool flags returned to the caller.
FLAG_APPLE, FLAG_CLEANED, FLAG_FIRED, FLAG_TAGGED, FLAG_PRESENT = 0, 1, 2, 3, 4
N_FLAGS: Final = 5

_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX2: Final = np.uint64(0x94D049BB133111EB)
_INV_2_53: Final = 1.0 / 9007199254740992.0

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def uniform(key: np.uint64, counter: int) -> float:
    """SplitMix64 output number ``counter`` of the stream ``key``, as a float in [0, 1) (53 random bits)."""
    x = key + np.uint64(counter) * _GOLDEN
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return np.float64(x >> np.uint64(11)) * _INV_2_53


@_jit
def _blocks(code: int) -> bool:
    return code == WALL or code == OUT


@_jit
def _cleanup_probabilities(
    row: NDArray[np.uint8], waste: NDArray[np.int64], fp: NDArray[np.float64]
) -> tuple[float, float]:
    """Cleanup's ``(p_apple, p_waste)`` from the waste density of one game (method.md §3.2.3)."""
    nw = waste.shape[0]
    if nw == 0:
        return fp[F_APPLE_RESPAWN], 0.0
    count = 0
    for k in range(nw):
        if row[waste[k]] == WASTE:
            count += 1
    density = count / nw
    thr_d, thr_r = fp[F_THRESHOLD_DEPLETION], fp[F_THRESHOLD_RESTORATION]
    if density >= thr_d:
        return 0.0, 0.0
    if density <= thr_r:
        return fp[F_APPLE_RESPAWN], fp[F_WASTE_SPAWN]
    scale = min(max(1.0 - (density - thr_r) / max(thr_d - thr_r, 1e-12), 0.0), 1.0)
    return scale * fp[F_APPLE_RESPAWN], fp[F_WASTE_SPAWN]


@_jit
def _regrowth_probability(row: NDArray[np.uint8], nbr: NDArray[np.int64], table: NDArray[np.float64]) -> float:
    """Harvest's regrowth probability of one apple cell: ``table[min(apples among nbr, len - 1)]``."""
    count = 0
    for k in range(nbr.shape[0]):
        if row[nbr[k]] == APPLE:
            count += 1
    return table[min(count, table.shape[0] - 1)]


@_jit
def _spawn(
    row: NDArray[np.uint8],
    occ: NDArray[np.int64],
    key: np.uint64,
    first: int,
    apples: NDArray[np.int64],
    waste: NDArray[np.int64],
    nbr: NDArray[np.int64],
    table: NDArray[np.float64],
    ip: NDArray[np.int64],
    fp: NDArray[np.float64],
    grow: NDArray[np.bool_],
) -> None:
    """Apple regrowth, then (Cleanup) waste spawn, in one game.

    Draws: apple cell ``k`` uses counter ``first + k``; waste cell ``k`` uses ``first + na + k`` as its place
    in the random visiting order and ``first + na + nw + k`` for its success draw. ``occ`` maps cells to the
    present agent on them (-1: none); ``grow`` is scratch of length ``na``.
    """
    na, nw = apples.shape[0], waste.shape[0]
    cleanup = ip[I_CLEANUP] == 1
    p_apple, p_waste = _cleanup_probabilities(row, waste, fp)
    for k in range(na):  # decide on the map before regrowth, then apply (Harvest counts neighbours)
        cell = apples[k]
        grow[k] = False
        if row[cell] != APPLE and occ[cell] < 0:
            p = p_apple if cleanup else _regrowth_probability(row, nbr[k], table)
            grow[k] = uniform(key, first + k) < p
    for k in range(na):
        if grow[k]:
            row[apples[k]] = APPLE
    if not cleanup or p_waste == 0.0:
        return
    best, best_order = -1, 2.0
    for k in range(nw):  # the first success in a uniformly random order of the waste cells
        if row[waste[k]] != WASTE and uniform(key, first + na + nw + k) < p_waste:
            order = uniform(key, first + na + k)
            if order < best_order:
                best, best_order = k, order
    if best >= 0:
        row[waste[best]] = WASTE


@_jit
def _draw(
    b: int,
    grid: NDArray[np.uint8],
    canvas: NDArray[np.uint8],
    pos: NDArray[np.int64],
    orient: NDArray[np.int64],
    present: NDArray[np.bool_],
    beam_cells: NDArray[np.int64],
    beam_codes: NDArray[np.uint8],
    n_beam: int,
    view_off: NDArray[np.int64],
    palette: NDArray[np.uint8],
    obs: NDArray[np.uint8],
) -> None:
    """Draw game ``b``'s agents, then its beams, over the map and cut every agent's (rotated) RGB view."""
    for k in range(grid.shape[1]):
        canvas[b, k] = grid[b, k]
    n = pos.shape[1]
    for i in range(n):
        if present[b, i]:
            canvas[b, pos[b, i]] = AGENT0 + i
    for k in range(n_beam):
        canvas[b, beam_cells[k]] = beam_codes[k]
    side = obs.shape[2]
    for i in range(n):  # absent agents see the map from where they were removed
        offsets = view_off[orient[b, i]]
        centre = pos[b, i]
        for r in range(side):
            for c in range(side):
                code = canvas[b, centre + offsets[r * side + c]]
                obs[b, i, r, c, 0] = palette[code, 0]
                obs[b, i, r, c, 1] = palette[code, 1]
                obs[b, i, r, c, 2] = palette[code, 2]


@_jit
def reset_games(
    grid: NDArray[np.uint8],
    canvas: NDArray[np.uint8],
    pos: NDArray[np.int64],
    orient: NDArray[np.int64],
    present: NDArray[np.bool_],
    timeout: NDArray[np.int64],
    keys: NDArray[np.uint64],
    base: NDArray[np.uint8],
    spawn: NDArray[np.int64],
    apples: NDArray[np.int64],
    waste: NDArray[np.int64],
    nbr: NDArray[np.int64],
    table: NDArray[np.float64],
    view_off: NDArray[np.int64],
    palette: NDArray[np.uint8],
    ip: NDArray[np.int64],
    fp: NDArray[np.float64],
    obs: NDArray[np.uint8],
) -> None:
    """Start an episode in every game (keys already drawn) and write the first observations into ``obs``.

    Agent ``i`` starts on spawn point ``ns - 1 - i`` facing up, or (``random_spawn``) on the spawn points of
    the ``n`` smallest of the draws ``1 .. ns`` in increasing order, with (``random_orientation``) orientation
    ``floor(4 u)`` from draw ``ns + 1 + i``; then one spawn pass with the counters of step 1.
    """
    n_games, n = pos.shape
    ns = spawn.shape[0]
    occ = np.empty(grid.shape[1], dtype=np.int64)
    for k in range(occ.shape[0]):
        occ[k] = -1
    grow = np.empty(apples.shape[0], dtype=np.bool_)
    taken = np.empty(ns, dtype=np.bool_)
    no_beams = np.empty(0, dtype=np.int64)
    no_codes = np.empty(0, dtype=np.uint8)
    n_beam = 0
    for b in range(n_games):
        key = keys[b]
        for k in range(base.shape[0]):
            grid[b, k] = base[k]
        for i in range(n):
            pos[b, i] = spawn[ns - 1 - i]
            orient[b, i] = 0
            present[b, i] = True
            timeout[b, i] = 0
        if ip[I_RANDOM_SPAWN] == 1:
            for s in range(ns):
                taken[s] = False
            for i in range(n):  # selection of the i-th smallest draw (ties: lower index first)
                best, best_u = -1, 2.0
                for s in range(ns):
                    u = uniform(key, 1 + s)
                    if not taken[s] and u < best_u:
                        best, best_u = s, u
                taken[best] = True
                pos[b, i] = spawn[best]
        if ip[I_RANDOM_ORIENTATION] == 1:
            for i in range(n):
                orient[b, i] = min(int(uniform(key, 1 + ns + i) * 4.0), 3)
        for i in range(n):
            occ[pos[b, i]] = i
        _spawn(grid[b], occ, key, ip[I_STRIDE] + 1 + n, apples, waste, nbr, table, ip, fp, grow)
        for i in range(n):
            occ[pos[b, i]] = -1
        _draw(b, grid, canvas, pos, orient, present, no_beams, no_codes, n_beam, view_off, palette, obs)


@_jit
def _targets(
    row: NDArray[np.uint8],
    pos: NDArray[np.int64],
    orient: NDArray[np.int64],
    present: NDArray[np.bool_],
    actions: NDArray[np.int64],
    move_delta: NDArray[np.int64],
    ip: NDArray[np.int64],
    target: NDArray[np.int64],
) -> bool:
    """Turns, then every agent's move target in one game (its position if it does not move: walls and the
    map's border block); returns whether any agent moves."""
    any_move = False
    for i in range(pos.shape[0]):
        a = actions[i]
        target[i] = pos[i]
        if not present[i]:
            continue
        if a == ip[I_CW]:
            orient[i] = (orient[i] + 1) % 4
        elif a == ip[I_CCW]:
            orient[i] = (orient[i] + 3) % 4
        elif a <= 4:
            dest = pos[i] + move_delta[orient[i], a]
            if not _blocks(row[dest]) and dest != pos[i]:
                target[i] = dest
                any_move = True
    return any_move


@_jit
def _claims(
    pos: NDArray[np.int64],
    target: NDArray[np.int64],
    key: np.uint64,
    first: int,
    u: NDArray[np.float64],
    won: NDArray[np.bool_],
) -> None:
    """Contested cells: claimants are ordered by the draws ``u[i] = uniform(key, first + i)`` (ties by index,
    a uniformly random order) and only the first keeps its move. ``won[i]``: agent i still moves; the other
    agents' targets are reset to their positions."""
    n = pos.shape[0]
    for i in range(n):
        u[i] = uniform(key, first + i)
    for i in range(n):
        won[i] = target[i] != pos[i]
        for j in range(n):
            if won[i] and j != i and target[j] != pos[j] and target[j] == target[i]:
                won[i] = not (u[j] < u[i] or (u[j] == u[i] and j < i))
    for i in range(n):
        if not won[i]:
            target[i] = pos[i]


@_jit
def _settle_moves(
    pos: NDArray[np.int64],
    target: NDArray[np.int64],
    present: NDArray[np.bool_],
    won: NDArray[np.bool_],
    failed: NDArray[np.bool_],
) -> None:
    """Move the winners of :func:`_claims` unless blocked (method.md §3.2.8); updates ``pos`` in place.

    A head-on swap fails, and so does a move into a cell whose present occupant stays or fails: failures
    propagate back along chains to the least fixed point, so following and rotations of three or more agents
    succeed.
    """
    n = pos.shape[0]
    for i in range(n):
        failed[i] = False
        for j in range(n):
            if won[i] and present[i] and present[j] and target[i] == pos[j] and target[j] == pos[i]:
                failed[i] = True
    changed = True
    while changed:
        changed = False
        for i in range(n):
            for j in range(n):
                blocked = present[j] and target[i] == pos[j] and (not won[j] or failed[j])
                if won[i] and not failed[i] and blocked:
                    failed[i] = True
                    changed = True
    for i in range(n):
        if won[i] and not failed[i]:
            pos[i] = target[i]


@_jit
def _beam(
    row: NDArray[np.uint8],
    occ: NDArray[np.int64],
    start: int,
    offsets: NDArray[np.int64],
    is_clean: bool,
    hits: NDArray[np.int64],
    beam_cells: NDArray[np.int64],
    beam_codes: NDArray[np.uint8],
    n_beam: int,
) -> tuple[int, int]:
    """Fire one agent's beam (lanes ``offsets[lane, k]`` from ``start``); returns (beam cells, waste cleared).

    A lane stops at a wall or the border (not covered), at any agent (covered; a cleaning lane converts waste
    under it, a penalty lane hits it) and, cleaning, at the first waste cell, which becomes river.
    """
    drawn = BEAM_CLEAN if is_clean else BEAM_FIRE
    converted = 0
    for lane in range(offsets.shape[0]):
        for k in range(offsets.shape[1]):
            cell = start + offsets[lane, k]
            code = row[cell]
            if _blocks(code):
                break
            beam_cells[n_beam] = cell
            beam_codes[n_beam] = drawn
            n_beam += 1
            waste_here = is_clean and code == WASTE
            if waste_here:
                row[cell] = RIVER
                converted += 1
            who = occ[cell]
            if who >= 0 and not is_clean:
                hits[who] += 1
            if who >= 0 or waste_here:
                break
    return n_beam, converted


@_jit
def _timeouts(
    pos: NDArray[np.int64],
    orient: NDArray[np.int64],
    present: NDArray[np.bool_],
    timeout: NDArray[np.int64],
    hits: NDArray[np.int64],
    occ: NDArray[np.int64],
    key: np.uint64,
    first: int,
    spawn: NDArray[np.int64],
    ip: NDArray[np.int64],
) -> None:
    """Tick absent agents, remove the tagged ones, respawn those whose time-out is over (one game).

    A respawning agent ``i`` takes the free spawn point ``s`` with the smallest draw ``first + i * ns + s``
    (none free: it retries next step) and, with random orientations, orientation from ``first + n * ns + i``.
    """
    n, ns = pos.shape[0], spawn.shape[0]
    for i in range(n):
        if not present[i]:
            timeout[i] -= 1
    for i in range(n):
        if hits[i] > 0 and present[i]:
            present[i] = False
            timeout[i] = ip[I_TIMEOUT]
            occ[pos[i]] = -1
    for i in range(n):
        if present[i] or timeout[i] > 0:
            continue
        best, best_u = -1, 2.0
        for s in range(ns):
            if occ[spawn[s]] < 0:
                us = uniform(key, first + i * ns + s)
                if us < best_u:
                    best, best_u = s, us
        if best < 0:
            continue
        pos[i] = spawn[best]
        present[i] = True
        timeout[i] = 0
        occ[pos[i]] = i
        if ip[I_RANDOM_ORIENTATION] == 1:
            orient[i] = min(int(uniform(key, first + n * ns + i) * 4.0), 3)


@_jit
def step_games(
    grid: NDArray[np.uint8],
    canvas: NDArray[np.uint8],
    pos: NDArray[np.int64],
    orient: NDArray[np.int64],
    present: NDArray[np.bool_],
    timeout: NDArray[np.int64],
    keys: NDArray[np.uint64],
    step: int,
    actions: NDArray[np.int64],
    spawn: NDArray[np.int64],
    apples: NDArray[np.int64],
    waste: NDArray[np.int64],
    nbr: NDArray[np.int64],
    table: NDArray[np.float64],
    move_delta: NDArray[np.int64],
    lane_off: NDArray[np.int64],
    view_off: NDArray[np.int64],
    palette: NDArray[np.uint8],
    ip: NDArray[np.int64],
    fp: NDArray[np.float64],
    obs: NDArray[np.uint8],
    rewards: NDArray[np.float32],
    flags: NDArray[np.bool_],
    cleared: NDArray[np.int64],
) -> None:
    """Advance every game by step number ``step`` (1-based) under valid ``actions[B, N]``.

    Writes the observations ``obs[B, N, side, side, 3]``, ``rewards[B, N]``, ``flags[N_FLAGS, B, N]`` (apple
    eaten, cleaned, fired, tagged, present afterwards) and ``cleared[B, N]`` (waste cells converted).
    Counters of this step start at ``first = (step + 1) * stride + 1``: draw ``first + i`` orders agent ``i``
    among the claimants of a cell, the next ``na + 2 nw`` feed :func:`_spawn`, the next ``n * ns + n`` feed
    :func:`_timeouts`.
    """
    n_games, n = pos.shape
    first = (step + 1) * ip[I_STRIDE] + 1
    occ = np.empty(grid.shape[1], dtype=np.int64)
    for k in range(occ.shape[0]):
        occ[k] = -1
    grow = np.empty(apples.shape[0], dtype=np.bool_)
    target = np.empty(n, dtype=np.int64)
    u = np.empty(n, dtype=np.float64)
    won = np.empty(n, dtype=np.bool_)
    failed = np.empty(n, dtype=np.bool_)
    hits = np.empty(n, dtype=np.int64)
    beam_cells = np.empty(n * lane_off.shape[1] * lane_off.shape[2], dtype=np.int64)
    beam_codes = np.empty(beam_cells.shape[0], dtype=np.uint8)
    for b in range(n_games):
        key, row, p_b, present_b, a_b = keys[b], grid[b], pos[b], present[b], actions[b]
        if _targets(row, p_b, orient[b], present_b, a_b, move_delta, ip, target):  # turns, then moves
            _claims(p_b, target, key, first, u, won)
            _settle_moves(p_b, target, present_b, won, failed)
        for i in range(n):  # apples are eaten on arrival
            eaten = present_b[i] and row[p_b[i]] == APPLE
            if eaten:
                row[p_b[i]] = EMPTY
            if present_b[i]:
                occ[p_b[i]] = i
            flags[FLAG_APPLE, b, i] = eaten
            hits[i] = 0
        n_beam = 0
        for i in range(n):  # beams in agent order: the map changes after each agent's beam
            is_clean = present_b[i] and a_b[i] == ip[I_CLEAN]
            is_fire = present_b[i] and a_b[i] == ip[I_FIRE]
            flags[FLAG_CLEANED, b, i] = is_clean
            flags[FLAG_FIRED, b, i] = is_fire
            cleared[b, i] = 0
            if is_clean or is_fire:
                offsets = lane_off[orient[b, i]]
                n_beam, cleared[b, i] = _beam(row, occ, p_b[i], offsets, is_clean, hits, beam_cells, beam_codes, n_beam)
        for i in range(n):
            cost = fp[F_CLEAN_COST] * flags[FLAG_CLEANED, b, i] + fp[F_FIRE_COST] * flags[FLAG_FIRED, b, i]
            cost += fp[F_HIT_PENALTY] * hits[i]
            rewards[b, i] = np.float32((1.0 if flags[FLAG_APPLE, b, i] else 0.0) - cost)
            flags[FLAG_TAGGED, b, i] = hits[i] > 0
        if ip[I_TIMEOUT] > 0:
            _timeouts(p_b, orient[b], present_b, timeout[b], hits, occ, key, first + ip[I_STEP_DRAWS], spawn, ip)
        _spawn(row, occ, key, first + n, apples, waste, nbr, table, ip, fp, grow)
        for i in range(n):
            occ[p_b[i]] = -1
            flags[FLAG_PRESENT, b, i] = present_b[i]
        _draw(b, grid, canvas, pos, orient, present, beam_cells, beam_codes, n_beam, view_off, palette, obs)


@_jit
def render_states(
    canvas: NDArray[np.uint8], width: int, top: int, palette: NDArray[np.uint8], out: NDArray[np.uint8]
) -> None:
    """RGB of the canvas window ``out.shape[1:3]`` whose top-left cell is the flat index ``top``."""
    n_games, h, w = out.shape[0], out.shape[1], out.shape[2]
    for b in range(n_games):
        for r in range(h):
            start = top + r * width
            for c in range(w):
                code = canvas[b, start + c]
                out[b, r, c, 0] = palette[code, 0]
                out[b, r, c, 1] = palette[code, 1]
                out[b, r, c, 2] = palette[code, 2]


@_jit
def spawn_probabilities(
    grid: NDArray[np.uint8], waste: NDArray[np.int64], fp: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    """Cleanup's ``out[0, b], out[1, b] = p_apple, p_waste`` of every game, as the step uses them."""
    for b in range(grid.shape[0]):
        out[0, b], out[1, b] = _cleanup_probabilities(grid[b], waste, fp)


@_jit
def regrowth_probabilities(
    grid: NDArray[np.uint8], nbr: NDArray[np.int64], table: NDArray[np.float64], out: NDArray[np.float64]
) -> None:
    """Harvest's regrowth probability ``out[b, k]`` of every apple cell ``k``, as the step uses it."""
    for b in range(grid.shape[0]):
        for k in range(nbr.shape[0]):
            out[b, k] = _regrowth_probability(grid[b], nbr[k], table)
