"""Tax, redistribution and welfare arithmetic shared by Gather-Trade-Build, the tax wrapper and tax designer.

Every function here works unchanged on NumPy arrays and on torch tensors: it only uses operations both
support (arithmetic, broadcasting, ``.clip(min=...)``, ``.clip(max=...)``, ``.sum(-1)``, ``abs``). The env
computes taxes in NumPy, and the differentiable tax designer recomputes the very same formula in torch with
gradients; there is one implementation so the two cannot drift apart.

References are to the reimplementation spec ``method.md``: §3.3.2/§3.3.10 (PeriodicBracketTax), §2.5
(in-graph reward) and §3.3.6 (utility and social metrics).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any, Final, TypeVar

import numpy as np

__all__ = [
    "US_FEDERAL_2018_CUTOFFS",
    "US_FEDERAL_2018_RATES",
    "bracket_sizes",
    "bracket_tax",
    "check_cutoffs",
    "check_rates",
    "collect_and_redistribute",
    "equality",
    "gini",
    "isoelastic_utility",
    "lump_sum",
    "productivity",
]

Array = TypeVar("Array")  # np.ndarray or torch.Tensor: every function returns the type it was given

US_FEDERAL_2018_CUTOFFS: Final[tuple[float, ...]] = (0.0, 9.7, 39.475, 84.2, 160.725, 204.1, 510.3)
"""Lower edge of each 2018 US federal single-filer bracket in coin (USD / 1000, method.md §3.3.2)."""

US_FEDERAL_2018_RATES: Final[tuple[float, ...]] = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)
"""Marginal rate of each 2018 US federal bracket (method.md §3.3.8)."""

GINI_EPS: Final = 1e-10
"""Added to the Gini denominator so that all-zero endowments give Gini 0 (as Foundation's ``get_gini``)."""


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor can only exist if torch is already imported
    return torch is not None and isinstance(x, torch.Tensor)


def _like(values: Any, ref: Any) -> Any:
    """``values`` as an array of the same kind (NumPy or torch, dtype, device) as ``ref``."""
    if _is_torch(ref):
        import torch

        return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=ref.dtype, device=ref.device)
    return np.asarray(values, dtype=np.result_type(np.asarray(ref).dtype, np.float64))


def _as_array(x: Any) -> Any:
    """Tensors stay tensors; anything else (floats, lists) becomes a float64 NumPy array."""
    return x if _is_torch(x) or isinstance(x, np.ndarray) else np.asarray(x, dtype=np.float64)


def check_cutoffs(cutoffs: Sequence[float] | Any) -> np.ndarray:
    """Validate bracket cutoffs and return them as a float64 array.

    Raises:
        ValueError: not a non-empty 1-D finite sequence starting at 0 and strictly increasing.
    """
    cut = np.asarray(cutoffs.detach().cpu() if _is_torch(cutoffs) else cutoffs, dtype=np.float64)
    if cut.ndim != 1 or cut.size == 0:
        raise ValueError(f"cutoffs must be a non-empty 1-D sequence, got shape {cut.shape}")
    if not np.isfinite(cut).all():
        raise ValueError(f"cutoffs must be finite, got {cut.tolist()}")
    if cut[0] != 0.0:
        raise ValueError(f"the first cutoff must be 0 (the lowest bracket starts at zero), got {cut[0]}")
    if np.any(np.diff(cut) <= 0):
        raise ValueError(f"cutoffs must be strictly increasing, got {cut.tolist()}")
    return cut


def check_rates(rates: Sequence[float] | Any, n_brackets: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """Validate one vector of marginal rates (one per bracket) and return it as a float64 array.

    Raises:
        ValueError: wrong shape, or a rate outside ``[low, high]`` (rates are never clipped).
        FloatingPointError: a rate is NaN or infinite.
    """
    r = np.asarray(rates.detach().cpu() if _is_torch(rates) else rates, dtype=np.float64)
    if r.shape != (n_brackets,):
        raise ValueError(f"expected {n_brackets} marginal rates (one per bracket), got shape {r.shape}")
    if not np.isfinite(r).all():
        raise FloatingPointError(f"marginal rates must be finite, got {r.tolist()}")
    if np.any(r < low) or np.any(r > high):
        raise ValueError(f"marginal rates must lie in [{low}, {high}], got {r.tolist()}")
    return r


def bracket_sizes(cutoffs: Sequence[float] | Any) -> np.ndarray:
    """Width of each bracket: the gaps between cutoffs, and ``inf`` for the unbounded top bracket."""
    cut = check_cutoffs(cutoffs)
    return np.append(np.diff(cut), math.inf)


def bracket_tax(income: Array, rates: Any, cutoffs: Sequence[float] | Any = US_FEDERAL_2018_CUTOFFS) -> Array:
    """Progressive bracket tax: ``sum_b rate_b * clip(income - cut_b, 0, size_b)`` (method.md §3.3.10).

    Income below zero pays nothing; the top bracket is unbounded.

    Args:
        income: pre-tax income, any shape ``S`` (NumPy array, torch tensor, or a float/list).
        rates: marginal rates, shape ``(B,)`` or broadcastable ``S + (B,)``; a tensor keeps its gradient.
        cutoffs: ``B`` bracket lower edges starting at 0.

    Returns:
        Tax due, shape ``S``, as a torch tensor if ``income`` or ``rates`` is one, else a NumPy array.

    Raises:
        ValueError: invalid cutoffs, or ``rates`` whose last axis is not the number of brackets.
    """
    if _is_torch(rates) and not _is_torch(income):
        income = _like(income, rates)
    income = _as_array(income)
    cut = check_cutoffs(cutoffs)
    rates = rates if _is_torch(rates) else _like(rates, income)
    if rates.shape[-1:] != (cut.size,):
        raise ValueError(
            f"rates must have {cut.size} entries on the last axis (one per bracket), got {tuple(rates.shape)}"
        )
    above_cut = (income[..., None] - _like(cut, income)).clip(min=0.0)
    in_bracket = above_cut.clip(max=_like(bracket_sizes(cut), income))
    return (in_bracket * rates).sum(-1)


def lump_sum(taxes: Array) -> Array:
    """Equal redistribution of the revenue over the last axis: every agent gets ``sum(taxes) / N``.

    Foundation returns the revenue of each tax period as an equal lump sum to all agents (method.md §3.3.2).
    """
    taxes = _as_array(taxes)
    n = taxes.shape[-1]
    if n == 0:
        raise ValueError("lump_sum needs at least one agent on the last axis")
    return taxes * 0.0 + taxes.sum(-1)[..., None] / n


def collect_and_redistribute(
    income: Array,
    rates: Any,
    cutoffs: Sequence[float] | Any = US_FEDERAL_2018_CUTOFFS,
    available: Any = None,
) -> tuple[Array, Array]:
    """Tax each agent (last axis = agents), then return the revenue as an equal lump sum.

    With ``available`` (the coin each agent holds in its inventory) the amount collected is
    ``min(available, tax due)``: Foundation never takes escrowed coin or drives inventory negative
    (method.md §3.3.10). The designer's in-graph reward uses the same rule (§2.5).

    Returns:
        ``(paid, share)``: each agent's tax actually collected and its lump-sum share, same shape as
        ``income``; ``paid.sum(-1) == share.sum(-1)`` up to rounding.
    """
    due = bracket_tax(income, rates, cutoffs)
    if available is None:
        return due, lump_sum(due)
    paid = due.clip(max=available if _is_torch(available) else _like(available, due))
    return paid, lump_sum(paid)


def isoelastic_utility(coin: Array, labour: Any, eta: float = 0.23, labour_cost: float = 0.21) -> Array:
    """Agent utility ``(max(c, 0.01)^(1-eta) - 1) / (1-eta) - labour_cost * L`` (method.md §2.5, §3.3.6).

    ``coin`` is total coin (inventory + escrow) and ``labour`` the cumulative labour. The GTB agent's reward
    is the change of this utility between steps.

    Raises:
        ValueError: ``eta`` is 1 (the formula's singular point), negative or not finite, or ``labour_cost`` is
            negative or not finite.
    """
    if not (math.isfinite(eta) and eta >= 0.0 and eta != 1.0):
        raise ValueError(f"eta must be finite, >= 0 and != 1, got {eta!r}")
    if not (math.isfinite(labour_cost) and labour_cost >= 0.0):
        raise ValueError(f"labour_cost must be finite and >= 0, got {labour_cost!r}")
    coin = _as_array(coin)
    labour = labour if _is_torch(labour) else _like(labour, coin)
    return (coin.clip(min=0.01) ** (1.0 - eta) - 1.0) / (1.0 - eta) - labour_cost * labour


def productivity(coin: Array) -> Array:
    """Total coin over the last (agent) axis: ``sum_i c_i`` (method.md §3.3.6)."""
    return _as_array(coin).sum(-1)


def gini(coin: Array) -> Array:
    """Gini over the last (agent) axis: ``sum_ij |c_i - c_j| / (2 N sum_i c_i)`` (method.md §3.3.6).

    This is method.md's Gini, before the ``N / (N - 1)`` small-population correction of :func:`equality`.

    :data:`GINI_EPS` is added to the denominator so that all-zero endowments give 0 rather than NaN.
    """
    c = _as_array(coin)
    n = c.shape[-1]
    diff = abs(c[..., :, None] - c[..., None, :]).sum(-1).sum(-1)
    return diff / (2.0 * n * c.sum(-1) + GINI_EPS)


def equality(coin: Array) -> Array:
    """``1 - Gini * N / (N - 1)``: 1 for equal endowments, 0 when one agent has everything (method.md §3.3.6).

    Raises:
        ValueError: fewer than two agents (equality is undefined).
    """
    c = _as_array(coin)
    n = c.shape[-1]
    if n < 2:
        raise ValueError(f"equality needs at least 2 agents on the last axis, got {n}")
    return 1.0 - gini(c) * n / (n - 1)
