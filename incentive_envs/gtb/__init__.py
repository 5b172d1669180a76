"""Gather-Trade-Build (Foundation's ``layout_from_file/simple_wood_and_stone``): engine, rules, layouts, taxes.

- :class:`BatchedGTB`: the batched engine (B worlds, array actions in, arrays out); the PettingZoo env
  :mod:`incentive_envs.gather_trade_build` is this engine with one world.
- :mod:`incentive_envs.gtb.components`: the rules (Build, ContinuousDoubleAuction, Gather,
  PeriodicBracketTax, regeneration); :mod:`incentive_envs.gtb.kernels`: their compiled inner loops.
- :mod:`incentive_envs.gtb.observation`: the agents' observations and masks, the designer's state layout.
- :mod:`incentive_envs.gtb.tax_models`: fixed tax baselines (free market, US federal 2018, Saez).
- :mod:`incentive_envs.gtb.schema`: what a designer needs beyond the PettingZoo API, published by the game:
  :class:`GTBSchema` (observation and state layout, state decoders), :data:`STEP_INFO_KEYS` (the per-step
  infos) and the reward rules :func:`utility`, :func:`agent_reward`, :func:`period_tax`
  (:mod:`incentive_envs.gtb.rewards`, which the engine itself computes its rewards and taxes with).
"""

from __future__ import annotations

from incentive_envs.gtb.components import ActionLayout
from incentive_envs.gtb.config import FIXED_FOUR_BUILD_PAYMENTS, GTBConfig
from incentive_envs.gtb.engine import BatchedGTB, GTBStep
from incentive_envs.gtb.layout import DEFAULT_LAYOUT, MapLayout, load_layout, packaged_layouts, parse_layout
from incentive_envs.gtb.observation import (
    SPATIAL_CHANNELS,
    STATE_MAP_CHANNELS,
    GTBObservation,
    flat_feature_names,
    state_feature_names,
)
from incentive_envs.gtb.schema import STEP_INFO_KEYS, GTBSchema, agent_reward, period_tax, utility
from incentive_envs.gtb.tax_models import FreeMarketTax, SaezTax, TaxModel, USFederalTax

__all__ = [
    "DEFAULT_LAYOUT",
    "FIXED_FOUR_BUILD_PAYMENTS",
    "SPATIAL_CHANNELS",
    "STATE_MAP_CHANNELS",
    "STEP_INFO_KEYS",
    "ActionLayout",
    "BatchedGTB",
    "FreeMarketTax",
    "GTBConfig",
    "GTBObservation",
    "GTBSchema",
    "GTBStep",
    "MapLayout",
    "SaezTax",
    "TaxModel",
    "USFederalTax",
    "agent_reward",
    "flat_feature_names",
    "load_layout",
    "packaged_layouts",
    "parse_layout",
    "period_tax",
    "state_feature_names",
    "utility",
]
