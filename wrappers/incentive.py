"""Incentive wrappers: a designer pays agents on top of the env's reward, in any PettingZoo/Gymnasium env.

The designer is an *incentive function* ``fn(ctx) -> {agent: payment}`` called after every env step with a
:class:`~wrappers.core.StepContext` (the pre-step designer observation, the joint action, the step's env
rewards and infos). Each agent's reward becomes ``env_reward + incentive``, and both parts are reported in
``infos[agent]``, at every step and (as 0.0, 0.0, False) at reset, so reset and step infos have the same keys:

===================== =======================================================================================
``env_reward``        the env's own reward for this step (float)
``incentive``         the payment for this step (float; 0.0 for an agent that did not act)
``incentive_scaled``  True when ``on_budget="scale"`` shrank this step's payments to fit a budget
===================== =======================================================================================

Use :func:`incentive` to wrap any env; it dispatches to :class:`IncentiveWrapper` (PettingZoo parallel),
:class:`AECIncentiveWrapper` (turn-based AEC games) or :class:`GymIncentiveWrapper` (single-agent Gymnasium).
Ready-made incentive functions live in :mod:`wrappers.functions` (re-exported here); the plumbing the three
wrappers share (context, guard, payment rules, accounts) in :mod:`wrappers.core`.

Example:
    >>> from incentive_envs.escape_room import parallel_env
    >>> env = incentive(parallel_env(n_agents=2, min_at_lever=1), ActionTable([1.0, 0.0, 0.0]))
    >>> obs, infos = env.reset(seed=0)
    >>> _, rewards, *_ , infos = env.step({"agent_0": 0, "agent_1": 2})
    >>> rewards["agent_0"], infos["agent_0"]["env_reward"], infos["agent_0"]["incentive"]
    (0.0, -1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import gymnasium
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import BaseParallelWrapper, BaseWrapper, aec_to_parallel
from pettingzoo.utils.conversions import parallel_to_aec_wrapper
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from incentive_envs.validation import check_joint_action
from wrappers.core import (
    ADDED_INFO_KEYS,
    EnvAgents,
    EpisodeGuard,
    IncentiveBooks,
    IncentiveFn,
    IncentiveFunction,
    ParallelCore,
    PaymentRules,
    StepContext,
    check_options,
    check_rewards,
    extend_infos,
    has_state,
    snapshot,
)
from wrappers.functions import ActionTable, AgentValues, ModuleIncentive, joint_action_features

__all__ = [
    "ADDED_INFO_KEYS",
    "AECIncentiveWrapper",
    "ActionTable",
    "AgentValues",
    "GymIncentiveWrapper",
    "IncentiveAECView",
    "IncentiveFunction",
    "IncentiveWrapper",
    "ModuleIncentive",
    "PaymentRules",
    "StepContext",
    "incentive",
    "joint_action_features",
]

GYM_AGENT = "agent"
"""Name of the single agent of a wrapped Gymnasium env."""


class IncentiveWrapper(ParallelCore, IncentiveBooks, BaseParallelWrapper):
    """Add a designer's incentive to every agent's reward in a PettingZoo ``ParallelEnv``.

    Payments are computed after ``env.step`` from the pre-step designer observation and the joint action
    (so a rule may also look at what the step produced), pass the :class:`PaymentRules`, and are added to the
    step's rewards. See the module docstring for the ``infos`` keys and :class:`IncentiveBooks` for the
    accounting attributes (``episode_cost``, ``episode_welfare``, ``episode_stats()``, ...). One incentive
    wrapper per env: nesting is refused at construction. Copies (pickle, deepcopy) are refused mid-episode
    (see :meth:`~wrappers.core.EpisodeGuard.__getstate__`); copy before ``reset`` or after the episode.

    Args:
        env: the parallel env.
        incentive_fn: :class:`IncentiveFunction` or plain callable ``fn(ctx) -> {agent: payment}``.
        budget_per_step, budget_per_episode, on_budget, nonnegative, budget_balanced: :class:`PaymentRules`.

    Raises:
        RuntimeError: ``step`` before ``reset``, after the episode ended, or after a failed payment.
        KeyError: actions do not name exactly the live agents; a payment to an unknown or non-acting agent.
        ValueError: an action outside its space; invalid ``options``; a rule violated (see PaymentRules).
        FloatingPointError: a NaN/inf payment or env reward, or finite ones that add up to an infinite reward
            or account (naming agent, value and step).
        ValueError: (at construction) ``env`` is already wrapped by an incentive wrapper.
    """

    def __init__(
        self,
        env: ParallelEnv,
        incentive_fn: IncentiveFn,
        *,
        budget_per_step: float | None = None,
        budget_per_episode: float | None = None,
        on_budget: Literal["raise", "scale"] = "raise",
        nonnegative: bool = False,
        budget_balanced: bool = False,
    ) -> None:
        if not isinstance(env, ParallelEnv):
            raise TypeError(f"IncentiveWrapper needs a PettingZoo ParallelEnv, got {type(env).__name__}")
        super().__init__(env)
        rules = PaymentRules(budget_per_step, budget_per_episode, on_budget, nonnegative, budget_balanced)
        self._init_books(EnvAgents.of(env), incentive_fn, rules)
        self._designer_obs: Any = None

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        obs, infos = self._reset_env(seed, options)
        self._designer_obs = self._designer_view(obs)
        self._reset_books()
        return obs, extend_infos(infos, lambda _: self._reset_info(), "IncentiveWrapper")

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]]:
        acting, obs, env_rewards, terms, truncs, infos = self._env_step(actions)
        ctx = self._env_agents.context(self._designer_obs, actions, env_rewards, infos, acting, self._step)
        payments, scaled = self._pay(ctx)
        new_infos = extend_infos(
            infos,
            lambda agent: self._info(env_rewards.get(agent, 0.0), payments.get(agent, 0.0), scaled),
            "IncentiveWrapper",
        )
        shaped = {agent: reward + payments.get(agent, 0.0) for agent, reward in env_rewards.items()}
        check_rewards(shaped, self._step, "shaped reward")
        self._record(ctx, payments, env_rewards)
        self._designer_obs = self._designer_view(obs) if self.env.agents else None
        self._step_done()
        return obs, shaped, terms, truncs, new_infos

    def __str__(self) -> str:
        return f"IncentiveWrapper<{self.env}>"


def _book(name: str) -> property:
    """A read-only attribute of :class:`IncentiveAECView` that reads the parallel wrapper's account ``name``."""
    return property(lambda self: getattr(self.incentive_wrapper, name), doc=f"``IncentiveWrapper.{name}``.")


class IncentiveAECView(OrderEnforcingWrapper):
    """The AEC view of an :class:`IncentiveWrapper`, with the wrapper's accounts on the AEC env itself.

    What :func:`incentive` returns for a parallelizable AEC game: PettingZoo's ``parallel_to_aec`` converter
    over the parallel wrapper (so PettingZoo keeps the AEC reward bookkeeping), exposing ``episode_stats()``,
    ``set_incentive()`` and the accounts (``episode_cost``, ``last_payments``, ...) as the parallel wrapper does,
    instead of three levels down. ``pettingzoo.utils.aec_to_parallel`` turns it back into the
    :class:`IncentiveWrapper` (``incentive_wrapper``).
    """

    def __init__(self, wrapper: IncentiveWrapper) -> None:
        super().__init__(parallel_to_aec_wrapper(wrapper))
        self.incentive_wrapper = wrapper

    incentive_fn = _book("incentive_fn")
    rules = _book("rules")
    last_context = _book("last_context")
    last_payments = _book("last_payments")
    step_cost = _book("step_cost")
    episode_cost = _book("episode_cost")
    episode_welfare = _book("episode_welfare")
    episode_incentives = _book("episode_incentives")
    episode_env_rewards = _book("episode_env_rewards")
    episode_steps = _book("episode_steps")

    def episode_stats(self) -> dict[str, float]:
        """:meth:`IncentiveBooks.episode_stats` of the parallel wrapper (``welfare``, ``incentives_paid``, ...)."""
        return self.incentive_wrapper.episode_stats()

    def set_incentive(self, incentive_fn: IncentiveFn) -> None:
        """Swap the incentive function; it applies from the next joint step on."""
        self.incentive_wrapper.set_incentive(incentive_fn)


class AECIncentiveWrapper(EpisodeGuard, IncentiveBooks, BaseWrapper):
    """Incentives for a turn-based AEC game (one agent acts per step, e.g. classic board games with masks).

    The acting agent is paid when it acts; ``StepContext.actions`` holds just its action and ``env_rewards``
    the step's rewards of every agent. Legal-move masks stay the env's business.

    Reward bookkeeping: the wrapper keeps its own ``rewards``, ``_cumulative_rewards`` and ``infos`` and
    derives them from the inner env's per-step ``rewards`` with the standard AEC rule (an agent's cumulative
    reward restarts when it acts, then every agent's step reward, incentive included, is added). Writing
    payments into the inner env's dicts would double-count them in envs such as tictactoe that only call
    ``_accumulate_rewards`` at game end. Steps of finished agents (action None) pay nothing.

    ``budget_balanced`` is rejected: with one acting agent per step it would always pay zero.
    """

    def __init__(self, env: AECEnv, incentive_fn: IncentiveFn, **rules: Any) -> None:
        if not isinstance(env, AECEnv):
            raise TypeError(f"AECIncentiveWrapper needs a PettingZoo AECEnv, got {type(env).__name__}")
        super().__init__(env)
        payment_rules = PaymentRules(**rules)
        if payment_rules.budget_balanced:
            raise ValueError("budget_balanced=True is meaningless when one agent acts per step (it would pay 0)")
        self._init_books(EnvAgents.of(env), incentive_fn, payment_rules)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        check_options(options)
        self.env.reset(seed=seed, options=options)
        inner = self.env.unwrapped
        self.rewards = {a: 0.0 for a in inner.rewards}
        self._cumulative_rewards = {a: 0.0 for a in inner.rewards}
        self.infos = {a: {**i, **self._reset_info()} for a, i in inner.infos.items()}
        self._begin_episode()
        self._reset_books()

    def _designer_view(self) -> Any:
        """``env.state()`` when the game has one, else the observations of the agents still playing (snapshots)."""
        if has_state(self.env):
            return snapshot(self.env.state())
        live = [a for a in self.env.agents if not (self.env.terminations[a] or self.env.truncations[a])]
        return {a: snapshot(self.env.observe(a)) for a in live}

    def step(self, action: Any) -> None:
        self._check_step()
        agent = self.env.agent_selection
        if self.env.terminations[agent] or self.env.truncations[agent]:
            if action is not None:
                raise ValueError(f"{agent} is done; its action must be None, got {action!r}")
            self.env.step(None)
            self._mirror({}, {}, False, acting=None)
            return
        check_joint_action({agent: action}, [agent], self.env.action_space)
        designer_obs = self._designer_view()
        self.env.step(action)
        self._env_stepped()
        inner = self.env.unwrapped
        env_rewards = check_rewards(inner.rewards, self._step)
        ctx = self._env_agents.context(designer_obs, {agent: action}, env_rewards, inner.infos, (agent,), self._step)
        payments, scaled = self._pay(ctx)
        if payments and agent not in env_rewards:
            raise RuntimeError(f"the env removed {agent} during its own step; its incentive cannot be paid")
        self._mirror(env_rewards, payments, scaled, acting=agent)
        self._record(ctx, payments, env_rewards)
        self._step_done()

    def _mirror(
        self,
        env_rewards: Mapping[str, float],
        payments: Mapping[str, float],
        scaled: bool,
        acting: str | None,
    ) -> None:
        """Rebuild this wrapper's reward and info dicts over the inner env's current agents (checked finite)."""
        inner = self.env.unwrapped
        env_rewards = env_rewards or check_rewards(inner.rewards, self._step)
        cumulative = {**self._cumulative_rewards, **({} if acting is None else {acting: 0.0})}
        rewards = {a: env_rewards[a] + payments.get(a, 0.0) for a in inner.rewards}
        self.rewards = check_rewards(rewards, self._step, "shaped reward")
        cumulative = {a: cumulative.get(a, 0.0) + r for a, r in self.rewards.items()}
        self._cumulative_rewards = check_rewards(cumulative, self._step, "cumulative reward")
        self.infos = {
            a: {**i, **self._info(env_rewards[a], payments.get(a, 0.0), scaled)} for a, i in inner.infos.items()
        }

    def __str__(self) -> str:
        return f"AECIncentiveWrapper<{self.env}>"


class GymIncentiveWrapper(EpisodeGuard, IncentiveBooks, gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Shape a single-agent Gymnasium env's reward with a designer's incentive.

    The agent is called ``"agent"``; ``StepContext.designer_obs`` is the observation before the step and
    ``info`` gains the same keys as in the multi-agent wrappers. ``budget_balanced`` is rejected (one agent).
    """

    def __init__(self, env: gymnasium.Env, incentive_fn: IncentiveFn, **rules: Any) -> None:
        if not isinstance(env, gymnasium.Env):
            raise TypeError(f"GymIncentiveWrapper needs a gymnasium.Env, got {type(env).__name__}")
        gymnasium.utils.RecordConstructorArgs.__init__(self, incentive_fn=incentive_fn, **rules)
        gymnasium.Wrapper.__init__(self, env)
        payment_rules = PaymentRules(**rules)
        if payment_rules.budget_balanced:
            raise ValueError("budget_balanced=True is meaningless with a single agent (it would pay 0)")
        agents = EnvAgents((GYM_AGENT,), {GYM_AGENT: env.action_space}, {GYM_AGENT: env.observation_space})
        self._init_books(agents, incentive_fn, payment_rules)
        self._done = False
        self._obs: Any = None

    def _episode_over(self) -> bool:
        """A Gymnasium env has no agent list: the episode is over once it terminated or truncated."""
        return self._done

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        check_options(options)
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = snapshot(obs)
        self._done = False
        self._begin_episode()
        self._reset_books()
        return obs, {**info, **self._reset_info()}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self._check_step()
        check_joint_action({GYM_AGENT: action}, [GYM_AGENT], lambda _: self.env.action_space)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._env_stepped()
        env_rewards = check_rewards({GYM_AGENT: reward}, self._step)
        ctx = self._env_agents.context(
            self._obs, {GYM_AGENT: action}, env_rewards, {GYM_AGENT: info}, (GYM_AGENT,), self._step
        )
        payments, scaled = self._pay(ctx)
        paid = payments[GYM_AGENT]
        shaped = check_rewards({GYM_AGENT: env_rewards[GYM_AGENT] + paid}, self._step, "shaped reward")[GYM_AGENT]
        self._record(ctx, payments, env_rewards)
        info = {**info, **self._info(env_rewards[GYM_AGENT], paid, scaled)}
        self._obs = snapshot(obs)
        self._done = bool(terminated or truncated)
        self._step_done()
        return obs, shaped, terminated, truncated, info


def incentive(env: Any, incentive_fn: IncentiveFn, **options: Any) -> Any:
    """Wrap any PettingZoo or Gymnasium env so that ``incentive_fn`` pays its agents.

    - PettingZoo ``ParallelEnv`` -> :class:`IncentiveWrapper`.
    - PettingZoo ``AECEnv`` that is parallelizable (``metadata["is_parallelizable"]``) -> converted to
      parallel, wrapped, and converted back (:class:`IncentiveAECView`, which has ``episode_stats()``), so
      PettingZoo's converter keeps the AEC reward bookkeeping.
    - Other (turn-based) ``AECEnv`` -> :class:`AECIncentiveWrapper`.
    - ``gymnasium.Env`` -> :class:`GymIncentiveWrapper`.

    ``options`` are the :class:`PaymentRules` keywords.

    Raises:
        TypeError: ``env`` is none of these.
    """
    if isinstance(env, ParallelEnv):
        return IncentiveWrapper(env, incentive_fn, **options)
    if isinstance(env, AECEnv):
        if env.metadata.get("is_parallelizable", False):
            return IncentiveAECView(IncentiveWrapper(aec_to_parallel(env), incentive_fn, **options))
        return AECIncentiveWrapper(env, incentive_fn, **options)
    if isinstance(env, gymnasium.Env):
        return GymIncentiveWrapper(env, incentive_fn, **options)
    raise TypeError(
        f"incentive() needs a PettingZoo ParallelEnv or AECEnv or a gymnasium.Env, got {type(env).__name__}"
    )
