"""The batched Cleanup / Harvest engine: state arrays and the Python API around the Numba rule kernels.

One implementation of the rules (:mod:`incentive_envs.ssd.kernels`) serves both the batched API
(:class:`BatchedSSD`, for the designer's rollouts) and the PettingZoo env (``incentive_envs.cleanup`` /
``incentive_envs.harvest``), which is the batch of one.

Representation: each game is a flat ``uint8`` array of cell codes over the map padded by ``pad`` cells of
``OUT`` (black, blocks like a wall), so that views, beams and moves never index outside the array. Agent
positions are flat indices into it.

Randomness and the seeding contract: every game owns a ``numpy.random.Generator``
(``gymnasium.utils.seeding.np_random``). At each reset it draws one 64-bit key; all random numbers of the
episode are then SplitMix64 outputs ``u(key, counter)`` with a counter fixed by (step, purpose, index). A game's
stream therefore depends only on its own key, which makes game ``b`` of a batch reset with ``seed=s``
bit-identical to a single game reset with ``seed=s + b`` (the Gymnasium vector-env convention) under the same
actions. Resetting without a seed continues each generator.

Arrays handed out (observations, rewards, infos, ``state()``) are fresh for every call: the engine never
writes into them afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from gymnasium.utils import seeding
from numpy.typing import NDArray

from incentive_envs.ssd import kernels as K
from incentive_envs.ssd.config import SSDConfig
from incentive_envs.ssd.kernels import AGENT0, APPLE, BEAM_CLEAN, BEAM_FIRE, EMPTY, OUT, RIVER, STREAM, WALL, WASTE

__all__ = [
    "AGENT0",
    "APPLE",
    "BEAM_CLEAN",
    "BEAM_FIRE",
    "EMPTY",
    "INFO_KEYS",
    "OUT",
    "PALETTE",
    "RIVER",
    "STREAM",
    "WALL",
    "WASTE",
    "BatchedSSD",
    "agent_colour",
]

# Orientations 0..3 = up, right, down, left (clockwise); moves are (row, col) offsets.
_DIRS: Final = ((-1, 0), (0, 1), (1, 0), (0, -1))
_MOVE_VECTORS: Final = ((0, -1), (0, 1), (-1, 0), (1, 0), (0, 0))  # left, right, up, down, stay (facing UP)
_CHAR_CODES: Final = {"@": WALL, " ": EMPTY, "P": EMPTY, "A": APPLE, "B": EMPTY, "H": WASTE, "R": RIVER, "S": STREAM}
INFO_KEYS: Final = ("apple", "cleaned", "waste_cleared", "fired", "tagged", "present")

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


def _read_only(arr: NDArray) -> NDArray:
    view = arr.view()
    view.flags.writeable = False
    return view


def agent_colour(i: int) -> tuple[int, int, int]:
    """RGB colour of agent ``i``: the fixed palette first, then distinct generated colours."""
    if i < len(_AGENT_COLOURS):
        return _AGENT_COLOURS[i]
    k = i - len(_AGENT_COLOURS)
    return (40 + (k * 73) % 200, 40 + (k * 151) % 200, 120 + (k * 37) % 120)


class BatchedSSD:
    """``batch_size`` independent Cleanup or Harvest games stepped together.

    Args:
        config: the game's rules and parameters.
        batch_size: number of games B.

    All arrays are indexed ``[game, agent, ...]``. Episodes have a fixed length, so all games of a batch end
    together (``done`` is the same for every game) and are reset together.

    Attributes:
        grid: ``uint8[B, (H+2 pad) * (W+2 pad)]`` cell codes of the padded maps (agents and beams not drawn).
        pos: ``int64[B, N]`` agent positions as flat indices into ``grid`` (see :meth:`positions`).
        orient: ``int64[B, N]`` orientations 0 up, 1 right, 2 down, 3 left.
        present: ``bool[B, N]`` agent on the map (not timed out); ``timeout``: ``int64[B, N]`` steps left.

    These are read-only views that follow the live state.
    """

    def __init__(self, config: SSDConfig, batch_size: int = 1) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.config = config
        self.batch_size = int(batch_size)
        parsed = config.parsed_map()
        self.n_agents = n = config.n_agents
        self.map_shape = parsed.shape
        h, w = parsed.shape
        r = config.view_radius
        self.pad = pad = max(r, config.beam_length + 1, int(np.sqrt(config.apple_radius)) + 1)
        self._wp = wp = w + 2 * pad
        self._hp = h + 2 * pad
        base = np.full((self._hp, wp), OUT, dtype=np.uint8)
        base[pad : pad + h, pad : pad + w] = np.vectorize(_CHAR_CODES.__getitem__, otypes=[np.uint8])(parsed.chars)
        self._base = base.reshape(-1)

        def flat(cells: Sequence[tuple[int, int]]) -> NDArray[np.int64]:
            return np.array([(i + pad) * wp + j + pad for i, j in cells], dtype=np.int64).reshape(-1)

        self._spawn = flat(parsed.spawn_points)
        self._apples = flat(parsed.apple_cells)
        self._waste = flat(parsed.waste_cells)

        names = config.action_names
        self.n_actions = len(names)
        # move_delta[orientation, action]: flat offset of the cell the action moves to (0 for non-moves).
        self._move_delta = np.zeros((4, self.n_actions), dtype=np.int64)
        for o in range(4):
            for a, (dr, dc) in enumerate(_MOVE_VECTORS):
                for _ in range(o):  # rotate the UP-relative move clockwise o times
                    dr, dc = dc, -dr
                self._move_delta[o, a] = dr * wp + dc
        # lane_off[orientation, lane, k]: flat offsets of the beam cells (method.md §3.2.8 geometry).
        lanes = 3 if config.beam_width == 3 else 1
        length = config.beam_length
        self._lane_off = np.zeros((4, lanes, length), dtype=np.int64)
        for o, (dr, dc) in enumerate(_DIRS):
            sr, sc = dc, -dr  # the direction to the agent's right
            starts = [(dr, dc), (sr, sc), (-sr, -sc)][:lanes]
            for lane, (r0, c0) in enumerate(starts):
                for k in range(length):
                    self._lane_off[o, lane, k] = (r0 + k * dr) * wp + (c0 + k * dc)
        side = 2 * r + 1
        self.view_shape = (side, side, 3)
        # view_off[o, k]: flat offset of view pixel k (row-major) for an agent facing o; the view is rotated
        # so that the agent's front is at the top.
        grid_r, grid_c = np.mgrid[-r : r + 1, -r : r + 1]
        offsets = grid_r * wp + grid_c
        self._view_off = np.stack([np.rot90(offsets, k=o).reshape(-1) for o in range(4)]).astype(np.int64)
        rad = config.apple_radius
        reach = int(np.sqrt(rad))
        nbr = [(i, j) for i in range(-reach, reach + 1) for j in range(-reach, reach + 1) if i * i + j * j <= rad]
        self._nbr = self._apples[:, None] + np.array([i * wp + j for i, j in nbr], dtype=np.int64)[None]
        self._spawn_probs = np.array(config.harvest_spawn_probs, dtype=np.float64)

        self.palette = np.zeros((AGENT0 + n, 3), dtype=np.uint8)
        for code, rgb in PALETTE.items():
            self.palette[code] = rgb
        for i in range(n):
            self.palette[AGENT0 + i] = agent_colour(i)
        self._blocking = np.zeros(256, dtype=bool)
        self._blocking[[WALL, OUT]] = True

        # Counters of one step: n move-order draws, then na apple and 2 nw waste draws, then n * ns + n for
        # time-out respawns; the reset's spawn and orientation draws (ns + n) use the counters of step 0.
        na, nw, ns = len(self._apples), len(self._waste), len(self._spawn)
        step_draws = n + na + 2 * nw
        self._ip = np.zeros(K.N_IP, dtype=np.int64)
        self._ip[K.I_CW] = names.index("turn_clockwise") if config.rotation else -1
        self._ip[K.I_CCW] = names.index("turn_counterclockwise") if config.rotation else -1
        self._ip[K.I_FIRE] = names.index("fire") if config.penalty_beam else -1
        self._ip[K.I_CLEAN] = names.index("clean") if config.game == "cleanup" else -1
        self._ip[K.I_CLEANUP] = config.game == "cleanup"
        self._ip[K.I_TIMEOUT] = config.timeout_steps
        self._ip[K.I_RANDOM_ORIENTATION] = config.random_orientation
        self._ip[K.I_RANDOM_SPAWN] = config.random_spawn
        self._ip[K.I_STEP_DRAWS] = step_draws
        self._ip[K.I_STRIDE] = max(step_draws + n * ns + n, ns + n)
        self._fp = np.zeros(K.N_FP, dtype=np.float64)
        self._fp[K.F_CLEAN_COST] = config.clean_cost
        self._fp[K.F_FIRE_COST] = config.fire_cost
        self._fp[K.F_HIT_PENALTY] = config.hit_penalty
        self._fp[K.F_APPLE_RESPAWN] = config.apple_respawn_prob
        self._fp[K.F_THRESHOLD_DEPLETION] = config.threshold_depletion
        self._fp[K.F_THRESHOLD_RESTORATION] = config.threshold_restoration
        self._fp[K.F_WASTE_SPAWN] = config.waste_spawn_prob

        b = self.batch_size
        self._rngs = [seeding.np_random(None)[0] for _ in range(b)]
        self._keys = np.zeros(b, dtype=np.uint64)
        self._grid = np.tile(self._base, (b, 1))
        self._pos = np.tile(self._spawn[::-1][:n], (b, 1))
        self._orient = np.zeros((b, n), dtype=np.int64)
        self._present = np.ones((b, n), dtype=bool)
        self._timeout = np.zeros((b, n), dtype=np.int64)
        self.steps = 0
        self._canvas = self._grid.copy()
        self._started = False
        # Read-only live views of the state (the kernels index without bounds checks: change the state only
        # through set_cells / set_agent, which validate).
        self.grid, self.pos, self.orient, self.present, self.timeout = (
            _read_only(a) for a in (self._grid, self._pos, self._orient, self._present, self._timeout)
        )

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
        self.steps = 0
        obs = np.empty((self.batch_size, self.n_agents, *self.view_shape), dtype=np.uint8)
        K.reset_games(
            self._grid,
            self._canvas,
            self._pos,
            self._orient,
            self._present,
            self._timeout,
            self._keys,
            self._base,
            self._spawn,
            self._apples,
            self._waste,
            self._nbr,
            self._spawn_probs,
            self._view_off,
            self.palette,
            self._ip,
            self._fp,
            obs,
        )
        self._started = True
        return obs

    def _seeds(self, seed: int | Sequence[int]) -> list[int]:
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + b for b in range(self.batch_size)]
        seeds = list(seed)  # type: ignore[arg-type]
        if len(seeds) != self.batch_size:
            raise ValueError(f"need {self.batch_size} seeds, got {len(seeds)}")
        return [int(s) for s in seeds]

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
        return np.array(arr, dtype=np.int64, order="C")  # a writable C copy: one compiled kernel signature

    def step(
        self, actions: NDArray[np.integer] | Sequence[Sequence[int]]
    ) -> tuple[NDArray[np.uint8], NDArray[np.float32], NDArray[np.bool_], dict[str, NDArray]]:
        """Advance every game one step.

        Returns:
            ``(obs uint8[B, N, 2r+1, 2r+1, 3], rewards float32[B, N], done bool[B], info)`` where ``info`` holds
            ``[B, N]`` arrays: ``apple`` (collected one), ``cleaned`` (fired the cleaning beam),
            ``waste_cleared`` (waste cells its beam converted, int64), ``fired`` (fired the penalty beam),
            ``tagged`` (hit by a penalty beam) and ``present`` (on the map, i.e. not timed out).

        Raises:
            RuntimeError: before ``reset`` or after the episode ended.
            ValueError: bad actions.
        """
        if not self._started:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset() first")
        a = self.check_actions(actions)
        b, n = self.batch_size, self.n_agents
        obs = np.empty((b, n, *self.view_shape), dtype=np.uint8)
        rewards = np.empty((b, n), dtype=np.float32)
        flags = np.empty((K.N_FLAGS, b, n), dtype=bool)
        cleared = np.empty((b, n), dtype=np.int64)
        done = self._advance(a, obs, rewards, flags, cleared)
        info = {
            "apple": flags[K.FLAG_APPLE],
            "cleaned": flags[K.FLAG_CLEANED],
            "waste_cleared": cleared,
            "fired": flags[K.FLAG_FIRED],
            "tagged": flags[K.FLAG_TAGGED],
            "present": flags[K.FLAG_PRESENT],
        }
        return obs, rewards, np.full(b, done), info

    def _advance(
        self,
        actions: NDArray[np.int64],
        obs: NDArray[np.uint8],
        rewards: NDArray[np.float32],
        flags: NDArray[np.bool_],
        cleared: NDArray[np.int64],
    ) -> bool:
        """The step without checks or allocations, for ``step`` and the PettingZoo env; returns whether the
        episode ended. Unchecked: ``actions`` must be valid, writable, C-contiguous ``int64[B, N]`` and the
        buffers writable C-contiguous ``obs uint8[B, N, side, side, 3]``, ``rewards float32[B, N]``,
        ``flags bool[5, B, N]`` (apple, cleaned, fired, tagged, present) and ``cleared int64[B, N]`` (the
        kernels do not check bounds). Raises ``RuntimeError`` before ``reset`` or after the episode ended.
        """
        if not self._started:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset() first")
        self.steps += 1
        K.step_games(
            self._grid,
            self._canvas,
            self._pos,
            self._orient,
            self._present,
            self._timeout,
            self._keys,
            self.steps,
            actions,
            self._spawn,
            self._apples,
            self._waste,
            self._nbr,
            self._spawn_probs,
            self._move_delta,
            self._lane_off,
            self._view_off,
            self.palette,
            self._ip,
            self._fp,
            obs,
            rewards,
            flags,
            cleared,
        )
        done = self.steps >= self.config.max_steps
        if done:
            self._started = False
        return done

    def spawn_probabilities(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Cleanup's ``(p_apple[B], p_waste[B])`` from the current waste density (method.md §3.2.3)."""
        out = np.empty((2, self.batch_size), dtype=np.float64)
        K.spawn_probabilities(self._grid, self._waste, self._fp, out)
        return out[0], out[1]

    def regrowth_probabilities(self) -> NDArray[np.float64]:
        """Harvest's regrowth probability of every apple cell, ``float64[B, n_apple_cells]`` (row-major cells).

        Depends only on the apples around the cell; cells holding an apple or an agent do not draw at all.
        """
        out = np.empty((self.batch_size, len(self._apples)), dtype=np.float64)
        K.regrowth_probabilities(self._grid, self._nbr, self._spawn_probs, out)
        return out

    # -------------------------------------------------------------- rendering
    def state(self) -> NDArray[np.uint8]:
        """Global RGB image of every game: the map with a one-cell black border, ``uint8[B, H+2, W+2, 3]``."""
        out = np.empty((self.batch_size, *self.state_shape()), dtype=np.uint8)
        top = (self.pad - 1) * self._wp + self.pad - 1
        K.render_states(self._canvas, self._wp, top, self.palette, out)
        return out

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
        r, c = np.divmod(self._pos, self._wp)
        return np.stack([r - self.pad, c - self.pad], axis=-1)

    def cell_grid(self) -> NDArray[np.uint8]:
        """Cell codes of the map region (no agents, no beams), ``uint8[B, H, W]``."""
        h, w = self.map_shape
        p = self.pad
        return self._grid.reshape(self.batch_size, self._hp, self._wp)[:, p : p + h, p : p + w].copy()

    def _flat(self, b: int, cell: tuple[int, int]) -> int:
        """Flat index of map ``cell`` after checking the game index and that the cell lies on the map."""
        if not 0 <= b < self.batch_size:
            raise ValueError(f"game index {b} is outside [0, {self.batch_size})")
        h, w = self.map_shape
        r, c = cell
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"cell {cell} is outside the {h}x{w} map")
        return (r + self.pad) * self._wp + c + self.pad

    def set_cells(self, b: int, cells: Sequence[tuple[int, int]], code: int) -> None:
        """Overwrite map cells of game ``b`` with a map code (``EMPTY`` .. ``STREAM``; for scenarios and tests)."""
        if code not in (EMPTY, WALL, APPLE, WASTE, RIVER, STREAM):
            raise ValueError(f"code must be a map cell code in [{EMPTY}, {STREAM}], got {code!r}")
        for cell in cells:
            self._grid[b, self._flat(b, cell)] = code

    def set_agent(self, b: int, i: int, cell: tuple[int, int], orientation: int | None = None) -> None:
        """Place agent ``i`` of game ``b`` at map ``cell`` (for scripted scenarios and tests)."""
        flat = self._flat(b, cell)
        if not 0 <= i < self.n_agents:
            raise ValueError(f"agent index {i} is outside [0, {self.n_agents})")
        if orientation is not None and orientation not in (0, 1, 2, 3):
            raise ValueError(f"orientation must be 0 (up), 1 (right), 2 (down) or 3 (left), got {orientation!r}")
        others = np.delete(self._pos[b], i)[np.delete(self._present[b], i)]
        if self._blocking[self._grid[b, flat]] or flat in others:
            raise ValueError(f"cell {cell} is a wall or holds another agent")
        self._pos[b, i] = flat
        if orientation is not None:
            self._orient[b, i] = orientation
