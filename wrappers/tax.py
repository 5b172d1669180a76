"""Periodic bracket income tax with lump-sum redistribution over any PettingZoo ``ParallelEnv``.

A generic version of Foundation's ``PeriodicBracketTax`` (method.md §3.3.2, §3.3.10): an agent's income over a
tax period is the sum of its env rewards (or of ``infos[agent][income_key]``); at the period's end each agent
pays ``bracket_tax(income, rates, cutoffs)`` and the revenue is handed back (equally by default). The arithmetic
is :mod:`incentive_envs.economics`, shared with the Gather-Trade-Build env and the differentiable tax designer.

Every step ``infos[agent]`` gains (and every reset, with 0.0 and zero rates: no tax is in force before the first
step, so reset and step infos have the same keys and shapes):

================== ===========================================================================================
``pretax_income``  the agent's income so far in the current period, this step included
``tax_paid``       tax taken at this step (0.0 except at a period end)
``redistribution`` the agent's share of the revenue at this step (0.0 except at a period end)
``marginal_rates`` the rates in force this period, a tuple with one rate per bracket
================== ===========================================================================================

and the reward is ``env_reward - tax_paid + redistribution``.

Period boundaries: step ``t`` (0-based) starts a period when ``t % period == 0`` and ends one when
``(t + 1) % period == 0``. When the episode ends inside a period (every agent done), that partial period is
taxed at its last step too. Only agents still present at a period's end are taxed and share the revenue; an
agent that leaves mid-period takes its untaxed income with it (its reward has already been paid out).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pettingzoo import ParallelEnv
from pettingzoo.utils import BaseParallelWrapper

from incentive_envs.economics import (
    US_FEDERAL_2018_CUTOFFS,
    US_FEDERAL_2018_RATES,
    bracket_tax,
    check_cutoffs,
    lump_sum,
)
from incentive_envs.economics import check_rates as _check_rate_vector
from incentive_envs.validation import check_positive_int
from wrappers.budgets import exact_sum, finite_total
from wrappers.core import EnvAgents, ParallelCore, StepContext, check_rewards, extend_infos, refuse_nesting

__all__ = ["TAX_INFO_KEYS", "RatesFn", "Redistribution", "TaxWrapper"]

TAX_INFO_KEYS = ("pretax_income", "tax_paid", "redistribution", "marginal_rates")
"""Keys the tax wrapper adds to ``infos[agent]`` at reset and on each step."""

RatesFn = Callable[[StepContext], Sequence[float] | np.ndarray]
"""A tax designer: marginal rates for the period, from the StepContext of the period's first step."""

Redistribution = Callable[[np.ndarray], np.ndarray]
"""Maps the taxes of the agents present (``possible_agents`` order) to their shares; must conserve the sum."""

CONSERVATION_RTOL = 1e-9
"""Relative tolerance for ``sum(shares) == sum(taxes)`` in a custom redistribution."""


class TaxWrapper(ParallelCore, BaseParallelWrapper):
    """Bracket income tax over periods of ``period`` steps, revenue returned as a lump sum.

    Args:
        env: the parallel env.
        cutoffs: lower edge of each bracket, starting at 0 (default: 2018 US federal, scaled by 1/1000).
        rates: marginal rates in [0, 1]. None: the 2018 US federal rates. A vector: fixed rates. A 2-D
            schedule: row ``k`` holds the rates of period ``k``. A callable ``rates_fn(ctx)``: called once per
            period with the StepContext of the period's first step (pre-step designer observation, that step's
            joint action and rewards); its rates hold until the period ends.
        period: steps per tax period (Foundation: 10).
        income_key: take each step's income from ``infos[agent][income_key]`` instead of the env reward.
        redistribution: ``"equal"`` (lump sum, :func:`incentive_envs.economics.lump_sum`) or a callable
            ``taxes -> shares`` over the agents present, which must conserve the revenue.

    Raises:
        RuntimeError: ``step`` before ``reset``, after the episode ended, or after a failed step.
        KeyError: actions do not name exactly the live agents; ``income_key`` missing from an agent's infos.
        ValueError: an action outside its space; bad cutoffs, rates (shape or outside [0, 1]), schedule too
            short for the episode, or a redistribution that does not conserve the revenue; (at construction)
            ``env`` is already wrapped by a TaxWrapper.
        FloatingPointError: NaN/inf rates, incomes, rewards or shares, or finite ones whose period income,
            revenue or taxed reward would be infinite (naming agent or taxes, value and step).
    """

    def __init__(
        self,
        env: ParallelEnv,
        *,
        cutoffs: Sequence[float] = US_FEDERAL_2018_CUTOFFS,
        rates: Sequence[float] | Sequence[Sequence[float]] | RatesFn | None = None,
        period: int = 10,
        income_key: str | None = None,
        redistribution: Literal["equal"] | Redistribution = "equal",
    ) -> None:
        if not isinstance(env, ParallelEnv):
            raise TypeError(f"TaxWrapper needs a PettingZoo ParallelEnv, got {type(env).__name__}")
        refuse_nesting(env, TaxWrapper, "TaxWrapper")
        super().__init__(env)
        self.cutoffs = check_cutoffs(cutoffs)
        n_brackets = self.cutoffs.size
        self.rates_fn: RatesFn | None = None
        self.schedule: np.ndarray | None = None
        self._fixed = False
        if callable(rates):
            self.rates_fn = rates
        else:
            table = np.asarray(US_FEDERAL_2018_RATES if rates is None else rates, dtype=np.float64)
            if table.ndim not in (1, 2) or table.size == 0:
                raise ValueError(f"rates must be a vector, a 2-D schedule or a callable, got shape {table.shape}")
            rows = table[None] if table.ndim == 1 else table
            self.schedule = np.stack([_check_rate_vector(row, n_brackets) for row in rows])
            self._fixed = table.ndim == 1
        self.period = check_positive_int("period", period)
        if income_key is not None and not isinstance(income_key, str):
            raise ValueError(f"income_key must be a string or None, got {income_key!r}")
        self.income_key = income_key
        if not (redistribution == "equal" or callable(redistribution)):
            raise ValueError(f"redistribution must be 'equal' or a callable, got {redistribution!r}")
        self.redistribution = redistribution
        self._env_agents = EnvAgents.of(env)
        self._reset_books()

    def _reset_books(self) -> None:
        self._income: dict[str, float] = {}
        self._designer_obs: Any = None
        self.current_rates: np.ndarray | None = None
        self.last_taxes: dict[str, float] = {}
        self.last_redistribution: dict[str, float] = {}
        self.period_revenue: list[float] = []
        self.episode_revenue = 0.0
        self.episode_redistributed = 0.0

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        obs, infos = self._reset_env(seed, options)
        self._reset_books()
        if self.rates_fn is not None:
            self._designer_obs = self._designer_view(obs)
        neutral = dict(zip(TAX_INFO_KEYS, (0.0, 0.0, 0.0, (0.0,) * self.cutoffs.size)))
        return obs, extend_infos(infos, lambda _: neutral, "TaxWrapper")

    def _period_rates(self, ctx: StepContext) -> np.ndarray:
        k = ctx.step // self.period
        if self.rates_fn is not None:
            return _check_rate_vector(self.rates_fn(ctx), self.cutoffs.size)
        schedule = self.schedule
        if schedule is None:  # pragma: no cover - set in __init__ whenever rates_fn is None
            raise RuntimeError("TaxWrapper has neither rates_fn nor a schedule")
        if self._fixed:
            return schedule[0]
        if k >= len(schedule):
            raise ValueError(f"the rate schedule has {len(schedule)} periods but period {k} started")
        return schedule[k]

    def _incomes(self, env_rewards: Mapping[str, float], infos: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
        if self.income_key is None:
            return dict(env_rewards)
        out = {}
        for agent in env_rewards:
            if self.income_key not in infos.get(agent, {}):
                raise KeyError(f"infos[{agent!r}] has no income key {self.income_key!r} at step {self._step}")
            value = float(infos[agent][self.income_key])
            if not math.isfinite(value):
                raise FloatingPointError(f"income of {agent} at step {self._step} is {value}; it must be finite")
            out[agent] = value
        return out

    def _shares(self, taxes: np.ndarray) -> np.ndarray:
        if self.redistribution == "equal":
            return lump_sum(taxes)
        shares = np.asarray(self.redistribution(taxes.copy()), dtype=np.float64)
        if shares.shape != taxes.shape:
            raise ValueError(f"redistribution returned shape {shares.shape}, expected {taxes.shape}")
        if not np.isfinite(shares).all():
            raise FloatingPointError(f"redistribution returned non-finite shares {shares.tolist()}")
        revenue, handed = float(taxes.sum()), float(shares.sum())
        if abs(handed - revenue) > CONSERVATION_RTOL * max(1.0, abs(revenue)):
            raise ValueError(f"redistribution hands out {handed!r} but the revenue is {revenue!r}")
        return shares

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]]:
        acting, obs, env_rewards, terms, truncs, infos = self._env_step(actions)
        if self._step % self.period == 0:
            ctx = self._env_agents.context(self._designer_obs, actions, env_rewards, infos, acting, self._step)
            self.current_rates = self._period_rates(ctx)
        rates = self.current_rates
        if rates is None:  # pragma: no cover - set at every period start
            raise RuntimeError("no marginal rates in force")
        incomes = self._incomes(env_rewards, infos)
        for agent, income in incomes.items():
            self._income[agent] = self._income.get(agent, 0.0) + income
            if not math.isfinite(self._income[agent]):
                raise FloatingPointError(
                    f"income of {agent} at step {self._step} is {self._income[agent]} over the tax period so far "
                    f"(this step: {income!r}); it must be finite"
                )
        pretax = {a: self._income.get(a, 0.0) for a in env_rewards}
        taxes = dict.fromkeys(env_rewards, 0.0)
        shares = dict.fromkeys(env_rewards, 0.0)
        if (self._step + 1) % self.period == 0 or not self.env.agents:
            taxed = [a for a in self._env_agents.possible if a in env_rewards]
            collected = bracket_tax(np.array([pretax[a] for a in taxed], dtype=np.float64), rates, self.cutoffs)
            taxes = {a: float(t) for a, t in zip(taxed, collected)}
            revenue = finite_total(exact_sum(taxes.values()), "the tax revenue", self._step, taxes)
            finite_total(self.episode_revenue + revenue, "the episode's tax revenue", self._step, taxes)
            handed = self._shares(collected)
            shares = {a: float(s) for a, s in zip(taxed, handed)}
            self.period_revenue.append(revenue)
            self.episode_revenue += revenue
            self.episode_redistributed += float(handed.sum())
            self._income = {}
        shaped = check_rewards(
            {a: r - taxes[a] + shares[a] for a, r in env_rewards.items()}, self._step, "taxed reward"
        )
        rate_tuple = tuple(float(r) for r in rates)

        def added(agent: str) -> dict[str, Any]:
            values = (pretax.get(agent, 0.0), taxes.get(agent, 0.0), shares.get(agent, 0.0), rate_tuple)
            return dict(zip(TAX_INFO_KEYS, values))

        new_infos = extend_infos(infos, added, "TaxWrapper")
        self.last_taxes, self.last_redistribution = taxes, shares
        if self.rates_fn is not None and self.env.agents:
            self._designer_obs = self._designer_view(obs)
        self._step_done()
        return obs, shaped, terms, truncs, new_infos

    def __str__(self) -> str:
        return f"TaxWrapper<{self.env}>"
