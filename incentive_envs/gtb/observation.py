"""What Gather-Trade-Build shows: the agents' observations and masks, the designer's state, their layouts.

- :data:`SPATIAL_CHANNELS`, :func:`flat_feature_names`: an agent's egocentric view and flat features;
  :data:`STATE_MAP_CHANNELS`, :func:`state_feature_names`: the designer's state.
- :class:`GTBObservation`: the per-agent observations of B worlds, built in one packed buffer.
- :class:`Observer`: builds them from a :class:`~incentive_envs.gtb.components.GTBState` (with the compiled
  :func:`incentive_envs.gtb.kernels.observe`), the designer's full map, and the finite bounds of both.
"""

from __future__ import annotations

import dataclasses
from typing import Final

import numpy as np
from numpy.typing import NDArray

from incentive_envs.gtb import kernels
from incentive_envs.gtb.components import RESOURCES, GTBState
from incentive_envs.gtb.config import GTBConfig
from incentive_envs.gtb.layout import MapLayout

__all__ = [
    "SPATIAL_CHANNELS",
    "STATE_MAP_CHANNELS",
    "GTBObservation",
    "Observer",
    "flat_feature_names",
    "state_feature_names",
]

SPATIAL_CHANNELS: Final = (
    "stone",  # 1 where a stone unit lies
    "wood",  # 1 where a wood unit lies
    "stone_source",  # 1 on stone source tiles
    "wood_source",  # 1 on wood source tiles
    "water",  # 1 on water
    "house",  # 1 on houses
    "inside",  # 1 inside the world, 0 on the padding beyond its edge
    "house_owner",  # 1 own house, k + 2 house of agent k, 0 none
    "agent",  # 1 self, k + 2 agent k, 0 none
)
"""Channels of the egocentric spatial observation ``(9, 2r+1, 2r+1)``, channels first (Foundation's 7 map +
2 index channels)."""

STATE_MAP_CHANNELS: Final = ("stone", "wood", "stone_source", "wood_source", "water", "house", "house_owner",
                             "agent")
"""Channels of the designer's full map ``(8, H, W)``; ``house_owner``/``agent`` hold k + 2 for agent k, else 0."""

_BIG: Final = 1e9  # finite stand-in for "unbounded" in observation spaces (checkers warn on inf)
_BASE_PAYMENT: Final = 10.0  # Foundation's base build payment; build payments are observed relative to it


def flat_feature_names(config: GTBConfig) -> list[str]:
    """Name of every slot of an agent's flat observation vector, in order (see the env docstring)."""
    n, p = config.n_agents, config.n_prices
    names = ["inventory_coin", "inventory_stone", "inventory_wood", "escrow_coin", "escrow_stone", "escrow_wood",
             "labour", "loc_row", "loc_col", "time", "build_payment"]
    for res in RESOURCES:
        names.append(f"{res}_market_rate")
        for block in ("price_history", "available_asks", "available_bids", "my_asks", "my_bids"):
            names += [f"{res}_{block}_{q}" for q in range(p)]
    names += ["tax_is_tax_day", "tax_is_first_day", "tax_phase"]
    names += [f"tax_last_income_sorted_{j}" for j in range(n)]
    names += [f"tax_rate_{b}" for b in range(config.n_brackets)]
    names.append("tax_marginal_rate")
    return names


def _agent_state_names() -> list[str]:
    return ["inventory_coin", "inventory_stone", "inventory_wood", "escrow_coin", "escrow_stone", "escrow_wood",
            "labour", "loc_row", "loc_col", "build_payment", "last_income", "last_marginal_rate",
            "marginal_rate"]


def state_feature_names(config: GTBConfig) -> list[str]:
    """Names of the designer state's non-map slots: global features, then each agent's block."""
    n, p = config.n_agents, config.n_prices
    names = ["time", "tax_is_tax_day", "tax_is_first_day", "tax_phase"]
    names += [f"tax_last_income_sorted_{j}" for j in range(n)]
    names += [f"tax_rate_{b}" for b in range(config.n_brackets)]
    for res in RESOURCES:
        names.append(f"{res}_market_rate")
        for block in ("price_history", "asks", "bids"):
            names += [f"{res}_{block}_{q}" for q in range(p)]
    for i in range(n):
        names += [f"agent_{i}_{f}" for f in _agent_state_names()]
    return names


@dataclasses.dataclass(frozen=True)
class GTBObservation:
    """Per-agent observations of B worlds: ``spatial`` (B, N, 9, V, V), ``flat`` (B, N, F), ``action_mask``
    (B, N, 50) int8 (1 = allowed; no-op is always allowed).

    ``spatial`` and ``flat`` are views into ``data``, the (B, N, 9·V·V + F + 50) float32 buffer that
    :meth:`packed` returns (the mask is its last part, as floats): one fresh buffer per step, so editing one of
    them edits the others, never the env.
    """

    spatial: NDArray[np.float32]
    flat: NDArray[np.float32]
    action_mask: NDArray[np.int8]
    data: NDArray[np.float32]

    def packed(self) -> NDArray[np.float32]:
        """(B, N, D) one vector per agent: spatial (flattened, channels first), flat, then the mask."""
        return self.data


class Observer:
    """Builds the observations, masks and the designer's map of B worlds of one layout (see the module doc).

    Args:
        config: game constants.
        layout: the map.
        n_envs: number of worlds B.
    """

    def __init__(self, config: GTBConfig, layout: MapLayout, n_envs: int) -> None:
        self.config = config
        self.layout = layout
        self.n_envs = n_envs
        self.n_agents = config.n_agents
        self.n_actions = 2 + 4 * config.n_prices + 4
        self.flat_names = flat_feature_names(config)
        self.state_names = state_feature_names(config)
        v = 2 * config.view_radius + 1
        self.spatial_shape = (len(SPATIAL_CHANNELS), v, v)
        self.spatial_size = len(SPATIAL_CHANNELS) * v * v
        self.size = self.spatial_size + len(self.flat_names) + self.n_actions
        buildable = ~(layout.stone | layout.wood | layout.water)
        self._statics = np.stack([layout.stone, layout.wood, layout.water, buildable]).astype(np.uint8)
        self._cutoffs = np.asarray(config.tax_cutoffs, dtype=np.float64)
        self._index_code = np.append(np.arange(self.n_agents) + 2, 0).astype(np.float32)  # [-1] -> 0

    def observe(self, s: GTBState, head: NDArray[np.float64], market_rate: NDArray[np.float64],
                payment_obs: NDArray[np.float64], income_obs: NDArray[np.float64]) -> GTBObservation:
        """Every agent's observation and mask in state ``s``.

        Args:
            s: the state.
            head: time / T, is-tax-day, is-first-day, cycle position / period.
            market_rate: (B, R) mean trade price per resource.
            payment_obs: (B, N) build payment / base payment.
            income_obs: (B, N) last period's incomes, sorted, per step of the period.
        """
        b, n = self.n_envs, self.n_agents
        data = np.empty((b, n, self.size), dtype=np.float32)
        mask = np.empty((b, n, self.n_actions), dtype=np.int8)
        cfg = self.config
        kernels.observe(s.resource, s.owner, s.occupant, s.pos, s.agent, s.order_kind, s.my_orders,
                        s.price_history, s.rates, s.last_coin, market_rate, payment_obs, income_obs, self._statics,
                        self._cutoffs, head, cfg.obs_scale, cfg.view_radius, cfg.max_orders, data, mask)
        a = self.spatial_size
        return GTBObservation(data[..., :a].reshape(b, n, *self.spatial_shape), data[..., a : a + len(self.flat_names)],
                              mask, data)

    def full_map(self, s: GTBState) -> NDArray[np.float32]:
        """(B, 8, H, W) the designer's map, channels :data:`STATE_MAP_CHANNELS`."""
        full = np.empty((self.n_envs, len(STATE_MAP_CHANNELS), *self.layout.shape), dtype=np.float32)
        full[:, 0:2] = s.resource
        full[:, 2] = self.layout.stone
        full[:, 3] = self.layout.wood
        full[:, 4] = self.layout.water
        full[:, 5] = s.owner >= 0
        full[:, 6] = self._index_code[s.owner]  # agent k -> k + 2, -1 (none) -> 0
        full[:, 7] = self._index_code[s.occupant]
        return full

    def state_bounds(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Finite ``(low, high)`` bounds of one world's designer state vector."""
        h, w = self.layout.shape
        map_high = np.ones((len(STATE_MAP_CHANNELS), h, w), dtype=np.float32)
        map_high[-2:] = self.n_agents + 1
        low = np.zeros(len(self.state_names), dtype=np.float32)
        high = np.full(len(self.state_names), _BIG, dtype=np.float32)
        for j, name in enumerate(self.state_names):
            if "last_income" in name:
                low[j] = -_BIG
            elif name in ("time", "tax_is_tax_day", "tax_is_first_day", "tax_phase") or "rate_" in name or (
                name.endswith("marginal_rate") or name.endswith(("loc_row", "loc_col"))
            ):
                high[j] = 1.0
        return (
            np.concatenate([np.zeros(map_high.size, dtype=np.float32), low]),
            np.concatenate([map_high.reshape(-1), high]),
        )

    def flat_bounds(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Finite ``(low, high)`` bounds of one agent's flat observation vector."""
        low = np.zeros(len(self.flat_names), dtype=np.float32)
        high = np.full(len(self.flat_names), _BIG, dtype=np.float32)
        for j, name in enumerate(self.flat_names):
            if name.startswith("tax_last_income"):
                low[j] = -_BIG
            elif name.startswith(("tax_is", "tax_phase", "tax_rate", "tax_marginal")) or name in (
                "loc_row", "loc_col", "time"
            ):
                high[j] = 1.0
            elif "market_rate" in name:
                high[j] = float(self.config.max_price)
        return low, high
