"""The Cleanup / Harvest rules, vectorised across a batch of independent games with NumPy.

One implementation of the rules serves both the batched API (:class:`BatchedSSD`, for the designer's rollouts)
and the PettingZoo env (``incentive_envs.cleanup`` / ``incentive_envs.harvest``), which is the batch of one.

Representation: each game is a flat ``uint8`` array of cell codes over the map padded by ``pad`` cells of
``OUT`` (black, blocks like a wall), so that views, beams and moves never index outside the array. Agent
positions are flat indices into it.

Randomness and the seeding contract: every game owns a ``numpy.random.Generator``
(``gymnasium.utils.seeding.np_random``). At each reset it draws one 64-bit key; all random numbers of the
episode are then SplitMix64 outputs ``u(key, counter)`` with a counter fixed by (step, purpose, index). A game's
stream therefore depends only on its own key, which makes the draws vectorisable across the batch and makes
game ``b`` of a batch reset with ``seed=s`` bit-identical to a single game reset with ``seed=s + b`` (the
Gymnasium vector-env convention) under the same actions. Resetting without a seed continues each generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from gymnasium.utils import seeding
from numpy.typing import NDArray

from incentive_envs.ssd.config import SSDConfig

__all__ = ["PALETTE", "BatchedSSD", "agent_colour"]

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

# Orientations, clockwise; moves are (row, col) offsets.
UP, RIGHT, DOWN, LEFT = 0, 1, 2, 3
_DIRS: Final = ((-1, 0), (0, 1), (1, 0), (0, -1))
_MOVE_VECTORS: Final = ((0, -1), (0, 1), (-1, 0), (1, 0), (0, 0))  # left, right, up, down, stay (facing UP)
_CHAR_CODES: Final = {"@": WALL, " ": EMPTY, "P": EMPTY, "A": APPLE, "B": EMPTY, "H": WASTE, "R": RIVER, "S": STREAM}

PALETTE: Final[dict[int, tuple[int, int, int]]] = {
    EMPTY: (0, 0, 0),
    WALL: (180, 180, 180),
    APPLE: (0, 255, 0),
    WASTE: (113, 75, 24),
    RIVER: (99, 156, 194),
    STREAM: (99, 156, 194),
    OUT: (0, 0, 0),
    BEAM_CLEAN: (100, 255, 255),
    BEAM_FIRE: (255, 255, 0),
}
# Agents "1" and "2" of the fork (method.md §3.2.5), then SSD's agent colours 3..9 minus its cyan (the beam colour).
_AGENT_COLOURS: Final = (
    (159, 67, 255),
    (2, 81, 154),
    (204, 0, 204),
    (216, 30, 54),
    (254, 151, 0),
    (99, 99, 255),
    (250, 204, 255),
    (238, 223, 16),
)

_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX2: Final = np.uint64(0x94D049BB133111EB)


def agent_colour(i: int) -> tuple[int, int, int]:
    """RGB colour of agent ``i``: the fixed palette first, then distinct generated colours."""
    if i < len(_AGENT_COLOURS):
        return _AGENT_COLOURS[i]
    k = i - len(_AGENT_COLOURS)
    return (40 + (k * 73) % 200, 40 + (k * 151) % 200, 120 + (k * 37) % 120)


def _uniforms(keys: NDArray[np.uint64], start: int, count: int) -> NDArray[np.float64]:
    """SplitMix64 outputs ``start+1 .. start+count`` of every game's stream, as floats in [0, 1): [B, count]."""
    n = np.arange(start + 1, start + 1 + count, dtype=np.uint64)
    x = keys[:, None] + n * _GOLDEN
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


class BatchedSSD:
    """``batch_size`` independent Cleanup or Harvest games stepped together.

    Args:
        config: the game's rules and parameters.
        batch_size: number of games B.

    All arrays are indexed ``[game, agent, ...]``. Episodes have a fixed length, so all games of a batch end
    together (``done`` is the same for every game) and are reset together.
    """

    def __init__(self, config: SSDConfig, batch_size: int = 1) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.config = config
        self.batch_size = int(batch_size)
        parsed = config.parsed_map()
        self.n_agents = config.n_agents
        self.map_shape = parsed.shape
        h, w = parsed.shape
        r = config.view_radius
        self.pad = max(r, config.beam_length + 1, int(np.sqrt(config.apple_radius)) + 1)
        pad = self.pad
        self._wp = w + 2 * pad
        self._hp = h + 2 * pad
        base = np.full((self._hp, self._wp), OUT, dtype=np.uint8)
        base[pad : pad + h, pad : pad + w] = np.vectorize(_CHAR_CODES.__getitem__, otypes=[np.uint8])(parsed.chars)
        self._base = base.reshape(-1)

        def flat(cells: Sequence[tuple[int, int]]) -> NDArray[np.int64]:
            return np.array([(i + pad) * self._wp + j + pad for i, j in cells], dtype=np.int64).reshape(-1)

        self._spawn = flat(parsed.spawn_points)
        self._apples = flat(parsed.apple_cells)
        self._waste = flat(parsed.waste_cells)
        self._is_cleanup = config.game == "cleanup"

        names = config.action_names
        self.n_actions = len(names)
        self._a_cw = names.index("turn_clockwise") if config.rotation else -1
        self._a_ccw = names.index("turn_counterclockwise") if config.rotation else -1
        self._a_fire = names.index("fire") if config.penalty_beam else -1
        self._a_clean = names.index("clean") if self._is_cleanup else -1

        # move_delta[orientation, action]: flat offset of the cell the action moves to (0 for non-moves).
        self._move_delta = np.zeros((4, self.n_actions), dtype=np.int64)
        for o in range(4):
            for a, (dr, dc) in enumerate(_MOVE_VECTORS):
                for _ in range(o):  # rotate the UP-relative move clockwise o times
                    dr, dc = dc, -dr
                self._move_delta[o, a] = dr * self._wp + dc
        # lane_off[orientation, lane, k]: flat offsets of the beam cells (method.md §3.2.8 geometry).
        lanes = 3 if config.beam_width == 3 else 1
        length = config.beam_length
        self._lane_off = np.zeros((4, lanes, length), dtype=np.int64)
        for o, (dr, dc) in enumerate(_DIRS):
            sr, sc = dc, -dr  # the direction to the agent's right
            starts = [(dr, dc), (sr, sc), (-sr, -sc)][:lanes]
            for lane, (r0, c0) in enumerate(starts):
                for k in range(length):
                    self._lane_off[o, lane, k] = (r0 + k * dr) * self._wp + (c0 + k * dc)
        side = 2 * r + 1
        self.view_shape = (side, side, 3)
        grid_r, grid_c = np.mgrid[-r : r + 1, -r : r + 1]
        self._view_off = (grid_r * self._wp + grid_c).reshape(-1)
        # rot_perm[o]: rotating the view so that an agent facing o sees its front at the top.
        idx = np.arange(side * side).reshape(side, side)
        self._rot_perm = np.stack([np.rot90(idx, k=o).reshape(-1) for o in range(4)])
        rad = config.apple_radius
        reach = int(np.sqrt(rad))
        offsets = [(i, j) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1) if i * i + j * j <= rad]
        self._nbr = self._apples[:, None] + np.array([i * self._wp + j for i, j in offsets], dtype=np.int64)[None]
        self._spawn_probs = np.array(config.harvest_spawn_probs, dtype=np.float64)

        n_codes = AGENT0 + self.n_agents
        self.palette = np.zeros((n_codes, 3), dtype=np.uint8)
        for code, rgb in PALETTE.items():
            self.palette[code] = rgb
        for i in range(self.n_agents):
            self.palette[AGENT0 + i] = agent_colour(i)
        self._blocking = np.zeros(256, dtype=bool)
        self._blocking[[WALL, OUT]] = True

        n, na, nw, ns = self.n_agents, len(self._apples), len(self._waste), len(self._spawn)
        self._n_step_draws = n + na + 2 * nw
        self._stride = max(self._n_step_draws + n * ns + n, ns + n)
        self._bidx = np.arange(self.batch_size)
        self._row_start = self._bidx * (self._hp * self._wp)  # offset of game b in the flattened batch
        self._rngs = [seeding.np_random(None)[0] for _ in range(self.batch_size)]
        self._keys = np.zeros(self.batch_size, dtype=np.uint64)
        self._started = False
        self._alloc()

    # ------------------------------------------------------------------ state
    def _alloc(self) -> None:
        b, n = self.batch_size, self.n_agents
        self.grid = np.tile(self._base, (b, 1))
        self.pos = np.tile(self._spawn[::-1][:n], (b, 1))
        self.orient = np.zeros((b, n), dtype=np.int64)
        self.present = np.ones((b, n), dtype=bool)
        self.timeout = np.zeros((b, n), dtype=np.int64)
        self.steps = 0
        self._canvas = self.grid.copy()

    @property
    def rngs(self) -> list[np.random.Generator]:
        """The per-game generators (game ``b``'s episode keys are drawn from ``rngs[b]``)."""
        return self._rngs

    def reset(
        self,
        seed: int | Sequence[int] | None = None,
        *,
        generators: Sequence[np.random.Generator] | None = None,
    ) -> NDArray[np.uint8]:
        """Start new episodes in every game; returns observations ``uint8[B, N, 2r+1, 2r+1, 3]``.

        Args:
            seed: ``s`` seeds game ``b`` with ``s + b``; a sequence gives one seed per game; None continues
                each game's generator.
            generators: use these generators instead (one per game; they are kept and advanced). This is how
                the PettingZoo env shares its ``np_random`` with the engine.
        """
        if generators is not None:
            if seed is not None:
                raise ValueError("pass either seed or generators, not both")
            if len(generators) != self.batch_size:
                raise ValueError(f"need {self.batch_size} generators, got {len(generators)}")
            self._rngs = list(generators)
        elif seed is not None:
            seeds = self._seeds(seed)
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        self._keys = np.array([g.integers(0, 2**64, dtype=np.uint64) for g in self._rngs], dtype=np.uint64)
        self._alloc()
        cfg = self.config
        n, ns = self.n_agents, len(self._spawn)
        u0 = _uniforms(self._keys, 0, ns + n)
        if cfg.random_spawn:
            self.pos = self._spawn[np.argsort(u0[:, :ns], axis=1, kind="stable")[:, :n]]
        if cfg.random_orientation:
            self.orient = np.minimum((u0[:, ns : ns + n] * 4).astype(np.int64), 3)
        occ = self._occupancy()
        self._spawn_items(self._uniforms_for_step(1)[:, n:], occ)
        self._started = True
        return self._draw(None)

    def _seeds(self, seed: int | Sequence[int]) -> list[int]:
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + b for b in range(self.batch_size)]
        seeds = list(seed)  # type: ignore[arg-type]
        if len(seeds) != self.batch_size:
            raise ValueError(f"need {self.batch_size} seeds, got {len(seeds)}")
        return [int(s) for s in seeds]

    def _uniforms_for_step(self, t: int) -> NDArray[np.float64]:
        return _uniforms(self._keys, t * self._stride, self._n_step_draws)

    def _occupancy(self) -> NDArray[np.int16]:
        """occ[b, cell] = index of the present agent on the cell, else -1."""
        occ = np.full(self.grid.shape, -1, dtype=np.int16)
        bb, ii = np.nonzero(self.present)
        occ[bb, self.pos[bb, ii]] = ii
        return occ

    # ------------------------------------------------------------------- step
    def check_actions(self, actions: NDArray[np.integer] | Sequence[Sequence[int]]) -> NDArray[np.int64]:
        """Return ``actions`` as ``int64[B, N]`` or raise ``ValueError`` (shape, dtype or range, with the value)."""
        arr = np.asarray(actions)
        if arr.shape != (self.batch_size, self.n_agents):
            raise ValueError(f"actions must have shape {(self.batch_size, self.n_agents)}, got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"actions must be integers, got dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= self.n_actions)
        if bad.any():
            b, i = np.argwhere(bad)[0]
            raise ValueError(f"action {arr[b, i]} of agent {i} in game {b} is outside [0, {self.n_actions})")
        return arr.astype(np.int64, copy=False)

    def step(
        self, actions: NDArray[np.integer] | Sequence[Sequence[int]]
    ) -> tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.bool_], dict[str, NDArray]]:
        """Advance every game one step.

        Returns:
            ``(obs uint8[B, N, 2r+1, 2r+1, 3], rewards float32[B, N], done bool[B], info)`` where ``info`` holds
            ``[B, N]`` arrays: ``apple`` (collected one), ``cleaned`` (fired the cleaning beam),
            ``waste_cleared`` (waste cells its beam converted), ``fired`` (fired the penalty beam), ``tagged``
            (hit by a penalty beam) and ``present`` (on the map, i.e. not timed out).

        Raises:
            RuntimeError: before ``reset`` or after the episode ended.
            ValueError: bad actions.
        """
        if not self._started:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset() first")
        a = self.check_actions(actions)
        cfg = self.config
        b_all, n = self._bidx, self.n_agents
        self.steps += 1
        u = self._uniforms_for_step(self.steps + 1)
        present = self.present
        rewards = np.zeros(a.shape, dtype=np.float64)

        if cfg.rotation:
            turn = (a == self._a_cw).astype(np.int64) - (a == self._a_ccw)
            self.orient = (self.orient + turn * present) % 4
        is_move = (a <= 4) & present
        target = self.pos + self._move_delta[self.orient, a] * is_move
        target = np.where(self._blocking[self.grid[b_all[:, None], target]], self.pos, target)
        self.pos = _resolve_moves(self.pos, target, present, u[:, :n])

        here = self.grid[b_all[:, None], self.pos]
        apple = (here == APPLE) & present
        if apple.any():
            bb, ii = np.nonzero(apple)
            self.grid[bb, self.pos[bb, ii]] = EMPTY
            rewards += apple

        occ = self._occupancy()
        cleaned = (a == self._a_clean) & present if self._a_clean >= 0 else np.zeros(a.shape, dtype=bool)
        fired = (a == self._a_fire) & present if self._a_fire >= 0 else np.zeros(a.shape, dtype=bool)
        waste_cleared = np.zeros(a.shape, dtype=np.int64)
        hits = np.zeros(a.shape, dtype=np.int64)
        beams = self._fire_beams(cleaned, fired, occ, waste_cleared, hits) if (cleaned | fired).any() else None
        rewards -= cfg.clean_cost * cleaned + cfg.fire_cost * fired + cfg.hit_penalty * hits
        tagged = hits > 0
        if cfg.timeout_steps > 0 and (tagged.any() or not present.all()):
            occ = self._timeouts(tagged)
        self._spawn_items(u[:, n:], occ)

        done = np.full(self.batch_size, self.steps >= cfg.max_steps)
        if done[0]:
            self._started = False
        obs = self._draw(beams)
        info = {
            "apple": apple,
            "cleaned": cleaned,
            "waste_cleared": waste_cleared,
            "fired": fired,
            "tagged": tagged,
            "present": self.present.copy(),
        }
        return obs, rewards.astype(np.float32), done, info

    def _fire_beams(
        self,
        cleaned: NDArray[np.bool_],
        fired: NDArray[np.bool_],
        occ: NDArray[np.int16],
        waste_cleared: NDArray[np.int64],
        hits: NDArray[np.int64],
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8]]:
        """Fire all beams in agent order (the map changes after each agent's beam); returns the beam cells."""
        beam_b, beam_cells, beam_codes = [], [], []
        for i in range(self.n_agents):
            firing = cleaned[:, i] | fired[:, i]
            bsel = np.nonzero(firing)[0]
            if bsel.size == 0:
                continue
            cells = self.pos[bsel, i][:, None, None] + self._lane_off[self.orient[bsel, i]]
            bb = np.broadcast_to(bsel[:, None, None], cells.shape)
            c = self.grid[bb, cells]
            who = occ[bb, cells]
            wall = self._blocking[c]
            agent_here = who >= 0
            is_clean = cleaned[bsel, i][:, None, None]
            waste = c == WASTE
            stop = wall | agent_here | (waste & is_clean)
            covered = ((np.cumsum(stop, axis=2) - stop) == 0) & ~wall
            conv = covered & waste & is_clean
            if conv.any():
                self.grid[bb[conv], cells[conv]] = RIVER
                waste_cleared[bsel, i] = conv.sum(axis=(1, 2))
            hit = covered & agent_here & ~is_clean
            if hit.any():
                np.add.at(hits, (bb[hit], who[hit].astype(np.int64)), 1)
            beam_b.append(bb[covered])
            beam_cells.append(cells[covered])
            beam_codes.append(np.where(is_clean, BEAM_CLEAN, BEAM_FIRE).astype(np.uint8)[covered.nonzero()[0], 0, 0])
        if not beam_b:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=np.uint8)
        return np.concatenate(beam_b), np.concatenate(beam_cells), np.concatenate(beam_codes)

    def _timeouts(self, tagged: NDArray[np.bool_]) -> NDArray[np.int16]:
        """Tick absent agents, remove newly tagged ones, respawn those whose time-out is over."""
        absent = ~self.present
        self.timeout[absent] -= 1
        newly = tagged & self.present
        self.present[newly] = False
        self.timeout[newly] = self.config.timeout_steps
        waiting = ~self.present & (self.timeout <= 0)
        occ = self._occupancy()
        if waiting.any():
            n, ns = self.n_agents, len(self._spawn)
            ur = _uniforms(self._keys, (self.steps + 1) * self._stride + self._n_step_draws, n * ns + n)
            for b, i in zip(*np.nonzero(waiting)):
                free = occ[b, self._spawn] < 0
                if not free.any():
                    continue  # every spawn point is taken: try again next step
                keys = np.where(free, ur[b, i * ns : (i + 1) * ns], 2.0)
                cell = self._spawn[int(np.argmin(keys))]
                self.pos[b, i] = cell
                self.present[b, i] = True
                self.timeout[b, i] = 0
                occ[b, cell] = i
                if self.config.random_orientation:
                    self.orient[b, i] = min(int(ur[b, n * ns + i] * 4), 3)
        return occ

    def _spawn_items(self, u: NDArray[np.float64], occ: NDArray[np.int16]) -> None:
        """Apple regrowth, then (Cleanup) waste spawn; ``u`` holds this step's apple and waste draws."""
        grid = self.grid
        na, nw = len(self._apples), len(self._waste)
        g = grid[:, self._apples]
        eligible = (g != APPLE) & (occ[:, self._apples] < 0)
        p_apple, p_waste = self.spawn_probabilities()
        prob = p_apple[:, None] if self._is_cleanup else self.regrowth_probabilities()
        new = eligible & (u[:, :na] < prob)
        if new.any():
            grid[:, self._apples] = np.where(new, APPLE, g)
        if not self._is_cleanup or nw == 0:
            return
        gw = grid[:, self._waste]
        cand = (gw != WASTE) & (u[:, na + nw : na + 2 * nw] < p_waste[:, None])
        has = cand.any(axis=1)
        if has.any():
            first = np.argmin(np.where(cand, u[:, na : na + nw], 2.0), axis=1)  # first success in a random order
            rows = np.nonzero(has)[0]
            grid[rows, self._waste[first[rows]]] = WASTE

    def spawn_probabilities(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Cleanup's ``(p_apple[B], p_waste[B])`` from the current waste density (method.md §3.2.3)."""
        cfg = self.config
        nw = len(self._waste)
        if nw == 0:
            return np.full(self.batch_size, cfg.apple_respawn_prob), np.zeros(self.batch_size)
        density = (self.grid[:, self._waste] == WASTE).sum(axis=1) / nw
        depleted = density >= cfg.threshold_depletion
        span = max(cfg.threshold_depletion - cfg.threshold_restoration, 1e-12)
        scale = np.clip(1.0 - (density - cfg.threshold_restoration) / span, 0.0, 1.0)
        p_apple = np.where(density <= cfg.threshold_restoration, 1.0, scale) * cfg.apple_respawn_prob
        p_apple = np.where(depleted, 0.0, p_apple)
        p_waste = np.where(depleted, 0.0, cfg.waste_spawn_prob)
        return p_apple, p_waste

    def regrowth_probabilities(self) -> NDArray[np.float64]:
        """Harvest's regrowth probability of every apple cell, ``float64[B, n_apple_cells]`` (row-major cells).

        Depends only on the apples around the cell; cells holding an apple or an agent do not draw at all.
        """
        counts = (self.grid[:, self._nbr] == APPLE).sum(axis=2)
        return self._spawn_probs[np.minimum(counts, len(self._spawn_probs) - 1)]

    # -------------------------------------------------------------- rendering
    def _draw(self, beams: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.uint8]] | None) -> NDArray[np.uint8]:
        """Draw agents then beams over the map and cut every agent's (rotated) view."""
        canvas = self.grid.copy()
        bb, ii = np.nonzero(self.present)
        canvas[bb, self.pos[bb, ii]] = AGENT0 + ii
        if beams is not None and beams[0].size:
            canvas[beams[0], beams[1]] = beams[2]
        self._canvas = canvas
        # np.take on flat arrays is several times faster than the equivalent fancy indexing.
        idx = (self.pos + self._row_start[:, None])[:, :, None] + self._view_off
        if self.config.rotation:
            idx = np.take_along_axis(idx, self._rot_perm[self.orient], axis=2)
        codes = np.take(canvas.reshape(-1), idx)
        b, n = self.pos.shape
        return np.take(self.palette, codes, axis=0).reshape(b, n, *self.view_shape)

    def state(self) -> NDArray[np.uint8]:
        """Global RGB image of every game: the map with a one-cell black border, ``uint8[B, H+2, W+2, 3]``."""
        h, w = self.map_shape
        p = self.pad
        canvas = self._canvas.reshape(self.batch_size, self._hp, self._wp)[:, p - 1 : p + h + 1, p - 1 : p + w + 1]
        return np.take(self.palette, canvas, axis=0)

    def state_shape(self) -> tuple[int, int, int]:
        h, w = self.map_shape
        return (h + 2, w + 2, 3)

    def ascii(self, b: int = 0) -> str:
        """Text picture of game ``b`` (agents as digits 0-9, then letters; beams as ``~`` clean, ``*`` fire)."""
        h, w = self.map_shape
        p = self.pad
        canvas = self._canvas[b].reshape(self._hp, self._wp)[p : p + h, p : p + w]
        chars = {EMPTY: " ", WALL: "@", APPLE: "A", WASTE: "H", RIVER: "R", STREAM: "S"}
        chars.update({BEAM_CLEAN: "~", BEAM_FIRE: "*"})
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"
        rows = []
        for row in canvas:
            rows.append("".join(chars.get(int(c), digits[(int(c) - AGENT0) % len(digits)]) for c in row))
        return "\n".join(rows)

    def positions(self) -> NDArray[np.int64]:
        """Agent (row, col) map coordinates, ``int64[B, N, 2]`` (last position for timed-out agents)."""
        r, c = np.divmod(self.pos, self._wp)
        return np.stack([r - self.pad, c - self.pad], axis=-1)

    def cell_grid(self) -> NDArray[np.uint8]:
        """Cell codes of the map region (no agents, no beams), ``uint8[B, H, W]``."""
        h, w = self.map_shape
        p = self.pad
        return self.grid.reshape(self.batch_size, self._hp, self._wp)[:, p : p + h, p : p + w].copy()

    def set_cells(self, b: int, cells: Sequence[tuple[int, int]], code: int) -> None:
        """Overwrite map cells of game ``b`` (for scripted scenarios and tests)."""
        for r, c in cells:
            self.grid[b, (r + self.pad) * self._wp + c + self.pad] = code

    def set_agent(self, b: int, i: int, cell: tuple[int, int], orientation: int | None = None) -> None:
        """Place agent ``i`` of game ``b`` at map ``cell`` (for scripted scenarios and tests)."""
        flat = (cell[0] + self.pad) * self._wp + cell[1] + self.pad
        others = np.delete(self.pos[b], i)[np.delete(self.present[b], i)]
        if self._blocking[self.grid[b, flat]] or flat in others:
            raise ValueError(f"cell {cell} is a wall or holds another agent")
        self.pos[b, i] = flat
        if orientation is not None:
            self.orient[b, i] = orientation


def _resolve_moves(
    pos: NDArray[np.int64], target: NDArray[np.int64], present: NDArray[np.bool_], u: NDArray[np.float64]
) -> NDArray[np.int64]:
    """New positions after simultaneous moves (method.md §3.2.8).

    Claimants of one cell are ordered by ``u`` (a uniformly random order, as the fork's shuffle) and only the
    first keeps its move. A move into a cell whose occupant does not leave fails (chains fail back to front),
    head-on swaps fail, following and rotations of three or more agents succeed.
    """
    moving = target != pos
    if not moving.any():
        return pos
    n = pos.shape[1]
    same = (target[:, :, None] == target[:, None, :]) & moving[:, :, None] & moving[:, None, :]
    j_first = (u[:, None, :] < u[:, :, None]) | (
        (u[:, None, :] == u[:, :, None]) & (np.arange(n)[None, :] < np.arange(n)[:, None])[None]
    )
    moving = moving & ~(same & j_first).any(axis=2)
    target = np.where(moving, target, pos)
    holds = (target[:, :, None] == pos[:, None, :]) & present[:, None, :]  # holds[b, i, j]: i's target holds j
    swap = moving & (holds & holds.transpose(0, 2, 1)).any(axis=2)
    failed = swap
    for _ in range(n):
        failed = swap | (moving & (holds & (~moving | failed)[:, None, :]).any(axis=2))
    return np.where(moving & ~failed, target, pos)
