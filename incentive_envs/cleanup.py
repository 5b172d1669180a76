"""Cleanup: a public-goods sequential social dilemma; apples grow only while someone cleans the river.

| Property      | Value (default: the paper's 7x7 ``cleanup_small_sym``)                          |
|---------------|---------------------------------------------------------------------------------|
| IDs           | ``incentive_envs/cleanup-v0`` (PettingZoo), ``incentive_envs/Cleanup-v0`` and   |
|               | ``incentive_envs/CleanupSingleAgent-v0`` (Gymnasium views)                      |
| Agents        | ``agent_0`` .. ``agent_{N-1}`` (default N = 2)                                   |
| Actions       | ``Discrete(6)``: 0 left, 1 right, 2 up, 3 down, 4 stay, 5 clean. With          |
|               | ``rotation=True`` and ``penalty_beam=True`` (preset ``"large"``): SSD's 9 ids   |
|               | 0-4 as before (relative to orientation), 5 turn clockwise, 6 turn               |
|               | counter-clockwise, 7 fire (penalty beam), 8 clean                               |
| Observations  | ``Box(0, 255, (2r+1, 2r+1, 3), uint8)``: egocentric RGB view, radius r = 4;    |
|               | black outside the map; rotated so the agent faces up when ``rotation=True``.   |
|               | The paper's learners divide by 256.                                             |
| State         | ``Box(0, 255, (H+2, W+2, 3), uint8)``: the whole map with a one-cell black      |
|               | border (9x9x3 on 7x7, the designer's view centred on cell (3, 3))              |
| Rewards       | +1 per apple; ``-clean_cost`` (0) per clean; ``-fire_cost`` (1) per fire;       |
|               | ``-hit_penalty`` (50) per penalty-beam hit taken                               |
| Infos         | ``apple``, ``cleaned``, ``waste_cleared`` (int), ``fired``, ``tagged``,         |
|               | ``present`` for every agent and step                                           |
| Action types  | :func:`action_type` of an agent's step info: ``CLEAN`` (0), ``APPLE`` (1) or    |
|               | ``OTHER`` (2), named by :data:`ACTION_TYPES`                                    |
| Episode end   | truncated after ``max_steps`` (50) steps; never terminated                     |

Rules (method.md §3.2, the fork of SSD used by Yang et al. 2022), one step in this order:

1. Moves. Walls block; waste and water are walkable. Agents that clean, fire or turn do not move and block
   others. Claimants of one cell are served in a uniformly random order and only the first one moves; moving
   into an agent that stays fails; head-on swaps fail; following an agent that leaves succeeds.
2. An agent standing on an apple eats it (+1); the cell becomes empty.
3. Beams, in agent order (the map is updated after each agent's beam). A beam has 3 lanes of 5 cells: the
   centre lane starts in front of the agent, the side lanes at the cells beside it. A lane stops at a wall
   (not covered), at any agent (covered; a cleaning lane converts waste under that agent) and, for the
   cleaning beam, at the first waste cell, which becomes river. Apples, river and floor do not stop a lane.
   A penalty beam that reaches an agent costs it ``hit_penalty`` and, with ``timeout_steps > 0``, removes it
   from the map for that many steps (it then reappears at a random free spawn point).
4. With density = waste cells / potential waste cells (``H`` and ``R`` of the map), after cleaning: if
   density >= ``threshold_depletion`` nothing spawns; otherwise p_waste = ``waste_spawn_prob`` and p_apple =
   ``apple_respawn_prob`` * min(1, 1 - (density - ``threshold_restoration``) / (thrD - thrR)).
5. Every apple cell without an apple and without an agent grows an apple with p_apple.
6. At most one waste cell per step: the first cell, in a random order, that is not waste and wins a
   p_waste draw becomes waste (possibly under an agent).
7. Observations: agents are drawn over the map, beams of this step over agents.

Reset puts agent i on the i-th spawn point from the end of the row-major list (7x7: agent_0 at (5, 2),
agent_1 at (1, 4)), facing up, restores the waste and river and runs one spawn pass (which does nothing at
the 7x7 start: density 1). With the defaults: one waste cell cleaned gives p_apple = 0.0833, both give 0.5 and
then a waste cell returns with probability 0.75 per step.

### Arguments
``pettingzoo.make("parallel", "incentive_envs/cleanup-v0", map_name="small", ascii_map=None,
render_mode=None, **params)``

- ``map_name``: ``"small"`` (paper, 7x7, 2 agents, 50 steps), ``"10x10"`` (LIO, 3 agents, view radius 7,
  appleRespawn 0.3, depletion 0.4), ``"large"`` (SSD: 25x18 map, 5 agents, 1000 steps, view radius 7,
  rotation, random spawns and orientations, penalty beam, appleRespawn 0.05, depletion 0.4).
- ``ascii_map``: any map with the legend of :mod:`incentive_envs.ssd.maps` (validated: ragged rows, unknown
  characters and too few spawn points raise ``ValueError``).
- ``params``: any field of :class:`incentive_envs.ssd.SSDConfig` (``n_agents``, ``max_steps``,
  ``view_radius``, all probabilities and thresholds, ``rotation``, ``penalty_beam``, ``timeout_steps``, ...);
  ``max_cycles`` is an alias of ``max_steps``.
- ``render_mode``: ``"rgb_array"`` (the state image upscaled by ``render_scale``) or ``"ansi"``.

Action types (what a designer pays per type of action, method.md §3.2.6): :func:`action_type` classifies
one agent's step from its infos: ``CLEAN`` if it fired the cleaning beam this step (``cleaned``), else
``APPLE`` if it collected an apple (``apple``), else ``OTHER``. With the default maps (no penalty beam) an
agent collects an apple exactly when its reward is positive; with the penalty beam a hit in the same step
can make that reward negative, and the step is still an apple step.

Many games at once: :class:`incentive_envs.ssd.BatchedSSD` (``make_batch`` below) runs B games with array
inputs and outputs; game b of a batch reset with seed s equals this env reset with seed s + b. The rules run
as Numba kernels (:mod:`incentive_envs.ssd.kernels`): the first use on a machine compiles them (about 5 s of
CPU), later processes load them from Numba's cache (``__pycache__`` or ``NUMBA_CACHE_DIR``). Speed on 2 cores:
see ``examples/benchmarks/ssd_speed.py``.

Deviations from the original code, on purpose: agents that a penalty beam removes simply skip their
actions; the rotated view shows the agent's front at the top for every orientation (SSD's LEFT/RIGHT views
show the back at the top); random draws come from a per-episode counter-based stream (see
:mod:`incentive_envs.ssd.engine`), so trajectories match the original in distribution, not draw for draw.

### Version History
* v0: initial release.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from pettingzoo import AECEnv

from incentive_envs.ssd import BatchedSSD, make_config
from incentive_envs.ssd.parallel import SSDParallelEnv
from incentive_envs.ssd.vector import BatchedSSDEnv

__all__ = [
    "ACTION_TYPES",
    "APPLE",
    "CLEAN",
    "OTHER",
    "CleanupEnv",
    "action_type",
    "batched_env",
    "env",
    "make_batch",
    "parallel_env",
    "raw_env",
]

ACTION_TYPES: Final = ("clean", "apple", "other")
"""Names of the action types, indexed by :data:`CLEAN`, :data:`APPLE` and :data:`OTHER`."""
CLEAN: Final = 0
"""Action type: the agent fired the cleaning beam this step."""
APPLE: Final = 1
"""Action type: the agent collected an apple this step (and did not clean)."""
OTHER: Final = 2
"""Action type: anything else (moves, stays, turns and penalty-beam fires without an apple)."""


def action_type(info: Mapping[str, Any]) -> int:
    """One agent's action type this step from its step ``infos`` entry: :data:`CLEAN` if it fired the cleaning
    beam (``info["cleaned"]``), else :data:`APPLE` if it collected an apple (``info["apple"]``), else
    :data:`OTHER`.

    Raises:
        KeyError: ``info`` is not a Cleanup step info (no ``cleaned`` or ``apple`` key).
    """
    if info["cleaned"]:
        return CLEAN
    if info["apple"]:
        return APPLE
    return OTHER


class CleanupEnv(SSDParallelEnv):
    """Parallel Cleanup; see the module docstring for the rules."""

    metadata: ClassVar[dict[str, Any]] = {**SSDParallelEnv.metadata, "name": "cleanup_v0"}
    default_game: ClassVar[str] = "cleanup"
    default_map: ClassVar[str] = "small"


def make_batch(batch_size: int, map_name: str = "small", **params: Any) -> BatchedSSD:
    """``batch_size`` Cleanup games stepped together with arrays (same parameters as ``parallel_env``)."""
    return BatchedSSD(make_config("cleanup", map_name, **params), batch_size)


def batched_env(n_envs: int, **kwargs: Any) -> BatchedSSDEnv:
    """``n_envs`` Cleanup games with the batched multi-agent interface of :mod:`incentive_envs.vector` (same
    arguments as :func:`parallel_env`); game b reset with seed s equals this env reset with seed s + b."""
    return BatchedSSDEnv(parallel_env(**kwargs), n_envs)


def parallel_env(**kwargs: Any) -> CleanupEnv:
    """Cleanup as a PettingZoo ``ParallelEnv``."""
    return CleanupEnv(**kwargs)


def raw_env(**kwargs: Any) -> AECEnv:
    """Cleanup as an AEC env (converted from the parallel implementation)."""
    from incentive_envs._aec import aec_from_parallel

    return aec_from_parallel(parallel_env(**kwargs))


def env(**kwargs: Any) -> AECEnv:
    """Cleanup as an AEC env with order enforcement and action checks."""
    from incentive_envs._aec import checked_aec

    return checked_aec(raw_env(**kwargs))
