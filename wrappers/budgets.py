"""The arithmetic the incentive books rely on: exact sums, the budget scale factor, finite totals.

The budgets bound the paid incentives summed *exactly*: every float is an integer multiple of ``2**-1074``, so
:func:`fixed` turns payments into integers whose sums are exact, and the books keep the episode's total that
way. The booked costs (``step_cost``, ``episode_cost``) are these exact sums rounded to the nearest float, so
they are within the budgets too (rounding is monotone and the budgets are floats). :func:`scale_factor` gives,
in closed form, a factor that provably keeps the exact sums within the budgets after the payments are
multiplied by it and rounded. (It used to be found by stepping a factor down one ulp at a time until a rounded
sum fit, which on large, nearly cancelling payments took ~1e15 steps: issue #16.) :func:`recentred` balances
payments without overflowing and :func:`finite_total` refuses a total that would become infinite.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Final

__all__ = [
    "exact_sum",
    "exact_value",
    "finite_total",
    "fixed",
    "fixed_sum",
    "mean",
    "recentred",
    "scale_factor",
    "to_float",
    "within_budgets",
]

_FIXED_BITS: Final = 1074
"""Every finite float is an integer multiple of ``2**-1074`` (the smallest subnormal)."""

_ONE: Final = 1 << _FIXED_BITS

_UNIT_ROUNDOFF: Final = Fraction(1, 2**53)
"""``u``: a float operation on normal numbers is off by at most ``u`` times its exact result."""

_HALF_SUBNORMAL: Final = Fraction(1, 2**1075)
"""``eta``: the most a product is off when it falls among the subnormal numbers (half the smallest float)."""

_FLOAT_MAX: Final = Fraction(sys.float_info.max)


def fixed(value: float) -> int:
    """``value`` (a finite float) exactly, as an integer number of ``2**-1074``: sums of these are exact."""
    num, den = float(value).as_integer_ratio()
    return num << (_FIXED_BITS + 1 - den.bit_length())


def fixed_sum(values: Iterable[float]) -> int:
    """The exact sum of finite floats, in units of ``2**-1074`` (see :func:`fixed`)."""
    return sum(map(fixed, values))


def to_float(total: int) -> float:
    """``total * 2**-1074`` rounded to the nearest float; ``±inf`` when it lies beyond the float range."""
    try:
        return total / _ONE  # int / int is correctly rounded
    except OverflowError:
        return math.inf if total > 0 else -math.inf


def exact_value(total: int) -> Fraction:
    """The exact value of a total in units of ``2**-1074`` (e.g. of :func:`fixed_sum`)."""
    return Fraction(total, _ONE)


def exact_sum(values: Iterable[float]) -> float:
    """The correctly rounded sum of finite floats; ``±inf`` only when that sum lies beyond the float range."""
    return to_float(fixed_sum(values))


def mean(values: Sequence[float]) -> float:
    """The correctly rounded mean of finite floats; it never overflows (it lies within their range)."""
    return fixed_sum(values) / (len(values) << _FIXED_BITS)


def within_budgets(step_total: int, spent: int, per_step: float | None, per_episode: float | None) -> bool:
    """Whether a step's exact total fits: ``|step_total| <= per_step`` and ``|spent + step_total| <= per_episode``.

    ``step_total`` and ``spent`` (the episode's exact total so far) are in units of ``2**-1074``.
    """
    if per_step is not None and abs(step_total) > fixed(per_step):
        return False
    return per_episode is None or abs(spent + step_total) <= fixed(per_episode)


def _rounded_down(value: Fraction) -> float:
    """The largest float ``<= value`` (``value`` in [0, 1]): one correction of ``float()``, no search."""
    down = float(value)
    return math.nextafter(down, 0.0) if Fraction(down) > value else down


def _largest_fit(constraints: list[tuple[Fraction, Fraction]]) -> float:
    """The largest float ``f`` in [0, 1] with ``alpha * f <= beta`` for every ``(alpha, beta)``; 0.0 if none is."""
    low, high = Fraction(0), Fraction(1)
    for alpha, beta in constraints:
        if alpha > 0:
            high = min(high, beta / alpha)
        elif alpha < 0:
            low = max(low, beta / alpha)
        elif beta < 0:
            return 0.0
    factor = _rounded_down(high) if low <= high else 0.0
    return factor if all(alpha * Fraction(factor) <= beta for alpha, beta in constraints) else 0.0


def _constraints(
    t: Fraction, a: Fraction, n: int, spent: Fraction, budgets: tuple[float | None, float | None], margin: bool
) -> list[tuple[Fraction, Fraction]]:
    """The bounds ``alpha * f <= beta`` on the factor (see :func:`scale_factor`), with or without rounding margin."""
    per_step, per_episode = budgets
    u, eta = (_UNIT_ROUNDOFF, _HALF_SUBNORMAL) if margin else (Fraction(0), Fraction(0))
    noise, tiny = u * a, n * eta
    step_bound = _FLOAT_MAX if per_step is None else min(Fraction(per_step), _FLOAT_MAX)
    constraints = [(t + noise, step_bound - tiny), (noise - t, step_bound - tiny)]
    if per_episode is not None:
        bound = Fraction(per_episode)
        constraints += [(t + noise, bound - spent - tiny), (noise - t, bound + spent - tiny)]
    return constraints


def scale_factor(
    payments: Sequence[float], spent: float | Fraction, per_step: float | None, per_episode: float | None
) -> float:
    """A common factor ``f`` in [0, 1], in closed form, that keeps the payments' exact sums within the budgets.

    With the payments scaled to ``fl(v * f)``, their exact sum ``S`` satisfies ``|S| <= per_step``,
    ``|S| <= sys.float_info.max`` (the booked step cost stays finite) and ``|spent + S| <= per_episode``,
    whatever the rounding of the products. Factor 0 always fits (``|spent| <= per_episode`` before the step).

    Two candidates, no search: first the exact fit (the largest float factor with ``f |T|`` within the bounds,
    ``T`` the payments' exact sum), kept when the rounded products it gives fit too (the usual case: paying
    0.5 of 1.0 when 0.5 is left pays 0.5); otherwise the largest factor that fits with a margin for rounding:

    Let ``A = sum(|v|)`` exactly, ``n`` the number of payments, ``u = 2**-53`` and ``eta = 2**-1075``. Then
    ``|fl(v f) - v f| <= u |v f| + eta``, so ``S`` lies within ``f u A + n eta`` of ``f T``, and it suffices that
    this whole interval fits: ``(T + u A) f <= bound - n eta`` and ``(u A - T) f <= bound - n eta`` for the step
    bound, and the same with ``bound - spent`` and ``bound + spent`` for the episode budget. These are linear in
    ``f``; they are solved exactly in rationals and the result is rounded down to a float. The margin costs,
    relative to the exact fit, about ``u A / |T|`` (it matters only when payments nearly cancel, e.g. 5% for
    payments of ~1e17 summing to ~400) plus ``n eta`` absolute.

    Args:
        payments: the step's payments (finite).
        spent: the episode's exact total so far, a sum of floats (within ``per_episode``). The guarantee is for
            the exact ``spent + S``; books that keep a rounded running total instead (``fl(spent + fl(S))``) can
            exceed ``per_episode`` by that last rounding, which is why :class:`~wrappers.core.IncentiveBooks` keeps
            its total exactly (:func:`fixed_sum`, :func:`exact_value`).
        per_step, per_episode: the budgets (positive finite), or None.
    """
    t = exact_value(fixed_sum(payments))
    a = exact_value(sum(abs(fixed(v)) for v in payments))
    episode, budgets = Fraction(spent), (per_step, per_episode)
    ideal = _largest_fit(_constraints(t, a, len(payments), episode, budgets, margin=False))
    step_total = fixed_sum(v * ideal for v in payments)
    spent_total = episode * _ONE  # a sum of floats: a whole number of 2**-1074
    if abs(step_total) <= fixed(sys.float_info.max) and within_budgets(step_total, int(spent_total), *budgets):
        return ideal
    return _largest_fit(_constraints(t, a, len(payments), episode, budgets, margin=True))


def finite_total(value: float, what: str, step: int, parts: Mapping[str, float]) -> float:
    """``value``, or ``FloatingPointError`` naming the step, the total and the agents' parts of this step."""
    if not math.isfinite(value):
        listed = ", ".join(f"{agent}: {part!r}" for agent, part in parts.items())
        raise FloatingPointError(
            f"step {step}: {what} would be {value!r} (this step: {listed}); the books must stay finite"
        )
    return value


def recentred(payments: Mapping[str, float], step: int) -> dict[str, float]:
    """Budget balance: ``payments`` minus their mean, which is taken without overflow.

    Raises:
        FloatingPointError: a re-centred payment lies beyond the float range (naming agent, value and step).
    """
    centre = mean(list(payments.values()))
    out = {}
    for agent, value in payments.items():
        out[agent] = value - centre
        if not math.isfinite(out[agent]):
            raise FloatingPointError(
                f"budget-balanced incentive for {agent} at step {step} is {value!r} - {centre!r} (the mean), "
                "beyond the float range"
            )
    return out
