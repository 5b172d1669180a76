"""The wrapper core: what every incentive and tax wrapper shares, written once.

A wrapper differs from the others only in how it talks to its env (PettingZoo parallel or AEC, Gymnasium) and
in what it does with a step. The rest lives here: the :class:`StepContext` a designer sees and its one builder
(:class:`EnvAgents`), the call-order guard (:class:`EpisodeGuard`), the designer's view of the env
(:func:`has_state`, :func:`snapshot`), the checked parallel reset/step (:class:`ParallelCore`), and the payment
rules and episode accounts of the incentive wrappers (:class:`PaymentRules`, :class:`IncentiveBooks`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv

from incentive_envs.validation import check_joint_action
from wrappers.budgets import exact_value, finite_total, fixed_sum, recentred, scale_factor, to_float, within_budgets

__all__ = [
    "ADDED_INFO_KEYS",
    "EnvAgents",
    "EpisodeGuard",
    "IncentiveBooks",
    "IncentiveFn",
    "IncentiveFunction",
    "ParallelCore",
    "PaymentRules",
    "StepContext",
    "check_options",
    "check_rewards",
    "extend_infos",
    "has_state",
    "refuse_nesting",
    "snapshot",
]

ADDED_INFO_KEYS: Final = ("env_reward", "incentive", "incentive_scaled")
"""Keys every incentive wrapper adds to ``infos[agent]`` at reset (0.0, 0.0, False) and on each step (fixed schema)."""


@dataclass(frozen=True)
class StepContext:
    """Everything an incentive function may look at for one step.

    Attributes:
        designer_obs: ``env.state()`` taken before the step when the env has ``state()``; otherwise the
            dict of the agents' observations before the step (Gymnasium env: the single observation).
        actions: joint action of the agents that acted.
        env_rewards: the env's own rewards for this step.
        infos: env infos of this step, before the wrapper adds its keys.
        agents: agents that acted, in ``possible_agents`` order.
        possible_agents: every agent of the env.
        action_spaces: action space of every possible agent.
        step: 0-based step index within the episode.
        observation_spaces: observation space of every possible agent (to flatten ``designer_obs`` dicts).
    """

    designer_obs: Any
    actions: Mapping[str, Any]
    env_rewards: Mapping[str, float]
    infos: Mapping[str, Mapping[str, Any]]
    agents: tuple[str, ...]
    possible_agents: tuple[str, ...]
    action_spaces: Mapping[str, spaces.Space[Any]]
    step: int
    observation_spaces: Mapping[str, spaces.Space[Any]] = field(default_factory=dict)


@runtime_checkable
class IncentiveFunction(Protocol):
    """A designer's payment rule: payment per acting agent (agents left out are paid 0)."""

    def __call__(self, ctx: StepContext) -> Mapping[str, float]: ...


IncentiveFn = IncentiveFunction | Callable[[StepContext], Mapping[str, float]]
"""What the incentive wrappers accept: an :class:`IncentiveFunction` or a plain ``fn(ctx) -> payments``."""


# ----------------------------------------------------------------------------------------------------------
# The designer's view of the env


def check_options(options: object) -> None:
    """Raise ``ValueError`` unless the ``reset`` options are a mapping or None (the wrappers pass them on)."""
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"options must be a dict or None, got {options!r}")


def has_state(env: Any) -> bool:
    """Whether ``env.state()`` is available: PettingZoo envs with a global state declare ``state_space``."""
    if getattr(env, "state_space", None) is None:
        return False
    try:
        env.state()
    except NotImplementedError:
        return False
    return True


def snapshot(value: Any) -> Any:
    """A copy the env cannot mutate later (envs may reuse their observation buffers)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in value.values()):
        return {k: v.copy() for k, v in value.items()}
    return copy.deepcopy(value)


# ----------------------------------------------------------------------------------------------------------
# Agents, contexts and the episode guard


@dataclass(frozen=True)
class EnvAgents:
    """An env's agents and spaces, fixed when it is wrapped: the part of every StepContext that never changes.

    Attributes:
        possible: every agent, in the env's ``possible_agents`` order.
        action_spaces: action space of each agent.
        observation_spaces: observation space of each agent.
    """

    possible: tuple[str, ...]
    action_spaces: Mapping[str, spaces.Space[Any]]
    observation_spaces: Mapping[str, spaces.Space[Any]]

    @classmethod
    def of(cls, env: ParallelEnv | AECEnv) -> EnvAgents:
        """The agents and spaces of a PettingZoo env."""
        possible = tuple(env.possible_agents)
        return cls(
            possible,
            {a: env.action_space(a) for a in possible},
            {a: env.observation_space(a) for a in possible},
        )

    def context(
        self,
        designer_obs: Any,
        actions: Mapping[str, Any],
        env_rewards: Mapping[str, float],
        infos: Mapping[str, Mapping[str, Any]],
        agents: tuple[str, ...],
        step: int,
    ) -> StepContext:
        """The StepContext of one step; actions and infos are copied so the env cannot change them later."""
        return StepContext(
            designer_obs=designer_obs,
            actions=dict(actions),
            env_rewards=env_rewards,
            infos={a: dict(i) for a, i in infos.items()},
            agents=agents,
            possible_agents=self.possible,
            action_spaces=self.action_spaces,
            step=step,
            observation_spaces=self.observation_spaces,
        )

    def bind(self, fn: IncentiveFn) -> IncentiveFn:
        """``fn``, checked to be callable and, if it has ``bind(possible_agents, action_spaces)``, against them.

        Raises:
            TypeError: ``fn`` is not callable. Its ``bind`` may raise on agents or spaces it cannot serve.
        """
        if not callable(fn):
            raise TypeError(f"incentive_fn must be callable as fn(ctx) -> {{agent: payment}}, got {fn!r}")
        bind = getattr(fn, "bind", None)
        if callable(bind):
            bind(self.possible, self.action_spaces)
        return fn


def extend_infos(
    infos: Mapping[str, Mapping[str, Any]], added: Callable[[str], Mapping[str, Any]], wrapper: str
) -> dict[str, dict[str, Any]]:
    """Each agent's info with ``added(agent)`` merged in; ``ValueError`` if the info already has such a key.

    A clash means the same wrapper is stacked twice, whose keys would silently overwrite each other.
    """
    out = {}
    for agent, info in infos.items():
        extra = added(agent)
        clash = [k for k in extra if k in info]
        if clash:
            raise ValueError(f"infos[{agent!r}] already has {clash}; nest one {wrapper} at most")
        out[agent] = {**info, **extra}
    return out


def refuse_nesting(env: Any, kind: type, wrapper: str) -> None:
    """Raise ``ValueError`` if a ``kind`` wrapper is anywhere down ``env``'s chain of wrappers and converters.

    Checked at construction, so a stacked wrapper fails before any step is booked by the inner one.
    """
    seen: set[int] = set()
    layer = env
    while layer is not None and id(layer) not in seen:
        if isinstance(layer, kind):
            raise ValueError(f"env is already wrapped by {type(layer).__name__}; nest one {wrapper} at most")
        seen.add(id(layer))
        inner = vars(layer) if hasattr(layer, "__dict__") else {}  # not getattr: wrappers forward unknown names
        # where PettingZoo, Gymnasium and SuperSuit wrappers and converters keep the env they wrap
        layer = next((inner[name] for name in ("env", "aec_env", "par_env") if inner.get(name) is not None), None)


class EpisodeGuard:
    """Mixin: the episode's step counter and the one call-order check of every wrapper's ``step``.

    Between :meth:`_env_stepped` and :meth:`_step_done` the wrapper counts as failed, so an exception after
    the env has moved (a bad payment, a bad rate) makes it refuse further steps until ``reset``.

    Copies (``pickle``, ``copy.deepcopy``, ``copy.copy``) are refused mid-episode, see :meth:`__getstate__`.
    """

    env: Any
    _started: bool = False
    _failed: bool = False
    _step: int = 0

    def _begin_episode(self) -> None:
        """Called by ``reset``: steps are allowed again, counted from 0."""
        self._started, self._failed, self._step = True, False, 0

    def _episode_over(self) -> bool:
        """Whether the episode has ended: a PettingZoo env has no live agents left (asked only after reset)."""
        return not self.env.agents

    def _check_step(self) -> None:
        """Raise ``RuntimeError`` for a step before ``reset``, after a failed step, or after the episode ended."""
        if not self._started:
            raise RuntimeError("step() called before reset(); call reset() first")
        if self._failed:
            raise RuntimeError("the previous step raised after the env had stepped; call reset() first")
        if self._episode_over():
            raise RuntimeError("step() called after the episode finished; call reset() first")

    def _env_stepped(self) -> None:
        """Called right after the env stepped: until :meth:`_step_done` a raise leaves the wrapper failed."""
        self._failed = True

    def _step_done(self) -> None:
        """Called when the step is fully booked: count it and clear the failed mark."""
        self._step += 1
        self._failed = False

    def _mid_episode(self) -> bool:
        """Whether an episode is under way: reset, not failed and not over."""
        return self._started and not self._failed and not self._episode_over()

    def __getstate__(self) -> dict[str, Any]:
        """The state to pickle or copy; ``RuntimeError`` mid-episode, where no copy could be faithful.

        PettingZoo and Gymnasium envs pickle by their constructor arguments (``EzPickle``: that is what lets vector
        envs ship them to worker processes), so their copy is a fresh env, not the running episode. Paired with the
        original's books, step counter and designer observation, it would book a different episode. Copies are
        made before ``reset()`` or after the episode (or a failed step), when env, guard and books agree.
        """
        if self._mid_episode():
            raise RuntimeError(
                f"cannot copy {type(self).__name__} mid-episode: its env would be copied without the running "
                "episode (PettingZoo/Gymnasium envs pickle by constructor arguments), leaving stale books; copy it "
                "before reset() or after the episode has ended"
            )
        return dict(self.__dict__)


class ParallelCore(EpisodeGuard):
    """Mixin for wrappers of a PettingZoo ``ParallelEnv``: checked reset and step, and the designer's view."""

    env: ParallelEnv
    _env_agents: EnvAgents
    _has_state: bool = False

    def _reset_env(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Check ``options``, reset the env, learn whether it has ``state()`` and start the episode."""
        check_options(options)
        obs, infos = self.env.reset(seed=seed, options=options)
        self._has_state = has_state(self.env)
        self._begin_episode()
        return obs, infos

    def _designer_view(self, obs: Mapping[str, Any]) -> Any:
        """A snapshot of ``env.state()`` when the env has one, else of the agents' observations ``obs``."""
        return snapshot(self.env.state()) if self._has_state else snapshot(dict(obs))

    def _env_step(
        self, actions: Mapping[str, Any]
    ) -> tuple[tuple[str, ...], dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, Any]]:
        """Check the call and the joint action, step the env; returns acting agents, obs, checked env rewards,
        terminations, truncations and infos. The wrapper counts as failed until it calls ``_step_done``."""
        self._check_step()
        acting = tuple(a for a in self._env_agents.possible if a in self.env.agents)
        check_joint_action(actions, acting, self.env.action_space)
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        self._env_stepped()
        return acting, obs, check_rewards(rewards, self._step), terms, truncs, infos


# ----------------------------------------------------------------------------------------------------------
# Payments


@dataclass(frozen=True)
class PaymentRules:
    """How raw payments become paid incentives.

    The budgets bound the paid incentives summed exactly (not a rounded running total), so they hold exactly.

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


def check_rewards(rewards: Mapping[str, Any], step: int, what: str = "env reward") -> dict[str, float]:
    """``rewards`` as floats; NaN/inf raises ``FloatingPointError`` naming ``what``, agent, value and step.

    Wrappers check the env's rewards on the way in and their own (``what="shaped reward"``) on the way out,
    after all their rules: finite parts can add up to an infinite reward.
    """
    out = {}
    for agent, value in rewards.items():
        r = _as_number(value, f"{what} of {agent} at step {step}")
        if not math.isfinite(r):
            raise FloatingPointError(f"{what} of {agent} at step {step} is {r}; rewards must be finite")
        out[agent] = r
    return out


class IncentiveBooks:
    """Mixin: the incentive function, its :class:`PaymentRules`, and the episode's accounts.

    The costs and the welfare are the exact sums of the paid incentives and env rewards rounded to the nearest float
    (:mod:`wrappers.budgets`): the budgets hold for the exact sums, hence for these. The accounts stay finite:
    a step that would make one infinite raises ``FloatingPointError`` before anything is booked.

    Public attributes (the accounts are reset by every ``reset``):
        incentive_fn: the incentive function in force (swap it with :meth:`set_incentive`).
        rules: the :class:`PaymentRules`.
        last_context: the :class:`StepContext` of the last step (None before the first step).
        last_payments: incentive paid to each acting agent in the last step, after the rules.
        step_cost: sum paid in the last step. Payments are signed, so a penalty lowers the cost.
        episode_cost: sum paid this episode (exact, then rounded; not a running float total).
        episode_welfare: sum of all env rewards this episode (the social welfare).
        episode_incentives: incentive paid to each agent this episode.
        episode_env_rewards: env reward of each agent this episode.
        episode_steps: payment steps this episode.
    """

    incentive_fn: IncentiveFn
    rules: PaymentRules
    last_context: StepContext | None
    last_payments: dict[str, float]
    step_cost: float
    episode_cost: float
    episode_welfare: float
    episode_incentives: dict[str, float]
    episode_env_rewards: dict[str, float]
    episode_steps: int
    _episode_total: int
    _welfare_total: int
    env: Any
    _env_agents: EnvAgents

    def _init_books(self, env_agents: EnvAgents, incentive_fn: IncentiveFn, rules: PaymentRules) -> None:
        refuse_nesting(self.env, IncentiveBooks, "incentive wrapper")
        self._env_agents = env_agents
        self.rules = rules
        self.set_incentive(incentive_fn)
        self._reset_books()

    def set_incentive(self, incentive_fn: IncentiveFn) -> None:
        """Swap the incentive function; it applies from the next step on."""
        self.incentive_fn = self._env_agents.bind(incentive_fn)

    def _reset_books(self) -> None:
        self.last_context = None
        self.last_payments = {}
        self.step_cost = 0.0
        self.episode_cost = 0.0
        self._episode_total = 0  # episode_cost and episode_welfare exactly, in units of 2**-1074 (budgets.fixed)
        self._welfare_total = 0
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

    @staticmethod
    def _info(env_reward: float, paid: float, scaled: bool) -> dict[str, Any]:
        """The :data:`ADDED_INFO_KEYS` entries of one agent's info."""
        return dict(zip(ADDED_INFO_KEYS, (env_reward, paid, scaled)))

    @classmethod
    def _reset_info(cls) -> dict[str, Any]:
        """The :data:`ADDED_INFO_KEYS` entries of an agent's reset info: no reward, no payment, nothing scaled.

        Reset infos carry the step keys so that libraries which size their info buffers from the reset infos
        (TorchRL's ``PettingZooWrapper``) find every key a step will write.
        """
        return cls._info(0.0, 0.0, False)

    def _pay(self, ctx: StepContext) -> tuple[dict[str, float], bool]:
        """Call the incentive function on ``ctx`` and settle what it returned (see :meth:`_settle`)."""
        return self._settle(self.incentive_fn(ctx), ctx)

    def _settle(self, raw: Any, ctx: StepContext) -> tuple[dict[str, float], bool]:
        """Validate ``raw`` payments and apply the rules; returns (payment per acting agent, scaled).

        Raises:
            TypeError: ``raw`` is not a mapping or a payment is not a number.
            KeyError: a payment is addressed to an unknown agent or one that did not act this step.
            FloatingPointError: a payment is NaN or infinite, or re-centred beyond the float range.
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
            payments = recentred(payments, ctx.step)
        return self._apply_budgets(payments, ctx.step)

    def _apply_budgets(self, payments: dict[str, float], step: int) -> tuple[dict[str, float], bool]:
        step_total = fixed_sum(payments.values())  # exact
        rules = self.rules
        if within_budgets(step_total, self._episode_total, rules.budget_per_step, rules.budget_per_episode):
            return payments, False
        if rules.on_budget == "raise":
            total = to_float(step_total)
            if rules.budget_per_step is not None and abs(total) > rules.budget_per_step:
                raise ValueError(
                    f"step {step}: incentives sum to {total!r}; |sum| exceeds budget_per_step={rules.budget_per_step}"
                )
            raise ValueError(
                f"step {step}: episode incentives would reach {to_float(self._episode_total + step_total)!r} "
                f"({self.episode_cost!r} so far + {total!r} this step), beyond budget_per_episode="
                f"{rules.budget_per_episode}"
            )
        # One common factor in [0, 1], in closed form, that keeps the exact sums within the budgets whatever the
        # rounding of the scaled payments (see scale_factor)
        paying = list(payments.values())
        spent = exact_value(self._episode_total)
        factor = scale_factor(paying, spent, rules.budget_per_step, rules.budget_per_episode)
        return {a: v * factor for a, v in payments.items()}, True

    def _record(self, ctx: StepContext, payments: dict[str, float], env_rewards: Mapping[str, float]) -> None:
        """Book the step; ``FloatingPointError`` (nothing booked) if an account would become infinite."""
        step = ctx.step
        step_total = fixed_sum(payments.values())
        episode_total = self._episode_total + step_total
        cost = finite_total(to_float(step_total), "the incentives paid this step", step, payments)
        episode_cost = finite_total(to_float(episode_total), "the episode's incentives paid", step, payments)
        welfare_total = self._welfare_total + fixed_sum(env_rewards.values())
        welfare = finite_total(to_float(welfare_total), "the episode welfare", step, env_rewards)
        finite_total(welfare - episode_cost, "designer_net (welfare - incentives paid)", step, payments)
        env_totals = {a: self.episode_env_rewards.get(a, 0.0) + r for a, r in env_rewards.items()}
        paid_totals = {a: self.episode_incentives.get(a, 0.0) + p for a, p in payments.items()}
        for kind, totals, parts in (("env reward", env_totals, env_rewards), ("incentives", paid_totals, payments)):
            for agent, total in totals.items():
                finite_total(total, f"the episode {kind} of {agent}", step, parts)
        self.last_context = ctx
        self.last_payments = payments
        self.step_cost, self.episode_cost, self.episode_welfare = cost, episode_cost, welfare
        self._episode_total, self._welfare_total = episode_total, welfare_total
        self.episode_env_rewards.update(env_totals)
        self.episode_incentives.update(paid_totals)
        self.episode_steps += 1
