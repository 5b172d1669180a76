"""The Gather-Trade-Build agents' reward and tax rules as functions of the state, written once.

These are the game's own rules, not a copy of them: the engine computes every agent's utility with
:func:`utility` and its reward as :func:`agent_reward` defines it, ``utility(...) - utility_before`` (from the
utility it computes once per step; :class:`incentive_envs.gtb.BatchedGTB`), and every enactment step's
taxes with :func:`period_tax` (:class:`incentive_envs.gtb.components.PeriodicBracketTax`). A designer that
rebuilds the agents' rewards under other tax rates (e.g. differentiably, in torch) calls the same functions,
so env and designer cannot drift apart. They are thin wrappers of :mod:`incentive_envs.economics` that read
the constants from a :class:`GTBConfig`, and, like it, work unchanged on NumPy arrays and torch tensors
(gradients flow through ``rates``, ``coin`` and ``labour``).

Shapes: ``N`` agents on the last axis, ``K`` tax brackets, any leading axes ``...`` (worlds, steps, ...).

The reward of agent ``i`` at a step is ``agent_reward(coin_i, labour_i, utility_before_i, config)`` with
``coin_i`` its total coin (inventory + escrow) and ``labour_i`` its cumulative labour after the step, and
``utility_before_i = utility(coin, labour, config)`` after the previous step (or at reset). On the step that
ends a tax period the coin after the step is ``coin_pre_tax - paid + lump_sum`` with
``(paid, lump_sum) = period_tax(income, rates, coin_pre_tax - escrow, config)``: the taxes are part of the
same step's reward.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from incentive_envs.economics import Array, collect_and_redistribute, isoelastic_utility
from incentive_envs.gtb.config import GTBConfig

__all__ = ["agent_reward", "period_tax", "utility"]



def utility(coin: Array, labour: Any, config: GTBConfig) -> Array:
    """Each agent's isoelastic utility ``(max(c, 0.01)^(1-eta) - 1) / (1-eta) - labour_cost * L``.

    Args:
        coin: ``[..., N]`` total coin (inventory + escrow).
        labour: ``[..., N]`` cumulative labour.
        config: the game constants (``isoelastic_eta``, ``labour_cost``).

    Returns:
        ``[..., N]`` utilities (:func:`incentive_envs.economics.isoelastic_utility`).
    """
    return isoelastic_utility(coin, labour, config.isoelastic_eta, config.labour_cost)


def agent_reward(coin: Array, labour: Any, utility_before: Any, config: GTBConfig) -> Array:
    """Each agent's reward for a step: ``utility(coin, labour, config) - utility_before``.

    Args:
        coin: ``[..., N]`` total coin after the step (after this step's tax and lump sum).
        labour: ``[..., N]`` cumulative labour after the step.
        utility_before: ``[..., N]`` :func:`utility` after the previous step (or at reset).
        config: the game constants.
    """
    return utility(coin, labour, config) - utility_before


def period_tax(income: Array, rates: Any, available_coin: Any, config: GTBConfig) -> tuple[Array, Array]:
    """The taxes of an enactment step (the last step of a tax period): what each agent pays and gets back.

    Each agent owes the bracket tax of its period income under the marginal rates in force
    (:func:`incentive_envs.economics.bracket_tax` with ``config.tax_cutoffs``) and pays at most the coin it
    holds in its inventory (escrowed coin is never taxed); the revenue comes back as an equal lump sum
    (:func:`incentive_envs.economics.collect_and_redistribute`).

    Args:
        income: ``[..., N]`` period income: total coin before the tax minus total coin after the previous
            enactment (or at reset).
        rates: ``[..., K]`` the marginal rates in force, one schedule per world, applied to every agent (the
            agent axis is added here); a tensor keeps its gradient.
        available_coin: ``[..., N]`` the inventory coin each agent can pay: its total coin before the tax minus
            its escrowed coin.
        config: the game constants (``tax_cutoffs``).

    Returns:
        ``(paid, lump_sum)``, ``[..., N]`` each: the tax collected from each agent and its equal share of the
        revenue. Off enactment steps there is no transfer (both are 0).
    """
    rates = rates if hasattr(rates, "ndim") else np.asarray(rates, dtype=np.float64)  # arrays and tensors as given
    return collect_and_redistribute(income, rates[..., None, :], config.tax_cutoffs, available=available_coin)
