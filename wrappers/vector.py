"""The incentive wrapper's batched counterpart: one incentive evaluation per step for all B x N agents.

:class:`BatchedIncentiveWrapper` wraps a :class:`~incentive_envs.vector.BatchedParallelEnv` (arrays
``[B, N, ...]``) as :class:`~wrappers.incentive.IncentiveWrapper` wraps one PettingZoo game: the same payment
rules (:class:`~wrappers.core.PaymentRules`, applied per copy), the same books (as arrays over copies) and the
same info keys (:data:`~wrappers.core.ADDED_INFO_KEYS`, as ``[B, N]`` arrays). B copies reset with ``seed=s``
pay, reward and book exactly what B single wrappers reset with ``s, s + 1, ...`` do, step by step.

A batched incentive function maps a :class:`BatchedStepContext` to payments ``[B, N]``; only the agents that
acted are paid (other entries are ignored) and copies whose episode is over are not paid at all. The context
and the ready-made ones live in :mod:`wrappers.vector_functions` (re-exported here): ``BatchedActionTable``,
``BatchedAgentValues``, ``BatchedModuleIncentive`` (one module forward on ``batched_joint_action_features``),
and ``PerCopy``, which lifts any single-step incentive function ``fn(StepContext) -> {agent: payment}`` by
calling it once per copy (the reference path for user functions).

The rules use the single books' arithmetic (:mod:`wrappers.budgets`): the budgets bound exact sums, and each
copy's episode cost and welfare are kept exactly (Python ints in units of ``2**-1074``, in object arrays) and
rounded once. These exact sums, the mean of budget balance and ``scale_factor`` for the copies over budget under
``on_budget="scale"`` are the per-copy Python arithmetic; every other rule, check and account is vectorized.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from incentive_envs.vector import BatchedParallelEnv, BatchedStep, check_batched_actions
from wrappers.budgets import exact_value, fixed, mean, scale_factor, to_float, within_budgets
from wrappers.core import (
    ADDED_INFO_KEYS,
    EpisodeGuard,
    IncentiveBooks,
    PaymentRules,
    has_state,
    refuse_nesting,
    snapshot,
)
from wrappers.functions import ActionTable, AgentValues, ModuleIncentive
from wrappers.vector_functions import (
    BatchedActionTable,
    BatchedAgentValues,
    BatchedIncentiveFn,
    BatchedIncentiveFunction,
    BatchedModuleIncentive,
    BatchedStepContext,
    Payments,
    PerCopy,
    batched_joint_action_features,
)

__all__ = [  # the wrapper, and the context and functions of wrappers.vector_functions
    "BatchedActionTable", "BatchedAgentValues", "BatchedIncentiveFunction", "BatchedIncentiveWrapper",
    "BatchedModuleIncentive", "BatchedStepContext", "PerCopy", "batched_joint_action_features",
]


# ----------------------------------------------------------------------------------------------------------
# The payment rules and books, per copy, as the single wrappers apply them (wrappers.core.IncentiveBooks)


def _first(bad: Any) -> tuple[int, ...] | None:
    """The first index (row-major) where the boolean array ``bad`` holds, or None."""
    hits = np.argwhere(np.asarray(bad))
    return tuple(int(v) for v in hits[0]) if len(hits) else None


_fixed = np.frompyfunc(fixed, 1, 1)
_to_float = np.frompyfunc(to_float, 1, 1)


def _exact_sums(values: NDArray[np.float64]) -> NDArray[np.object_]:
    """Each row's exact sum, a Python int in units of ``2**-1074`` (:func:`wrappers.budgets.fixed`), ``[B]``."""
    return np.asarray(np.sum(_fixed(values), axis=1), dtype=np.object_)


def _floats(totals: NDArray[np.object_]) -> NDArray[np.float64]:
    """Exact totals rounded to the nearest floats (``±inf`` beyond the float range), as the single books do."""
    return np.asarray(_to_float(totals), dtype=np.float64)


class BatchedIncentiveWrapper(EpisodeGuard, BatchedParallelEnv):
    """Add a designer's incentive to every agent's reward in all copies of a :class:`BatchedParallelEnv`.

    Per copy this is :class:`~wrappers.incentive.IncentiveWrapper`: payments computed after the env step from
    the pre-step designer observation and the joint action, the :class:`~wrappers.core.PaymentRules`, rewards
    ``env reward + incentive``, the infos gain ``env_reward``, ``incentive`` (float64 ``[B, N]``) and
    ``incentive_scaled`` (bool ``[B, N]``; False where an agent did not act), and the books are kept per copy:
    ``last_payments`` and the episode's ``episode_incentives`` and ``episode_env_rewards`` ``[B, N]``,
    ``step_cost``, ``episode_cost``, ``episode_welfare`` and ``episode_steps`` ``[B]``, ``episode_stats()`` of
    arrays ``[B]``. A copy whose episode is over is not paid and its books (``last_payments`` and ``step_cost``
    included) stay as they were after its last step, as a single wrapper's do.

    Args:
        env: the batched env.
        incentive_fn: a batched incentive function ``fn(ctx: BatchedStepContext) -> [B, N]`` (lift a single-step
            one with :class:`PerCopy`).
        rules: the :class:`~wrappers.core.PaymentRules` keywords (``budget_per_step``, ``budget_per_episode``,
            ``on_budget``, ``nonnegative``, ``budget_balanced``), applied to each copy on its own.

    Raises:
        RuntimeError: ``step`` before ``reset``, after every copy's episode ended, or after a failed step.
        ValueError: bad actions; payments not ``[B, N]``; a rule violated (naming the batch index); ``env``
            already wrapped by an incentive wrapper (at construction).
        TypeError: payments that are not numbers.
        FloatingPointError: a NaN/inf payment, env reward or shaped reward, or an account that would overflow
            (naming batch index, agent and step).
    """

    def __init__(self, env: BatchedParallelEnv, incentive_fn: BatchedIncentiveFn, **rules: Any) -> None:
        if not isinstance(env, BatchedParallelEnv):
            raise TypeError(f"BatchedIncentiveWrapper needs a BatchedParallelEnv, got {type(env).__name__}")
        refuse_nesting(env, BatchedIncentiveWrapper, "BatchedIncentiveWrapper")
        for copy in getattr(env, "envs", ()):
            refuse_nesting(copy, IncentiveBooks, "incentive wrapper")
        self.env = env
        self.possible_agents, self.n_envs = env.possible_agents, env.n_envs
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.state_space = env.state_space
        self.rules = PaymentRules(**rules)
        self.set_incentive(incentive_fn)
        self._has_state = False
        self._designer_obs: NDArray[Any] = np.zeros(0)
        self._reset_books()

    # -- the env ----------------------------------------------------------------------------------------------

    @property
    def active(self) -> NDArray[np.bool_]:
        return self.env.active

    def state(self) -> NDArray[Any]:
        return self.env.state()

    def close(self) -> None:
        self.env.close()

    def set_incentive(self, incentive_fn: BatchedIncentiveFn) -> None:
        """Swap the incentive function (checked, and bound to the agents if it has ``bind``); applies next step.

        Raises:
            TypeError: not callable, or a single-step ready-made function (use its batched version or PerCopy).
        """
        if isinstance(incentive_fn, (ActionTable, AgentValues, ModuleIncentive)):
            raise TypeError(f"{type(incentive_fn).__name__} pays one copy; use Batched{type(incentive_fn).__name__} "
                            "or PerCopy(fn)")
        if not callable(incentive_fn):
            raise TypeError(f"incentive_fn must be callable as fn(ctx) -> payments [B, N], got {incentive_fn!r}")
        bind = getattr(incentive_fn, "bind", None)
        if callable(bind):
            bind(self.possible_agents, dict.fromkeys(self.possible_agents, self.action_space))
        self.incentive_fn = incentive_fn

    def _episode_over(self) -> bool:
        return bool(self.env.done.all())

    def reset(self, seed: int | None = None) -> tuple[NDArray[Any], dict[str, NDArray[Any]]]:
        obs, infos = self.env.reset(seed=seed)
        self._has_state = has_state(self.env)
        self._designer_obs = snapshot(self.env.state() if self._has_state else obs)
        self._begin_episode()
        self._reset_books()
        return obs, infos

    def step(self, actions: Any) -> BatchedStep:
        self._check_step()
        active = self.env.active
        acts = check_batched_actions(actions, self.n_envs, self.possible_agents, int(self.action_space.n), active)
        obs, rewards, terms, truncs, infos = self.env.step(acts)
        self._env_stepped()
        env_rewards = self._finite(np.asarray(rewards, dtype=np.float64), "env reward", "rewards must be finite")
        clash = sorted(set(ADDED_INFO_KEYS) & set(infos))
        if clash:
            raise ValueError(f"infos already have {clash}; nest one BatchedIncentiveWrapper at most")
        ctx = BatchedStepContext(
            self._designer_obs, acts.copy(), env_rewards, {k: v.copy() for k, v in infos.items()}, active,
            self.episode_steps.copy(), self.possible_agents, self.action_space, self.observation_space, self._has_state,
        )
        payments, scaled = self._settle(self.incentive_fn(ctx), ctx)
        with np.errstate(over="ignore"):  # checked right below
            shaped = self._finite(env_rewards + payments, "shaped reward", "rewards must be finite")
        self._record(ctx, payments)
        added = (env_rewards.copy(), payments, scaled[:, None] & active)
        new_infos = {**infos, **dict(zip(ADDED_INFO_KEYS, added))}
        if not self._episode_over():
            self._designer_obs = snapshot(self.env.state() if self._has_state else obs)
        self._step_done()
        return obs, shaped, terms, truncs, new_infos

    def _finite(self, values: NDArray[np.float64], what: str, why: str) -> NDArray[np.float64]:
        """``values`` ``[B, N]``, or ``FloatingPointError`` naming the batch index, agent, step and value."""
        bad = _first(~np.isfinite(values))
        if bad is not None:
            b, i = bad
            raise FloatingPointError(f"batch index {b}: {what} of {self.possible_agents[i]} at step "
                                     f"{self.episode_steps[b]} is {values[b, i]}; {why}")
        return values

    # -- payments ---------------------------------------------------------------------------------------------

    def _settle(self, raw: Any, ctx: BatchedStepContext) -> tuple[Payments, NDArray[np.bool_]]:
        """Check ``raw`` payments ``[B, N]`` and apply the rules per copy; returns payments and scaled ``[B]``.

        Entries of agents that did not act are dropped (0) before any check.
        """
        arr = np.asarray(raw)
        if arr.shape != ctx.shape:
            raise ValueError(f"incentive function must return payments of shape [B, N] = {ctx.shape}, got {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"incentive function must return numbers, got dtype {arr.dtype}")
        active = ctx.active
        pay = np.where(active, arr.astype(np.float64), 0.0)
        bad = _first(active & ~(np.isfinite(pay) & ((pay >= 0) | (not self.rules.nonnegative))))
        if bad is not None:
            b, i = bad
            what = f"batch index {b}: incentive for {self.possible_agents[i]} at step {ctx.step[b]} is {pay[b, i]}"
            if not np.isfinite(pay[b, i]):
                raise FloatingPointError(f"{what}; it must be finite")
            raise ValueError(f"{what} < 0 but nonnegative=True")
        if self.rules.budget_balanced:
            pay = self._recentred(pay, ctx)
        return self._apply_budgets(pay, ctx)

    def _recentred(self, pay: Payments, ctx: BatchedStepContext) -> Payments:
        """Budget balance: each copy's payments minus their mean over its acting agents (no overflow)."""
        centre = np.array([mean(row[on].tolist()) if on.any() else 0.0 for row, on in zip(pay, ctx.active)])
        with np.errstate(over="ignore"):  # checked right below
            out = np.where(ctx.active, pay - centre[:, None], 0.0)
        bad = _first(~np.isfinite(out))
        if bad is not None:
            b, i = bad
            raise FloatingPointError(
                f"batch index {b}: budget-balanced incentive for {self.possible_agents[i]} at step {ctx.step[b]} is "
                f"{float(pay[b, i])!r} - {float(centre[b])!r} (the mean), beyond the float range")
        return out

    def _apply_budgets(self, pay: Payments, ctx: BatchedStepContext) -> tuple[Payments, NDArray[np.bool_]]:
        rules, spent = self.rules, self._episode_total
        budgets = (rules.budget_per_step, rules.budget_per_episode)
        if budgets == (None, None):  # nothing to check: skip the exact sums
            return pay, np.zeros(len(pay), dtype=bool)
        step_total = _exact_sums(pay)
        over = np.array([not within_budgets(t, e, *budgets) for t, e in zip(step_total, spent)], dtype=bool)
        if not over.any():
            return pay, over
        if rules.on_budget == "raise":
            b = int(np.flatnonzero(over)[0])
            total, where = to_float(step_total[b]), f"batch index {b}: step {ctx.step[b]}"
            if rules.budget_per_step is not None and abs(total) > rules.budget_per_step:
                raise ValueError(f"{where}: incentives sum to {total!r}; |sum| exceeds budget_per_step="
                                 f"{rules.budget_per_step}")
            raise ValueError(f"{where}: episode incentives would reach {to_float(spent[b] + step_total[b])!r} "
                             f"({float(self.episode_cost[b])!r} so far + {total!r} this step), beyond "
                             f"budget_per_episode={rules.budget_per_episode}")
        factor = np.ones(len(pay))
        for copy in np.flatnonzero(over):
            factor[copy] = scale_factor(pay[copy, ctx.active[copy]].tolist(), exact_value(spent[copy]), *budgets)
        return np.where(ctx.active, pay * factor[:, None], 0.0), over

    # -- the books --------------------------------------------------------------------------------------------

    def _reset_books(self) -> None:
        shape = (self.n_envs, self.n_agents)
        self.last_context: BatchedStepContext | None = None
        self.last_payments: Payments = np.zeros(shape)
        self.step_cost: NDArray[np.float64] = np.zeros(self.n_envs)
        self.episode_cost: NDArray[np.float64] = np.zeros(self.n_envs)
        self.episode_welfare: NDArray[np.float64] = np.zeros(self.n_envs)
        self.episode_incentives: Payments = np.zeros(shape)
        self.episode_env_rewards: Payments = np.zeros(shape)
        self.episode_steps: NDArray[np.int64] = np.zeros(self.n_envs, dtype=np.int64)
        # episode_cost and episode_welfare exactly, as Python ints in units of 2**-1074 (budgets.fixed)
        self._episode_total: NDArray[np.object_] = np.zeros(self.n_envs, dtype=np.object_)
        self._welfare_total: NDArray[np.object_] = np.zeros(self.n_envs, dtype=np.object_)

    def episode_stats(self) -> dict[str, NDArray[np.float64]]:
        """Per copy ``[B]``: ``welfare``, ``incentives_paid``, ``designer_net`` (welfare - paid), ``steps``."""
        return {
            "welfare": self.episode_welfare.copy(),
            "incentives_paid": self.episode_cost.copy(),
            "designer_net": self.episode_welfare - self.episode_cost,
            "steps": self.episode_steps.astype(np.float64),
        }

    def _record(self, ctx: BatchedStepContext, pay: Payments) -> None:
        """Book the step of the copies that were live; ``FloatingPointError`` (nothing booked) on an overflow."""
        live = np.asarray(ctx.active.any(axis=1))
        step_total = _exact_sums(pay)
        episode_total = self._episode_total + step_total
        welfare_total = self._welfare_total + _exact_sums(ctx.env_rewards)
        cost, episode_cost, welfare = _floats(step_total), _floats(episode_total), _floats(welfare_total)
        with np.errstate(over="ignore", invalid="ignore"):  # checked right below
            net = welfare - episode_cost
            env_totals = self.episode_env_rewards + ctx.env_rewards
            paid_totals = self.episode_incentives + pay
        for what, totals, parts in (
            ("the incentives paid this step", cost, pay),
            ("the episode's incentives paid", episode_cost, pay),
            ("the episode welfare", welfare, ctx.env_rewards),
            ("designer_net (welfare - incentives paid)", net, pay),
            ("the episode env reward of {}", env_totals, ctx.env_rewards),
            ("the episode incentives of {}", paid_totals, pay),
        ):
            bad = _first(~np.isfinite(totals))
            if bad is not None:
                b = bad[0]
                listed = ", ".join(f"{a}: {float(parts[b, i])!r}" for i, a in enumerate(self.possible_agents)
                                   if ctx.active[b, i])
                raise FloatingPointError(
                    f"batch index {b}: step {ctx.step[b]}: {what.format(*(self.possible_agents[i] for i in bad[1:]))}"
                    f" would be {float(totals[bad])!r} (this step: {listed}); the books must stay finite")
        self.last_context = ctx
        self.last_payments = np.where(live[:, None], pay, self.last_payments)
        self.step_cost = np.where(live, cost, self.step_cost)
        self.episode_cost = np.where(live, episode_cost, self.episode_cost)
        self.episode_welfare = np.where(live, welfare, self.episode_welfare)
        self._episode_total = np.where(live, episode_total, self._episode_total)
        self._welfare_total = np.where(live, welfare_total, self._welfare_total)
        self.episode_env_rewards = np.where(live[:, None], env_totals, self.episode_env_rewards)
        self.episode_incentives = np.where(live[:, None], paid_totals, self.episode_incentives)
        self.episode_steps = self.episode_steps + live

    def __str__(self) -> str:
        return f"BatchedIncentiveWrapper<{type(self.env).__name__}>"
