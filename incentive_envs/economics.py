"""Tax, redistribution and welfare arithmetic shared by Gather-Trade-Build, the tax wrapper and tax designer.

Every function here works unchanged on NumPy arrays and on torch tensors: it only uses operations both
support (arithmetic, broadcasting, ``.clip(min=...)``, ``.clip(max=...)``, ``.sum(-1)``, ``abs``). The env
computes taxes in NumPy, and the differentiable tax designer recomputes the very same formula in torch with
gradients; there is one implementation so the two cannot drift apart. Each formula is a private function
generic in :data:`Array`, so mypy checks it once for NumPy and once for torch; the public function picks the
kind (a torch tensor if an input is one, else a float64 NumPy array) and calls it.

References are to the reimplementation spec ``method.md``: §3.3.2/§3.3.10 (PeriodicBracketTax), §2.5
(in-graph reward) and §3.3.6 (utility and social metrics).
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Final, TypeAlias, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import torch
    from typing_extensions import TypeIs

__all__ = [
    "US_FEDERAL_2018_CUTOFFS",
    "US_FEDERAL_2018_RATES",
    "Array",
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

Array = TypeVar("Array", "NDArray[np.float64]", "torch.Tensor")
"""A float64 NumPy array or a torch tensor, one kind per call: a formula generic in it returns the kind it got."""

ArrayInput: TypeAlias = "ArrayLike | torch.Tensor"
"""What the public functions accept: a torch tensor, a NumPy array, or anything NumPy converts (floats, lists)."""

US_FEDERAL_2018_CUTOFFS: Final[tuple[float, ...]] = (0.0, 9.7, 39.475, 84.2, 160.725, 204.1, 510.3)
"""Lower edge of each 2018 US federal single-filer bracket in coin (USD / 1000, method.md §3.3.2)."""

US_FEDERAL_2018_RATES: Final[tuple[float, ...]] = (0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37)
"""Marginal rate of each 2018 US federal bracket (method.md §3.3.8)."""

GINI_EPS: Final = 1e-10
"""Added to the Gini denominator so that all-zero endowments give Gini 0 (as Foundation's ``get_gini``)."""


def _is_torch(x: object) -> TypeIs[torch.Tensor]:
    torch = sys.modules.get("torch")  # a tensor can only exist if torch is already imported
    return torch is not None and isinstance(x, torch.Tensor)


def _like(values: ArrayInput, ref: Array) -> Array:
    """``values`` as an array of the same kind (NumPy or torch, dtype, device) as ``ref``."""
    if _is_torch(ref):
        import torch

        return torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=ref.dtype, device=ref.device)
    return np.asarray(values, dtype=np.result_type(np.asarray(ref).dtype, np.float64))


def _as_numpy(x: ArrayLike) -> NDArray[np.float64]:
    """NumPy arrays stay as they are; anything else (floats, lists) becomes a float64 NumPy array."""
    return x if isinstance(x, np.ndarray) else np.asarray(x, dtype=np.float64)


def check_cutoffs(cutoffs: ArrayInput) -> NDArray[np.float64]:
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


def check_rates(rates: ArrayInput, n_brackets: int, low: float = 0.0, high: float = 1.0) -> NDArray[np.float64]:
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


def bracket_sizes(cutoffs: ArrayInput) -> NDArray[np.float64]:
    """Width of each bracket: the gaps between cutoffs, and ``inf`` for the unbounded top bracket."""
    cut = check_cutoffs(cutoffs)
    return np.append(np.diff(cut), math.inf)


@overload
def bracket_tax(income: torch.Tensor, rates: ArrayInput, cutoffs: ArrayInput = ...) -> torch.Tensor: ...
@overload
def bracket_tax(income: ArrayInput, rates: torch.Tensor, cutoffs: ArrayInput = ...) -> torch.Tensor: ...
@overload
def bracket_tax(income: ArrayLike, rates: ArrayLike, cutoffs: ArrayInput = ...) -> NDArray[np.float64]: ...
def bracket_tax(
    income: ArrayInput, rates: ArrayInput, cutoffs: ArrayInput = US_FEDERAL_2018_CUTOFFS
) -> NDArray[np.float64] | torch.Tensor:
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
    if _is_torch(rates):  # the income joins tensor rates (their dtype and device) unless it is a tensor itself
        return _bracket_tax(income if _is_torch(income) else _like(income, rates), rates, cutoffs)
    if _is_torch(income):
        return _bracket_tax(income, rates, cutoffs)
    return _bracket_tax(_as_numpy(income), rates, cutoffs)


def _bracket_tax(income: Array, rates: ArrayInput, cutoffs: ArrayInput) -> Array:
    cut = check_cutoffs(cutoffs)
    r = rates if _is_torch(rates) else _like(rates, income)
    if r.shape[-1:] != (cut.size,):
        raise ValueError(f"rates must have {cut.size} entries on the last axis (one per bracket), got {tuple(r.shape)}")
    above_cut = (income[..., None] - _like(cut, income)).clip(min=0.0)
    in_bracket = above_cut.clip(max=_like(bracket_sizes(cut), income))
    return (in_bracket * r).sum(-1)


@overload
def lump_sum(taxes: torch.Tensor) -> torch.Tensor: ...
@overload
def lump_sum(taxes: ArrayLike) -> NDArray[np.float64]: ...
def lump_sum(taxes: ArrayInput) -> NDArray[np.float64] | torch.Tensor:
    """Equal redistribution of the revenue over the last axis: every agent gets ``sum(taxes) / N``.

    Foundation returns the revenue of each tax period as an equal lump sum to all agents (method.md §3.3.2).
    """
    return _lump_sum(taxes) if _is_torch(taxes) else _lump_sum(_as_numpy(taxes))


def _lump_sum(taxes: Array) -> Array:
    n = taxes.shape[-1]
    if n == 0:
        raise ValueError("lump_sum needs at least one agent on the last axis")
    return taxes * 0.0 + taxes.sum(-1)[..., None] / n


@overload
def collect_and_redistribute(
    income: torch.Tensor, rates: ArrayInput, cutoffs: ArrayInput = ..., available: ArrayInput | None = ...
) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def collect_and_redistribute(
    income: ArrayInput, rates: torch.Tensor, cutoffs: ArrayInput = ..., available: ArrayInput | None = ...
) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def collect_and_redistribute(
    income: ArrayLike, rates: ArrayLike, cutoffs: ArrayInput = ..., available: ArrayInput | None = ...
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def collect_and_redistribute(
    income: ArrayInput,
    rates: ArrayInput,
    cutoffs: ArrayInput = US_FEDERAL_2018_CUTOFFS,
    available: ArrayInput | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | tuple[torch.Tensor, torch.Tensor]:
    """Tax each agent (last axis = agents), then return the revenue as an equal lump sum.

    With ``available`` (the coin each agent holds in its inventory) the amount collected is
    ``min(available, tax due)``: Foundation never takes escrowed coin or drives inventory negative
    (method.md §3.3.10). The designer's in-graph reward uses the same rule (§2.5).

    Returns:
        ``(paid, share)``: each agent's tax actually collected and its lump-sum share, same shape as
        ``income``, torch tensors if ``income`` or ``rates`` is one; ``paid.sum(-1) == share.sum(-1)`` up to
        rounding.
    """
    due = bracket_tax(income, rates, cutoffs)
    if _is_torch(due):
        return _collect(due, available)
    return _collect(due, available)  # the same formula; mypy checks it for each kind


def _collect(due: Array, available: ArrayInput | None) -> tuple[Array, Array]:
    if available is None:
        return due, _lump_sum(due)
    paid = due.clip(max=available if _is_torch(available) else _like(available, due))
    return paid, _lump_sum(paid)


@overload
def isoelastic_utility(
    coin: torch.Tensor, labour: ArrayInput, eta: float = ..., labour_cost: float = ...
) -> torch.Tensor: ...
@overload
def isoelastic_utility(
    coin: ArrayLike, labour: ArrayLike, eta: float = ..., labour_cost: float = ...
) -> NDArray[np.float64]: ...
def isoelastic_utility(
    coin: ArrayInput, labour: ArrayInput, eta: float = 0.23, labour_cost: float = 0.21
) -> NDArray[np.float64] | torch.Tensor:
    """Agent utility ``(max(c, 0.01)^(1-eta) - 1) / (1-eta) - labour_cost * L`` (method.md §2.5, §3.3.6).

    ``coin`` is total coin (inventory + escrow) and ``labour`` the cumulative labour. The GTB agent's reward
    is the change of this utility between steps. The result is a torch tensor if ``coin`` is one.

    Raises:
        ValueError: ``eta`` is 1 (the formula's singular point), negative or not finite, or ``labour_cost`` is
            negative or not finite.
    """
    if not (math.isfinite(eta) and eta >= 0.0 and eta != 1.0):
        raise ValueError(f"eta must be finite, >= 0 and != 1, got {eta!r}")
    if not (math.isfinite(labour_cost) and labour_cost >= 0.0):
        raise ValueError(f"labour_cost must be finite and >= 0, got {labour_cost!r}")
    if _is_torch(coin):
        return _isoelastic_utility(coin, labour, eta, labour_cost)
    return _isoelastic_utility(_as_numpy(coin), labour, eta, labour_cost)


def _isoelastic_utility(coin: Array, labour: ArrayInput, eta: float, labour_cost: float) -> Array:
    lab = labour if _is_torch(labour) else _like(labour, coin)
    return (coin.clip(min=0.01) ** (1.0 - eta) - 1.0) / (1.0 - eta) - labour_cost * lab


@overload
def productivity(coin: torch.Tensor) -> torch.Tensor: ...
@overload
def productivity(coin: ArrayLike) -> NDArray[np.float64]: ...
def productivity(coin: ArrayInput) -> NDArray[np.float64] | torch.Tensor:
    """Total coin over the last (agent) axis: ``sum_i c_i`` (method.md §3.3.6)."""
    return coin.sum(-1) if _is_torch(coin) else _as_numpy(coin).sum(-1)


@overload
def gini(coin: torch.Tensor) -> torch.Tensor: ...
@overload
def gini(coin: ArrayLike) -> NDArray[np.float64]: ...
def gini(coin: ArrayInput) -> NDArray[np.float64] | torch.Tensor:
    """Gini over the last (agent) axis: ``sum_ij |c_i - c_j| / (2 N sum_i c_i)`` (method.md §3.3.6).

    This is method.md's Gini, before the ``N / (N - 1)`` small-population correction of :func:`equality`.

    :data:`GINI_EPS` is added to the denominator so that all-zero endowments give 0 rather than NaN.
    """
    return _gini(coin) if _is_torch(coin) else _gini(_as_numpy(coin))


def _gini(c: Array) -> Array:
    n = c.shape[-1]
    diff = abs(c[..., :, None] - c[..., None, :]).sum(-1).sum(-1)
    return diff / (2.0 * n * c.sum(-1) + GINI_EPS)


@overload
def equality(coin: torch.Tensor) -> torch.Tensor: ...
@overload
def equality(coin: ArrayLike) -> NDArray[np.float64]: ...
def equality(coin: ArrayInput) -> NDArray[np.float64] | torch.Tensor:
    """``1 - Gini * N / (N - 1)``: 1 for equal endowments, 0 when one agent has everything (method.md §3.3.6).

    Raises:
        ValueError: fewer than two agents (equality is undefined).
    """
    return _equality(coin) if _is_torch(coin) else _equality(_as_numpy(coin))


def _equality(c: Array) -> Array:
    n = c.shape[-1]
    if n < 2:
        raise ValueError(f"equality needs at least 2 agents on the last axis, got {n}")
    return 1.0 - _gini(c) * n / (n - 1)
