"""Constants of Gather-Trade-Build, as one validated, frozen config (defaults = method.md §3.3)."""

from __future__ import annotations

import dataclasses
import math
from typing import Final

from incentive_envs.economics import US_FEDERAL_2018_CUTOFFS, check_cutoffs

__all__ = ["FIXED_FOUR_BUILD_PAYMENTS", "GTBConfig"]

FIXED_FOUR_BUILD_PAYMENTS: Final[tuple[float, ...]] = (11.33, 13.27, 16.47, 22.25)
"""Coin per house of the four fixed skills, worst to best (Foundation ``fixed_four_skill_and_loc``)."""


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _positive_int(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class GTBConfig:
    """Every rule constant of the game. The defaults are the paper's (Foundation ``layout_from_file``).

    Attributes:
        episode_length: steps per episode (truncation).
        starting_coin: inventory coin of every agent at reset.
        build_payments: coin per house for the skill slots, worst to best; one agent per slot.
        build_labour: labour of building one house (costs 1 wood + 1 stone).
        max_price: bids and asks are integers ``0..max_price``.
        max_orders: open orders (bids + asks) per agent and resource.
        order_labour: labour per order created.
        order_duration: an order resting longer than this many steps is refunded.
        move_labour: labour of a successful move.
        collect_labour: labour of collecting one resource unit.
        tax_period: steps per tax period; taxes are enacted at the end of every period.
        tax_cutoffs: lower income edge of each bracket (coin per period).
        regen_prob: per-step probability that an empty source tile regrows.
        isoelastic_eta: curvature of the coin utility.
        labour_cost: utility cost per unit of labour.
        view_radius: the egocentric view is ``2 r + 1`` tiles wide.
        price_history_decay: per-step decay of the observed trade-price histogram.
        obs_scale: scale applied to coin, resource and labour amounts in observations.
    """

    episode_length: int = 100
    starting_coin: float = 10.0
    build_payments: tuple[float, ...] = FIXED_FOUR_BUILD_PAYMENTS
    build_labour: float = 10.0
    max_price: int = 10
    max_orders: int = 5
    order_labour: float = 0.25
    order_duration: int = 50
    move_labour: float = 1.0
    collect_labour: float = 1.0
    tax_period: int = 10
    tax_cutoffs: tuple[float, ...] = US_FEDERAL_2018_CUTOFFS
    regen_prob: float = 0.01
    isoelastic_eta: float = 0.23
    labour_cost: float = 0.21
    view_radius: int = 5
    price_history_decay: float = 0.995
    obs_scale: float = 0.01

    def __post_init__(self) -> None:
        for name in ("episode_length", "max_price", "max_orders", "order_duration", "tax_period"):
            _positive_int(name, getattr(self, name))
        _positive_int("view_radius", self.view_radius, 0)
        for name in ("starting_coin", "build_labour", "order_labour", "move_labour", "collect_labour",
                     "labour_cost", "isoelastic_eta"):
            _positive(name, float(getattr(self, name)), allow_zero=True)
        _positive("obs_scale", float(self.obs_scale))
        if len(self.build_payments) != 4:
            raise ValueError(f"build_payments needs one payment per start corner (4), got {self.build_payments}")
        for p in self.build_payments:
            _positive("build_payments entry", float(p), allow_zero=True)
        if not (0.0 <= self.regen_prob <= 1.0):
            raise ValueError(f"regen_prob must be in [0, 1], got {self.regen_prob!r}")
        if not (0.0 < self.price_history_decay <= 1.0):
            raise ValueError(f"price_history_decay must be in (0, 1], got {self.price_history_decay!r}")
        if self.isoelastic_eta == 1.0:
            raise ValueError("isoelastic_eta must not be 1 (the isoelastic formula is singular there)")
        check_cutoffs(self.tax_cutoffs)

    @property
    def n_agents(self) -> int:
        return len(self.build_payments)

    @property
    def n_brackets(self) -> int:
        return len(self.tax_cutoffs)

    @property
    def n_prices(self) -> int:
        return self.max_price + 1
