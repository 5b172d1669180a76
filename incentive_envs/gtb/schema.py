"""What a designer needs from Gather-Trade-Build beyond the PettingZoo API, published by the game itself.

- :class:`GTBSchema`: the layout of the agents' observations and of the designer's state (sizes and shapes),
  and decoders of the state values a tax designer reads (escrow coin, build payment, "a tax period starts
  with the next step", the rates in force). They work on NumPy arrays and torch tensors alike, so a designer
  never spells a feature name or undoes an observation scale itself.
- :data:`STEP_INFO_KEYS`: every key of an agent's per-step ``infos`` and what it means.
- :func:`utility`, :func:`agent_reward`, :func:`period_tax` (defined in :mod:`incentive_envs.gtb.rewards`):
  the agents' reward and the period tax as functions of the state; the engine computes its rewards and taxes
  with these very functions.

``tests/envs/test_gtb_schema.py`` checks all of it against the env: the sizes against its spaces, the
decoders against the engine's internal values, the info keys against its infos, and its rewards at every
step of random play with random tax rates against :func:`agent_reward` and :func:`period_tax`.

Example:
    >>> from incentive_envs.gather_trade_build import parallel_env
    >>> env = parallel_env()
    >>> schema = env.schema
    >>> schema.obs_size == env.observation_space("agent_0").shape[0], schema.state_size == env.state_space.shape[0]
    (True, True)
    >>> _ = env.reset(seed=0)
    >>> schema.escrow_coin(env.state()).tolist(), bool(schema.period_starts_next(env.state()))
    ([0.0, 0.0, 0.0, 0.0], True)
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np

from incentive_envs.gtb.components import ActionLayout
from incentive_envs.gtb.config import GTBConfig
from incentive_envs.gtb.layout import DEFAULT_LAYOUT, MapLayout, load_layout
from incentive_envs.gtb.observation import (
    _BASE_PAYMENT,
    SPATIAL_CHANNELS,
    STATE_MAP_CHANNELS,
    flat_feature_names,
    state_feature_names,
)
from incentive_envs.gtb.rewards import agent_reward, period_tax, utility

__all__ = ["STEP_INFO_KEYS", "GTBSchema", "agent_reward", "period_tax", "utility"]

Array = TypeVar("Array")  # np.ndarray or torch.Tensor: every decoder returns the kind it was given

STEP_INFO_KEYS: Final[tuple[str, ...]] = (
    "action_mask",
    "coin",
    "coin_pre_tax",
    "labour",
    "income",
    "tax_paid",
    "lump_sum",
    "marginal_rates",
    "tax_enacted",
    "tax_cycle_position",
    "productivity",
    "equality",
    "equality_times_productivity",
    "houses_built",
    "trades",
)
"""The keys of each agent's ``infos`` at reset and after every step, and nothing else.

"This step" is the step just taken; at reset the values are those of the start state (coin = starting coin,
no labour, no tax, ``tax_enacted`` False). Per-agent values are floats unless noted; ``marginal_rates`` to
``equality_times_productivity`` have the same value for every agent.

======================================  ========================================================================
key                                     meaning
======================================  ========================================================================
``action_mask``                         int8 ``(50,)``: 1 for the actions allowed at the next step (the mask in
                                        the observation; the no-op is always allowed).
``coin``                                total coin (inventory + escrow) after the step, after this step's tax
                                        and lump sum: what the agent's utility is computed on.
``coin_pre_tax``                        total coin after this step's build, market and gather components and
                                        before this step's tax and lump sum; equals ``coin`` off enactment
                                        steps.
``labour``                              cumulative labour after the step.
``income``                              the period's income so far: ``coin_pre_tax`` minus the total coin
                                        right after the previous enactment (or at reset); on an enactment step
                                        the income that was taxed.
``tax_paid``                            tax collected from the agent at the end of this step (0 off enactment
                                        steps): :func:`period_tax`'s ``paid``.
``lump_sum``                            the agent's equal share of this step's tax revenue (0 off enactment
                                        steps): :func:`period_tax`'s ``lump_sum``.
``marginal_rates``                      float64 ``(K,)``: the rates in force this step (the rates set with
                                        ``set_tax_rates`` enter at a period's first step).
``tax_enacted``                         bool: this step ended a tax period, taxes were collected and returned
                                        (steps ``tax_period``, ``2 tax_period``, ...).
``tax_cycle_position``                  int: position of the *next* step in its tax period, 1 .. ``tax_period``
                                        (1: a period starts with the next step, so rates set now apply to it).
``productivity``                        sum of ``coin`` over the agents.
``equality``                            ``1 - Gini * N / (N - 1)`` of ``coin``.
``equality_times_productivity``         ``equality * productivity``.
``houses_built``                        houses the agent has built this episode (after the step).
``trades``                              trades the agent has taken part in this episode: units bought plus
                                        units sold (after the step).
======================================  ========================================================================
"""


@dataclasses.dataclass(frozen=True)
class GTBSchema:
    """The layout of Gather-Trade-Build's observations and designer state, with decoders of the state.

    Build it with :meth:`of` (from a config and a layout) or take it from a built env
    (:attr:`incentive_envs.gather_trade_build.GatherTradeBuildEnv.schema`).

    An agent's flat observation is ``[spatial (C, V, V) flattened | flat features | action mask]``
    (:attr:`obs_size` values); the designer's state (``env.state()``) is ``[map (8, H, W) flattened | features]``
    (:attr:`state_size` values). The decoders take ``[..., state_size]`` NumPy arrays or torch tensors and return
    the same kind (dtype and device kept).

    Attributes:
        config: the game constants.
        n_agents, n_brackets: agents N and tax brackets K.
        spatial_shape: an agent's egocentric view ``(9, V, V)``, channels first, as packed in its observation.
        flat_size: an agent's flat features (after the view).
        mask_size: the action mask at the end of an agent's observation (= the number of actions).
        map_shape: the designer's full map ``(8, H, W)``, channels first.
        state_flat: the designer state's features after the map.
        tax_period: steps per tax period.
        tax_cutoffs: the K bracket lower edges (coin per period).
        escrow_index, payment_index: per agent, the state slot of its scaled escrow coin / scaled build payment.
        first_day_index: the state slot of the "a tax period starts with the next step" flag.
        rate_index: the K state slots of the rates in force.

    Prefer the decoders to the raw ``*_index`` slots: they also undo the scaling.
    """

    config: GTBConfig
    n_agents: int
    n_brackets: int
    spatial_shape: tuple[int, int, int]
    flat_size: int
    mask_size: int
    map_shape: tuple[int, int, int]
    state_flat: int
    tax_period: int
    tax_cutoffs: tuple[float, ...]
    escrow_index: tuple[int, ...]
    payment_index: tuple[int, ...]
    first_day_index: int
    rate_index: tuple[int, ...]

    @classmethod
    def of(cls, config: GTBConfig, layout: str | Path | MapLayout = DEFAULT_LAYOUT) -> GTBSchema:
        """The schema of the game with these constants on this map (a packaged name, a file or a layout)."""
        h, w = load_layout(layout).shape
        n, v = config.n_agents, 2 * config.view_radius + 1
        names = state_feature_names(config)
        map_size = len(STATE_MAP_CHANNELS) * h * w
        at = {name: map_size + j for j, name in enumerate(names)}
        return cls(
            config=config,
            n_agents=n,
            n_brackets=config.n_brackets,
            spatial_shape=(len(SPATIAL_CHANNELS), v, v),
            flat_size=len(flat_feature_names(config)),
            mask_size=ActionLayout(config.n_prices).n,
            map_shape=(len(STATE_MAP_CHANNELS), h, w),
            state_flat=len(names),
            tax_period=config.tax_period,
            tax_cutoffs=tuple(float(c) for c in config.tax_cutoffs),
            escrow_index=tuple(at[f"agent_{i}_escrow_coin"] for i in range(n)),
            payment_index=tuple(at[f"agent_{i}_build_payment"] for i in range(n)),
            first_day_index=at["tax_is_first_day"],
            rate_index=tuple(at[f"tax_rate_{b}"] for b in range(config.n_brackets)),
        )

    @property
    def obs_size(self) -> int:
        """Length of an agent's flat observation: view, flat features, action mask."""
        return math.prod(self.spatial_shape) + self.flat_size + self.mask_size

    @property
    def state_size(self) -> int:
        """Length of the designer's state vector: map, then features."""
        return math.prod(self.map_shape) + self.state_flat

    # ------------------------------------------------------------------ decoders of [..., state_size]
    def escrow_coin(self, state: Array) -> Array:
        """``[..., N]`` coin each agent holds in escrow (in its open bids), exactly.

        The state holds ``escrow * obs_scale`` in float32. Escrow coin is always a whole number: a bid puts its
        integer price (``0 .. max_price``) in escrow, and matching and expiry take out exactly that price; at
        most ``2 * max_orders`` bids are open at once (two resources), so escrow <= ``2 * max_orders *
        max_price`` (100 with the defaults). The float32 round trip errs by a relative ~1e-7, far less than
        0.5 for such numbers, so rounding ``state / obs_scale`` recovers the integer exactly.
        """
        x: Any = _array(state)
        return (x[..., list(self.escrow_index)] / self.config.obs_scale).round()

    def build_payment(self, state: Array) -> Array:
        """``[..., N]`` each agent's build payment (coin per house: its skill), exactly.

        The state holds ``payment / 10`` in float32; every payment is one of ``config.build_payments``, so the
        nearest of those is returned (in the dtype of ``state``).
        """
        x: Any = _array(state)
        decoded = x[..., list(self.payment_index)] * _BASE_PAYMENT
        payments = self.config.build_payments
        table = x.new_tensor(payments) if hasattr(x, "new_tensor") else np.asarray(payments, dtype=x.dtype)
        nearest = abs(decoded[..., None] - table).argmin(-1)
        return table[nearest]

    def period_starts_next(self, state: Array) -> Array:
        """``[...]`` bool: a tax period starts with the next step (rates set now apply to it).

        True in the state at reset and after every enactment step (the ``tax_is_first_day`` flag; the env's
        ``tax_cycle_position == 1``).
        """
        x: Any = _array(state)
        return x[..., self.first_day_index] > 0.5

    def rates(self, state: Array) -> Array:
        """``[..., K]`` the marginal rates in force at the step that produced this state (float32 precision).

        At a period start (:meth:`period_starts_next`) rates set with ``set_tax_rates`` replace them with the
        next step; otherwise they stay in force.
        """
        x: Any = _array(state)
        return x[..., list(self.rate_index)]


def _array(x: Any) -> Any:
    """Tensors and arrays as given; anything else (lists) as a NumPy array."""
    return x if hasattr(x, "ndim") else np.asarray(x)
