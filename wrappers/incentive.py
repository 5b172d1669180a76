"""Incentive wrappers: a designer pays agents on top of the env's reward, in any PettingZoo/Gymnasium env.

The designer is an *incentive function* ``fn(ctx) -> {agent: payment}`` called after every env step with a
:class:`StepContext` (the pre-step designer observation, the joint action, the step's env rewards and infos).
Each agent's reward becomes ``env_reward + incentive``, and both parts are reported in ``infos[agent]``:

===================== =======================================================================================
``env_reward``        the env's own reward for this step (float)
``incentive``         the payment for this step (float; 0.0 for an agent that did not act)
``incentive_scaled``  True when ``on_budget="scale"`` shrank this step's payments to fit a budget
===================== =======================================================================================

Use :func:`incentive` to wrap any env; it dispatches to :class:`IncentiveWrapper` (PettingZoo parallel),
:class:`AECIncentiveWrapper` (turn-based AEC games) or :class:`GymIncentiveWrapper` (single-agent Gymnasium).

Example:
    >>> from incentive_envs.escape_room import parallel_env
    >>> env = incentive(parallel_env(n_agents=2, min_at_lever=1), ActionTable([1.0, 0.0, 0.0]))
    >>> obs, infos = env.reset(seed=0)
    >>> _, rewards, *_ , infos = env.step({"agent_0": 0, "agent_1": 2})
    >>> rewards["agent_0"], infos["agent_0"]["env_reward"], infos["agent_0"]["incentive"]
    (0.0, -1.0, 1.0)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import BaseParallelWrapper, BaseWrapper, aec_to_parallel, parallel_to_aec

from incentive_envs.validation import check_joint_action, finite_vector
from wrappers._accounting import (
    ADDED_INFO_KEYS,
    GuardedParallelStep,
    IncentiveBooks,
    PaymentRules,
    check_env_rewards,
)

if TYPE_CHECKING:
    import torch

__all__ = [
    "ADDED_INFO_KEYS",
    "AECIncentiveWrapper",
    "ActionTable",
    "AgentValues",
    "GymIncentiveWrapper",
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


# ----------------------------------------------------------------------------------------------------------
# Incentive functions


def _finite_scale(scale: Any) -> float:
    s = float(scale)
    if not math.isfinite(s):
        raise ValueError(f"scale must be finite, got {scale!r}")
    return s


def _discrete_index(agent: str, action: Any, space: spaces.Space[Any]) -> int:
    """0-based index of ``action`` in a Discrete space; TypeError for any other kind of space."""
    if not isinstance(space, spaces.Discrete):
        raise TypeError(f"{agent}: action space {space} is not Discrete; this incentive needs one-hot actions")
    return int(action) - int(space.start)


class ActionTable:
    """Pay each acting agent a value indexed by its Discrete action (the paper's ``output_type='action'``).

    Args:
        values: one value per action, shared by all agents, or a mapping agent -> values.
        scale: multiplies every value.

    Raises:
        ValueError: ``values`` not 1-D, or (at bind/use) its length differs from the action-space size.
        FloatingPointError: a value is NaN or infinite.
        KeyError: (mapping form, at bind/use) values for unknown agents or none for an acting agent.
    """

    def __init__(self, values: Sequence[float] | Mapping[str, Sequence[float]], scale: float = 1.0) -> None:
        self.scale = _finite_scale(scale)
        if isinstance(values, Mapping):
            self.tables: dict[str, np.ndarray] | np.ndarray = {
                a: finite_vector(f"values[{a!r}]", v) for a, v in values.items()
            }
        else:
            self.tables = finite_vector("values", values)

    def _table(self, agent: str, space: spaces.Space[Any]) -> np.ndarray:
        if isinstance(self.tables, dict):
            if agent not in self.tables:
                raise KeyError(f"ActionTable has no values for {agent}; it has {sorted(self.tables)}")
            table = self.tables[agent]
        else:
            table = self.tables
        if not isinstance(space, spaces.Discrete):
            raise TypeError(f"{agent}: ActionTable needs a Discrete action space, got {space}")
        if table.size != space.n:
            raise ValueError(f"{agent}: ActionTable has {table.size} values but the action space {space} has {space.n}")
        return table

    def bind(self, possible_agents: Sequence[str], action_spaces: Mapping[str, spaces.Space[Any]]) -> None:
        """Check the table against the env's agents and action spaces before the first step."""
        if isinstance(self.tables, dict):
            unknown = sorted(set(self.tables) - set(possible_agents))
            if unknown:
                raise KeyError(
                    f"ActionTable has values for unknown agents {unknown}; agents are {list(possible_agents)}"
                )
        for agent in possible_agents:
            self._table(agent, action_spaces[agent])

    def __call__(self, ctx: StepContext) -> dict[str, float]:
        pay = {}
        for agent in ctx.agents:
            space = ctx.action_spaces[agent]
            pay[agent] = self.scale * float(
                self._table(agent, space)[_discrete_index(agent, ctx.actions[agent], space)]
            )
        return pay

    def __repr__(self) -> str:
        tables = (
            {a: t.tolist() for a, t in self.tables.items()} if isinstance(self.tables, dict) else self.tables.tolist()
        )
        return f"ActionTable({tables}, scale={self.scale})"


class AgentValues:
    """Pay each acting agent a fixed amount per step (``output_type='agent'`` with a constant designer).

    Agents not in ``values`` are paid 0. Values for agents the env does not have raise ``KeyError`` at bind.
    """

    def __init__(self, values: Mapping[str, float]) -> None:
        if not isinstance(values, Mapping):
            raise TypeError(f"values must be a mapping agent -> payment, got {type(values).__name__}")
        self.values = {a: float(v) for a, v in values.items()}
        bad = {a: v for a, v in self.values.items() if not math.isfinite(v)}
        if bad:
            raise FloatingPointError(f"AgentValues must be finite, got {bad}")

    def bind(self, possible_agents: Sequence[str], action_spaces: Mapping[str, spaces.Space[Any]]) -> None:
        unknown = sorted(set(self.values) - set(possible_agents))
        if unknown:
            raise KeyError(f"AgentValues pays unknown agents {unknown}; agents are {list(possible_agents)}")

    def __call__(self, ctx: StepContext) -> dict[str, float]:
        return {a: self.values.get(a, 0.0) for a in ctx.agents}

    def __repr__(self) -> str:
        return f"AgentValues({self.values})"


def _flat_obs(value: Any, space: spaces.Space[Any] | None) -> np.ndarray:
    if space is not None:
        return np.asarray(spaces.flatten(space, value), dtype=np.float32).reshape(-1)
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"cannot flatten a designer observation of type {type(value).__name__}; pass features=")
    return arr.astype(np.float32).reshape(-1)


def joint_action_features(ctx: StepContext) -> np.ndarray:
    """Flattened designer observation followed by the one-hot joint action, as float32.

    A dict of observations is flattened agent by agent in ``possible_agents`` order (zeros for an agent that
    is gone); the joint action is one one-hot block per possible agent (zeros for agents that did not act).
    For Escape Room this is the paper's designer input: state (3N one-hot) + joint action (3N one-hot).

    Raises:
        TypeError: an action space is not Discrete, or the designer observation cannot be flattened.
    """
    obs = ctx.designer_obs
    if isinstance(obs, Mapping) and set(obs) <= set(ctx.possible_agents):
        parts = []
        for agent in ctx.possible_agents:
            space = ctx.observation_spaces.get(agent)
            if agent in obs:
                parts.append(_flat_obs(obs[agent], space))
            elif space is not None:
                parts.append(np.zeros(spaces.flatdim(space), dtype=np.float32))
            else:
                raise TypeError(f"{agent} has no observation and no observation space to size its zeros")
        state = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    else:
        state = _flat_obs(obs, None)
    onehots = []
    for agent in ctx.possible_agents:
        space = ctx.action_spaces[agent]
        if not isinstance(space, spaces.Discrete):
            raise TypeError(f"joint_action_features needs Discrete action spaces; {agent} has {space}")
        block = np.zeros(int(space.n), dtype=np.float32)
        if agent in ctx.actions:
            block[_discrete_index(agent, ctx.actions[agent], space)] = 1.0
        onehots.append(block)
    return np.concatenate([state, *onehots]).astype(np.float32, copy=False)


class ModuleIncentive:
    """Payments from a torch module: ``scale * module(x)[slot[agent]]`` for each acting agent.

    ``x = features(ctx)`` is evaluated by the module as a batch of one under ``torch.no_grad()``. ``slots``
    picks which output pays an agent: its action (``"action"``, the paper's ER/Cleanup designer), its index in
    ``possible_agents`` (``"agent"``) or a custom ``slots(ctx) -> {agent: index}``.

    For the meta-gradient the designer logs :meth:`inputs` (``last_inputs`` holds the most recent) and later
    recomputes the payments with gradients: ``payments_from_outputs(module(x[None])[0], slots)``. ``__call__``
    goes through the same two methods, so the recomputed values equal the paid ones.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        features: Callable[[StepContext], np.ndarray] = joint_action_features,
        slots: Literal["action", "agent"] | Callable[[StepContext], Mapping[str, int]] = "action",
        scale: float = 1.0,
    ) -> None:
        import torch

        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if not (slots in ("action", "agent") or callable(slots)):
            raise ValueError(f"slots must be 'action', 'agent' or a callable, got {slots!r}")
        if not callable(features):
            raise TypeError(f"features must be callable, got {features!r}")
        self.module = module
        self.features = features
        self.slots = slots
        self.scale = _finite_scale(scale)
        self.last_inputs: tuple[np.ndarray, dict[str, int]] | None = None

    def _slots(self, ctx: StepContext) -> dict[str, int]:
        if self.slots == "action":
            return {a: _discrete_index(a, ctx.actions[a], ctx.action_spaces[a]) for a in ctx.agents}
        if self.slots == "agent":
            return {a: ctx.possible_agents.index(a) for a in ctx.agents}
        custom = dict(self.slots(ctx))  # type: ignore[operator]
        if set(custom) != set(ctx.agents):
            raise KeyError(f"slots(ctx) must name exactly the acting agents {list(ctx.agents)}, got {sorted(custom)}")
        return {a: int(custom[a]) for a in ctx.agents}

    def inputs(self, ctx: StepContext) -> tuple[np.ndarray, dict[str, int]]:
        """The float32 1-D feature vector and each acting agent's output slot; also stored in ``last_inputs``.

        Raises:
            ValueError: the features are not a 1-D vector.
            FloatingPointError: a feature is NaN or infinite.
        """
        x = np.asarray(self.features(ctx), dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"features(ctx) must be a 1-D vector, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise FloatingPointError(f"features(ctx) at step {ctx.step} contain NaN or inf: {x.tolist()}")
        self.last_inputs = (x, self._slots(ctx))
        return self.last_inputs

    def payments_from_outputs(self, out: torch.Tensor, slots: Mapping[str, int]) -> dict[str, torch.Tensor]:
        """``{agent: scale * out[slot]}`` as 0-d tensors (they carry ``out``'s gradient).

        Raises:
            ValueError: ``out`` is not 1-D or a slot is outside it.
        """
        if out.ndim != 1:
            raise ValueError(f"module output for one input must be 1-D, got shape {tuple(out.shape)}")
        n = out.shape[0]
        for agent, slot in slots.items():
            if not 0 <= slot < n:
                raise ValueError(f"{agent}: slot {slot} is outside the module output of size {n}")
        return {agent: self.scale * out[slot] for agent, slot in slots.items()}

    def __call__(self, ctx: StepContext) -> dict[str, float]:
        import torch

        x, slots = self.inputs(ctx)
        with torch.no_grad():
            out = self.module(torch.as_tensor(x, dtype=torch.float32)[None])[0]
        return {agent: float(value) for agent, value in self.payments_from_outputs(out, slots).items()}


def _bind(fn: Any, possible_agents: Sequence[str], action_spaces: Mapping[str, spaces.Space[Any]]) -> Any:
    if not callable(fn):
        raise TypeError(f"incentive_fn must be callable as fn(ctx) -> {{agent: payment}}, got {fn!r}")
    bind = getattr(fn, "bind", None)
    if callable(bind):
        bind(possible_agents, action_spaces)
    return fn


def _check_options(options: Any) -> None:
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"options must be a dict or None, got {options!r}")


def _has_state(env: Any) -> bool:
    """Whether ``env.state()`` is available: PettingZoo envs with a global state declare ``state_space``."""
    if getattr(env, "state_space", None) is None:
        return False
    try:
        env.state()
    except NotImplementedError:
        return False
    return True


def _snapshot(value: Any) -> Any:
    """A copy the env cannot mutate later (envs may reuse their observation buffers)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in value.values()):
        return {k: v.copy() for k, v in value.items()}
    return copy.deepcopy(value)


# ----------------------------------------------------------------------------------------------------------
# Wrappers


class IncentiveWrapper(GuardedParallelStep, IncentiveBooks, BaseParallelWrapper):
    """Add a designer's incentive to every agent's reward in a PettingZoo ``ParallelEnv``.

    Payments are computed after ``env.step`` from the pre-step designer observation and the joint action
    (so a rule may also look at what the step produced), pass the :class:`PaymentRules`, and are added to the
    step's rewards. See the module docstring for the ``infos`` keys and :class:`IncentiveBooks` for the
    accounting attributes (``episode_cost``, ``episode_welfare``, ``episode_stats()``, ...).

    Args:
        env: the parallel env.
        incentive_fn: :class:`IncentiveFunction` or plain callable ``fn(ctx) -> {agent: payment}``.
        budget_per_step, budget_per_episode, on_budget, nonnegative, budget_balanced: :class:`PaymentRules`.

    Raises:
        RuntimeError: ``step`` before ``reset``, after the episode ended, or after a failed payment.
        KeyError: actions do not name exactly the live agents; a payment to an unknown or non-acting agent.
        ValueError: an action outside its space; invalid ``options``; a rule violated (see PaymentRules).
        FloatingPointError: a NaN/inf payment or env reward (naming agent, value and step).
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
        self.rules = PaymentRules(budget_per_step, budget_per_episode, on_budget, nonnegative, budget_balanced)
        self._possible = tuple(env.possible_agents)
        self._action_spaces = {a: env.action_space(a) for a in self._possible}
        self._observation_spaces = {a: env.observation_space(a) for a in self._possible}
        self.incentive_fn = _bind(incentive_fn, self._possible, self._action_spaces)
        self._started = False
        self._failed = False
        self._has_state = False
        self._designer_obs: Any = None
        self._step = 0
        self._reset_books()

    def set_incentive(self, incentive_fn: IncentiveFn) -> None:
        """Swap the incentive function; it applies from the next step on."""
        self.incentive_fn = _bind(incentive_fn, self._possible, self._action_spaces)

    def _observe_designer(self, obs: Mapping[str, Any]) -> Any:
        return _snapshot(self.env.state()) if self._has_state else _snapshot(dict(obs))

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        _check_options(options)
        obs, infos = self.env.reset(seed=seed, options=options)
        self._has_state = _has_state(self.env)
        self._designer_obs = self._observe_designer(obs)
        self._started, self._failed, self._step = True, False, 0
        self._reset_books()
        return obs, infos

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]]:
        acting, obs, env_rewards, terms, truncs, infos = self._env_step(actions)
        ctx = StepContext(
            designer_obs=self._designer_obs,
            actions=dict(actions),
            env_rewards=env_rewards,
            infos={a: dict(i) for a, i in infos.items()},
            agents=acting,
            possible_agents=self._possible,
            action_spaces=self._action_spaces,
            step=self._step,
            observation_spaces=self._observation_spaces,
        )
        payments, scaled = self._settle(self.incentive_fn(ctx), ctx)
        shaped, new_infos = {}, {}
        for agent, info in infos.items():
            clash = [k for k in ADDED_INFO_KEYS if k in info]
            if clash:
                raise ValueError(f"infos[{agent!r}] already has {clash}; nest one IncentiveWrapper at most")
            new_infos[agent] = {
                **info,
                "env_reward": env_rewards.get(agent, 0.0),
                "incentive": payments.get(agent, 0.0),
                "incentive_scaled": scaled,
            }
        for agent, reward in env_rewards.items():
            shaped[agent] = reward + payments.get(agent, 0.0)
        self._record(ctx, payments, env_rewards)
        self._designer_obs = self._observe_designer(obs) if self.env.agents else None
        self._step += 1
        self._failed = False
        return obs, shaped, terms, truncs, new_infos

    def __str__(self) -> str:
        return f"IncentiveWrapper<{self.env}>"


class AECIncentiveWrapper(IncentiveBooks, BaseWrapper):
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
        self.rules = PaymentRules(**rules)
        if self.rules.budget_balanced:
            raise ValueError("budget_balanced=True is meaningless when one agent acts per step (it would pay 0)")
        self._possible = tuple(env.possible_agents)
        self._action_spaces = {a: env.action_space(a) for a in self._possible}
        self._observation_spaces = {a: env.observation_space(a) for a in self._possible}
        self.incentive_fn = _bind(incentive_fn, self._possible, self._action_spaces)
        self._started = False
        self._failed = False
        self._step = 0
        self._reset_books()

    def set_incentive(self, incentive_fn: IncentiveFn) -> None:
        """Swap the incentive function; it applies from the next step on."""
        self.incentive_fn = _bind(incentive_fn, self._possible, self._action_spaces)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        _check_options(options)
        self.env.reset(seed=seed, options=options)
        inner = self.env.unwrapped
        self.rewards = {a: 0.0 for a in inner.rewards}
        self._cumulative_rewards = {a: 0.0 for a in inner.rewards}
        self.infos = {a: dict(i) for a, i in inner.infos.items()}
        self._started, self._failed, self._step = True, False, 0
        self._reset_books()

    def _designer_view(self) -> Any:
        if _has_state(self.env):
            return _snapshot(self.env.state())
        live = [a for a in self.env.agents if not (self.env.terminations[a] or self.env.truncations[a])]
        return {a: _snapshot(self.env.observe(a)) for a in live}

    def step(self, action: Any) -> None:
        if not self._started:
            raise RuntimeError("step() called before reset(); call reset() first")
        if self._failed:
            raise RuntimeError("the previous step raised after the env had stepped; call reset() first")
        if not self.env.agents:
            raise RuntimeError("step() called after the episode finished; call reset() first")
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
        self._failed = True
        inner = self.env.unwrapped
        env_rewards = check_env_rewards(inner.rewards, self._step)
        ctx = StepContext(
            designer_obs=designer_obs,
            actions={agent: action},
            env_rewards=env_rewards,
            infos={a: dict(i) for a, i in inner.infos.items()},
            agents=(agent,),
            possible_agents=self._possible,
            action_spaces=self._action_spaces,
            step=self._step,
            observation_spaces=self._observation_spaces,
        )
        payments, scaled = self._settle(self.incentive_fn(ctx), ctx)
        if payments and agent not in env_rewards:
            raise RuntimeError(f"the env removed {agent} during its own step; its incentive cannot be paid")
        self._record(ctx, payments, env_rewards)
        self._mirror(env_rewards, payments, scaled, acting=agent)
        self._step += 1
        self._failed = False

    def _mirror(
        self,
        env_rewards: Mapping[str, float],
        payments: Mapping[str, float],
        scaled: bool,
        acting: str | None,
    ) -> None:
        """Rebuild this wrapper's reward and info dicts over the inner env's current agents."""
        inner = self.env.unwrapped
        env_rewards = env_rewards or check_env_rewards(inner.rewards, self._step)
        if acting is not None:
            self._cumulative_rewards[acting] = 0.0
        self.rewards = {a: env_rewards[a] + payments.get(a, 0.0) for a in inner.rewards}
        self._cumulative_rewards = {a: self._cumulative_rewards.get(a, 0.0) + r for a, r in self.rewards.items()}
        self.infos = {
            a: {
                **i,
                "env_reward": env_rewards[a],
                "incentive": payments.get(a, 0.0),
                "incentive_scaled": scaled,
            }
            for a, i in inner.infos.items()
        }

    def __str__(self) -> str:
        return f"AECIncentiveWrapper<{self.env}>"


class GymIncentiveWrapper(IncentiveBooks, gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Shape a single-agent Gymnasium env's reward with a designer's incentive.

    The agent is called ``"agent"``; ``StepContext.designer_obs`` is the observation before the step and
    ``info`` gains the same keys as in the multi-agent wrappers. ``budget_balanced`` is rejected (one agent).
    """

    def __init__(self, env: gymnasium.Env, incentive_fn: IncentiveFn, **rules: Any) -> None:
        if not isinstance(env, gymnasium.Env):
            raise TypeError(f"GymIncentiveWrapper needs a gymnasium.Env, got {type(env).__name__}")
        gymnasium.utils.RecordConstructorArgs.__init__(self, incentive_fn=incentive_fn, **rules)
        gymnasium.Wrapper.__init__(self, env)
        self.rules = PaymentRules(**rules)
        if self.rules.budget_balanced:
            raise ValueError("budget_balanced=True is meaningless with a single agent (it would pay 0)")
        self._spaces = {GYM_AGENT: env.action_space}
        self.incentive_fn = _bind(incentive_fn, (GYM_AGENT,), self._spaces)
        self._started = False
        self._done = False
        self._failed = False
        self._obs: Any = None
        self._step = 0
        self._reset_books()

    def set_incentive(self, incentive_fn: IncentiveFn) -> None:
        """Swap the incentive function; it applies from the next step on."""
        self.incentive_fn = _bind(incentive_fn, (GYM_AGENT,), self._spaces)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        _check_options(options)
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = _snapshot(obs)
        self._started, self._done, self._failed, self._step = True, False, False, 0
        self._reset_books()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if not self._started:
            raise RuntimeError("step() called before reset(); call reset() first")
        if self._failed:
            raise RuntimeError("the previous step raised after the env had stepped; call reset() first")
        if self._done:
            raise RuntimeError("step() called after the episode finished; call reset() first")
        check_joint_action({GYM_AGENT: action}, [GYM_AGENT], lambda _: self.env.action_space)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._failed = True
        env_rewards = check_env_rewards({GYM_AGENT: reward}, self._step)
        ctx = StepContext(
            designer_obs=self._obs,
            actions={GYM_AGENT: action},
            env_rewards=env_rewards,
            infos={GYM_AGENT: dict(info)},
            agents=(GYM_AGENT,),
            possible_agents=(GYM_AGENT,),
            action_spaces=self._spaces,
            step=self._step,
            observation_spaces={GYM_AGENT: self.env.observation_space},
        )
        payments, scaled = self._settle(self.incentive_fn(ctx), ctx)
        self._record(ctx, payments, env_rewards)
        paid = payments[GYM_AGENT]
        info = {**info, "env_reward": env_rewards[GYM_AGENT], "incentive": paid, "incentive_scaled": scaled}
        self._obs = _snapshot(obs)
        self._done = bool(terminated or truncated)
        self._step += 1
        self._failed = False
        return obs, env_rewards[GYM_AGENT] + paid, terminated, truncated, info


def incentive(env: Any, incentive_fn: IncentiveFn, **options: Any) -> Any:
    """Wrap any PettingZoo or Gymnasium env so that ``incentive_fn`` pays its agents.

    - PettingZoo ``ParallelEnv`` -> :class:`IncentiveWrapper`.
    - PettingZoo ``AECEnv`` that is parallelizable (``metadata["is_parallelizable"]``) -> converted to
      parallel, wrapped, and converted back, so PettingZoo's converter keeps the AEC reward bookkeeping.
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
            return parallel_to_aec(IncentiveWrapper(aec_to_parallel(env), incentive_fn, **options))
        return AECIncentiveWrapper(env, incentive_fn, **options)
    if isinstance(env, gymnasium.Env):
        return GymIncentiveWrapper(env, incentive_fn, **options)
    raise TypeError(
        f"incentive() needs a PettingZoo ParallelEnv or AECEnv or a gymnasium.Env, got {type(env).__name__}"
    )
