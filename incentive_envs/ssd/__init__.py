"""Sequential social dilemmas (Cleanup, Harvest): maps, configuration, the batched engine (Numba rule kernels)
and the PettingZoo env built on it. The user-facing env modules are :mod:`incentive_envs.cleanup` and
:mod:`incentive_envs.harvest`."""

from __future__ import annotations

from incentive_envs.ssd.config import CLEANUP_PRESETS, HARVEST_PRESETS, SSDConfig, make_config
from incentive_envs.ssd.engine import BatchedSSD
from incentive_envs.ssd.maps import CLEANUP_10X10_SYM, CLEANUP_LARGE, CLEANUP_SMALL_SYM, HARVEST_LARGE, parse_map
from incentive_envs.ssd.parallel import SSDParallelEnv

__all__ = [
    "CLEANUP_10X10_SYM",
    "CLEANUP_LARGE",
    "CLEANUP_PRESETS",
    "CLEANUP_SMALL_SYM",
    "HARVEST_LARGE",
    "HARVEST_PRESETS",
    "BatchedSSD",
    "SSDConfig",
    "SSDParallelEnv",
    "make_config",
    "parse_map",
]
