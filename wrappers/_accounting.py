"""Payment rules and episode books shared by the parallel, AEC and Gymnasium incentive wrappers.

One place validates what an incentive function returned (finite numbers, acting agents only), applies the
payment rules (sign, budget balance, budgets) and keeps the episode's accounts, so the three wrappers differ
only in how they talk to their env.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np

if TYPE_CHECKING:
    from wrappers.incentive import StepContext

__all__ = ["ADDED_INFO_KEYS", "GuardedParallelStep", "IncentiveBooks", "PaymentRules", "check_env_rewards"]

ADDED_INFO_KEYS: Final = ("env_reward", "incentive", "incentive_scaled")
"""Keys every incentive wrapper adds to ``infos[agent]`` on each step (fixed schema)."""


@dataclass(frozen=True)
class PaymentRules:
    """How raw payments become paid incentives.

    Attributes:
        budget_per_step: bound on ``|sum of payments|`` in one step, or None.
        budget_per_episode: bound on ``|sum of payments|`` accumulated over the episode, or None.
        on_budget: ``"raise"`` a ValueError when a budget would be exceeded, or ``"scale"`` the step's
            payments down by one common factor (the largest that fits; 0 if nothing is left).
        nonnegative: a negative payment raises ValueError (pure subsidies, no penalties).
        budget_balanced: re-centre the payments to sum to zero over the acting agents (pure redistribution).
    """

    budget_per_step: float | None = None
    budget_per_episode: float | None = None
    on_budget: Literal["raise", "scale"] = "raise"
    nonnegative: bool = False
    budget_balanced: bool = False

    def __post_init__(self) -> None:
        for name in ("budget_per_step", "budget_per_episode"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise ValueError(f"{name} must be a positive finite number or None, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number or None, got {value!r}")
        if self.on_budget not in ("raise", "scale"):
            raise ValueError(f"on_budget must be 'raise' or 'scale', got {self.on_budget!r}")
        for name in ("nonnegative", "budget_balanced"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.nonnegative and self.budget_balanced:
            raise ValueError("nonnegative=True and budget_balanced=True together only allow all-zero payments")


def _as_number(value: Any, what: str) -> float:
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{what} must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r} of type {type(value).__name__}") from None


def check_env_rewards(rewards: Mapping[str, Any], step: int) -> dict[str, float]:
    """The env's rewards as floats; NaN/inf raises ``FloatingPointError`` naming agent, value and step."""
    out = {}
    for agent, value in rewards.items():
        r = _as_number(value, f"env reward of {agent} at step {step}")
        if not math.isfinite(r):
            raise FloatingPointError(f"env reward of {agent} at step {step} is {r}; rewards must be finite")
        out[agent] = r
    return out


class IncentiveBooks:
    """Mixin: validates payments under :class:`PaymentRules` and keeps the episode's accounts.

    Public attributes (reset by every ``reset``):
        last_context: the :class:`StepContext` of the last step (None before the first step).
        last_payments: incentive paid to each acting agent in the last step, after the rules.
        step_cost: sum paid in the last step. Payments are signed, so a penalty lowers the cost.
        episode_cost: sum paid this episode.
        episode_welfare: sum of all env rewards this episode (the social welfare).
        episode_incentives: incentive paid to each agent this episode.
        episode_env_rewards: env reward of each agent this episode.
        episode_steps: payment steps this episode.
    """

    rules: PaymentRules
    last_context: StepContext | None
    last_payments: dict[str, float]
    step_cost: float
    episode_cost: float
    episode_welfare: float
    episode_incentives: dict[str, float]
    episode_env_rewards: dict[str, float]
    episode_steps: int

    def _reset_books(self) -> None:
        self.last_context = None
        self.last_payments = {}
        self.step_cost = 0.0
        self.episode_cost = 0.0
        self.episode_welfare = 0.0
        self.episode_incentives = {}
        self.episode_env_rewards = {}
        self.episode_steps = 0

    def episode_stats(self) -> dict[str, float]:
        """Episode totals: ``welfare``, ``incentives_paid``, ``designer_net`` (welfare - paid), ``steps``."""
        return {
            "welfare": self.episode_welfare,
            "incentives_paid": self.episode_cost,
            "designer_net": self.episode_welfare - self.episode_cost,
            "steps": float(self.episode_steps),
        }

    def _settle(self, raw: Any, ctx: StepContext) -> tuple[dict[str, float], bool]:
        """Validate ``raw`` payments and apply the rules; returns (payment per acting agent, scaled).

        Raises:
            TypeError: ``raw`` is not a mapping or a payment is not a number.
            KeyError: a payment is addressed to an unknown agent or one that did not act this step.
            FloatingPointError: a payment is NaN or infinite.
            ValueError: a negative payment under ``nonnegative``, or a budget exceeded under ``"raise"``.
        """
        if not isinstance(raw, Mapping):
            raise TypeError(f"incentive function must return a mapping agent -> payment, got {type(raw).__name__}")
        stray = [a for a in raw if a not in ctx.agents]
        if stray:
            unknown = [a for a in stray if a not in ctx.possible_agents]
            kind = f"unknown agents {unknown}" if unknown else f"agents {stray} that did not act"
            raise KeyError(f"step {ctx.step}: incentive paid to {kind}; acting agents are {list(ctx.agents)}")
        payments: dict[str, float] = {}
        for agent in ctx.agents:
            value = _as_number(raw.get(agent, 0.0), f"incentive for {agent} at step {ctx.step}")
            if not math.isfinite(value):
                raise FloatingPointError(f"incentive for {agent} at step {ctx.step} is {value}; it must be finite")
            if self.rules.nonnegative and value < 0:
                raise ValueError(f"incentive for {agent} at step {ctx.step} is {value} < 0 but nonnegative=True")
            payments[agent] = value
        if self.rules.budget_balanced and payments:
            mean = sum(payments.values()) / len(payments)
            payments = {a: v - mean for a, v in payments.items()}
        return self._apply_budgets(payments, ctx.step)

    def _within_budgets(self, total: float) -> bool:
        step_ok = self.rules.budget_per_step is None or abs(total) <= self.rules.budget_per_step
        episode_ok = self.rules.budget_per_episode is None or abs(self.episode_cost + total) <= (
            self.rules.budget_per_episode
        )
        return step_ok and episode_ok

    def _apply_budgets(self, payments: dict[str, float], step: int) -> tuple[dict[str, float], bool]:
        total = sum(payments.values())
        if self._within_budgets(total):
            return payments, False
        rules = self.rules
        if rules.on_budget == "raise":
            if rules.budget_per_step is not None and abs(total) > rules.budget_per_step:
                raise ValueError(
                    f"step {step}: incentives sum to {total!r}; |sum| exceeds budget_per_step={rules.budget_per_step}"
                )
            raise ValueError(
                f"step {step}: episode incentives would reach {self.episode_cost + total!r} "
                f"({self.episode_cost!r} so far + {total!r} this step), beyond budget_per_episode="
                f"{rules.budget_per_episode}"
            )
        # Largest common factor in [0, 1] that fits both budgets. The episode sum always lies within its
        # budget, so factor 0 fits; nextafter steps absorb the rounding of the scaled sum.
        factor = 1.0
        if rules.budget_per_step is not None:
            factor = min(factor, rules.budget_per_step / abs(total))
        if rules.budget_per_episode is not None:
            bound = rules.budget_per_episode if total > 0 else -rules.budget_per_episode
            factor = min(factor, max(0.0, (bound - self.episode_cost) / total))
        scaled = {a: v * factor for a, v in payments.items()}
        while not self._within_budgets(sum(scaled.values())):
            factor = float(np.nextafter(factor, 0.0))
            scaled = {a: v * factor for a, v in payments.items()}
        return scaled, True

    def _record(self, ctx: StepContext, payments: dict[str, float], env_rewards: Mapping[str, float]) -> None:
        self.last_context = ctx
        self.last_payments = payments
        self.step_cost = sum(payments.values())
        self.episode_cost += self.step_cost
        for agent, reward in env_rewards.items():
            self.episode_env_rewards[agent] = self.episode_env_rewards.get(agent, 0.0) + reward
            self.episode_welfare += reward
        for agent, paid in payments.items():
            self.episode_incentives[agent] = self.episode_incentives.get(agent, 0.0) + paid
        self.episode_steps += 1


class GuardedParallelStep:
    """Call-order and joint-action checks that every parallel payment wrapper makes, then the env's step.

    After the env has stepped the wrapper counts as failed until the caller sets ``_failed = False`` having
    settled its payments, so an exception while paying makes it refuse further steps until ``reset``.
    """

    env: Any
    _possible: tuple[str, ...]
    _started: bool
    _failed: bool
    _step: int

    def _env_step(
        self, actions: Mapping[str, Any]
    ) -> tuple[tuple[str, ...], dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, Any]]:
        """Check the call and the joint action, step the env; returns acting agents, obs, checked env rewards,
        terminations, truncations and infos."""
        from incentive_envs.validation import check_joint_action

        if not self._started:
            raise RuntimeError("step() called before reset(); call reset() first")
        if self._failed:
            raise RuntimeError("the previous step raised after the env had stepped; call reset() first")
        if not self.env.agents:
            raise RuntimeError("step() called after the episode finished; call reset() first")
        acting = tuple(a for a in self._possible if a in self.env.agents)
        check_joint_action(actions, acting, self.env.action_space)
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        self._failed = True
        return acting, obs, check_env_rewards(rewards, self._step), terms, truncs, infos
