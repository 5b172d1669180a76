"""Harvest: a common-pool-resource sequential social dilemma; apples regrow only near other apples.

| Property      | Value (default: SSD's large Harvest map)                                        |
|---------------|---------------------------------------------------------------------------------|
| IDs           | ``incentive_envs/harvest-v0`` (PettingZoo), ``incentive_envs/Harvest-v0`` and   |
|               | ``incentive_envs/HarvestSingleAgent-v0`` (Gymnasium views)                      |
| Agents        | ``agent_0`` .. ``agent_{N-1}`` (default N = 5)                                   |
| Actions       | ``Discrete(8)``, SSD's ids: 0 left, 1 right, 2 up, 3 down (relative to the      |
|               | agent's orientation), 4 stay, 5 turn clockwise, 6 turn counter-clockwise,       |
|               | 7 fire the penalty beam. ``rotation=False`` drops 5-6, ``penalty_beam=False`` 7 |
| Observations  | ``Box(0, 255, (15, 15, 3), uint8)``: egocentric RGB view of radius 7, rotated   |
|               | so that the agent faces up, black outside the map                              |
| State         | ``Box(0, 255, (18, 40, 3), uint8)``: the map with a one-cell black border       |
| Rewards       | +1 per apple; -1 (``fire_cost``) per fire; -50 (``hit_penalty``) per hit taken  |
| Infos         | ``apple``, ``fired``, ``tagged``, ``present`` (and ``cleaned``/``waste_cleared``, |
|               | always False/0) for every agent and step                                       |
| Episode end   | truncated after ``max_steps`` (1000) steps; never terminated                   |

Rules (SSD's ``harvest.py``), one step in this order:

1. Turns, then moves with the same conflict rules as Cleanup (random order among claimants of one cell,
   swaps fail, following succeeds, walls block).
2. An agent on an apple eats it (+1).
3. Penalty beams in agent order: 3 lanes of 5 cells (centre lane in front, side lanes starting beside the
   agent); a lane stops at a wall (not covered) and at the first agent (covered, hit). The firer pays
   ``fire_cost`` = 1 and each hit agent ``hit_penalty`` = 50 (SSD's numbers). A hit agent is removed from the
   map for ``timeout_steps`` = 25 steps (Perolat et al. 2017; SSD itself has no removal: ``timeout_steps=0``
   gives SSD's rules exactly). While removed its actions are ignored, it is not drawn, cannot be hit and
   sees the map from where it was hit; after the time-out it reappears at a random free spawn point (random
   orientation). Removal happens after all beams of the step, so a hit agent's own beam still fires.
4. Regrowth: every apple cell with no apple and no agent grows an apple with probability
   ``harvest_spawn_probs[min(k, 3)]`` = [0, 0.005, 0.02, 0.05], where k counts the apples at offsets
   (dr, dc) with dr**2 + dc**2 <= ``apple_radius`` = 2 on the map before this step's regrowth (SSD's
   comparison of the squared distance with the radius, i.e. the 3x3 square around the cell).

Reset: agents on random distinct spawn points with random orientations (``random_spawn``,
``random_orientation``), every apple cell holds an apple.

### Arguments
``pettingzoo.make("parallel", "incentive_envs/harvest-v0", map_name="large", ascii_map=None,
render_mode=None, **params)``; ``params`` are the fields of :class:`incentive_envs.ssd.SSDConfig`
(``n_agents``, ``max_steps``/``max_cycles``, ``view_radius``, ``harvest_spawn_probs``, ``apple_radius``,
``timeout_steps``, ``fire_cost``, ``hit_penalty``, ``rotation``, ...). Maps use ``@`` wall, ``P`` spawn,
``A`` apple, space floor, and are validated. ``make_batch`` runs B games with array inputs and outputs (the same
engine and seeding contract as Cleanup's, see :mod:`incentive_envs.cleanup`).

### Version History
* v0: initial release.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pettingzoo import AECEnv

from incentive_envs.ssd import BatchedSSD, make_config
from incentive_envs.ssd.parallel import SSDParallelEnv
from incentive_envs.ssd.vector import BatchedSSDEnv

__all__ = ["HarvestEnv", "batched_env", "env", "make_batch", "parallel_env", "raw_env"]


class HarvestEnv(SSDParallelEnv):
    """Parallel Harvest; see the module docstring for the rules."""

    metadata: ClassVar[dict[str, Any]] = {**SSDParallelEnv.metadata, "name": "harvest_v0"}
    default_game: ClassVar[str] = "harvest"
    default_map: ClassVar[str] = "large"


def make_batch(batch_size: int, map_name: str = "large", **params: Any) -> BatchedSSD:
    """``batch_size`` Harvest games stepped together with arrays (same parameters as ``parallel_env``)."""
    return BatchedSSD(make_config("harvest", map_name, **params), batch_size)


def batched_env(n_envs: int, **kwargs: Any) -> BatchedSSDEnv:
    """``n_envs`` Harvest games with the batched multi-agent interface of :mod:`incentive_envs.vector` (same
    arguments as :func:`parallel_env`); game b reset with seed s equals this env reset with seed s + b."""
    return BatchedSSDEnv(parallel_env(**kwargs), n_envs)


def parallel_env(**kwargs: Any) -> HarvestEnv:
    """Harvest as a PettingZoo ``ParallelEnv``."""
    return HarvestEnv(**kwargs)


def raw_env(**kwargs: Any) -> AECEnv:
    """Harvest as an AEC env (converted from the parallel implementation)."""
    from incentive_envs._aec import aec_from_parallel

    return aec_from_parallel(parallel_env(**kwargs))


def env(**kwargs: Any) -> AECEnv:
    """Harvest as an AEC env with order enforcement and action checks."""
    from incentive_envs._aec import checked_aec

    return checked_aec(raw_env(**kwargs))
