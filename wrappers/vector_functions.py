"""What a batched incentive function sees and the ready-made ones: :mod:`wrappers.functions` for all copies at once.

A batched incentive function maps a :class:`BatchedStepContext` (one step of all B copies) to payments
``[B, N]`` (entries of agents that did not act are ignored by the wrapper) and, where it has
``bind(possible_agents, action_spaces)``, is checked against the env when
:class:`~wrappers.vector.BatchedIncentiveWrapper` takes it, as the single ones are.

- :class:`PerCopy` lifts any single-step function ``fn(StepContext) -> {agent: payment}`` by calling it once
  per copy (the reference path for user functions).
- :class:`BatchedActionTable`, :class:`BatchedAgentValues`: vectorized ``ActionTable`` and ``AgentValues``.
- :func:`batched_joint_action_features` ``[B, F]``: row ``b`` equals ``joint_action_features`` of copy ``b``.
- :class:`BatchedModuleIncentive`: one module forward on ``[B, F]``; its inputs ``(features, slots)`` are
  exposed to a designer's recorder exactly as ``ModuleIncentive.inputs`` / ``pay`` expose them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from wrappers.core import EnvAgents, IncentiveFn, StepContext
from wrappers.functions import ActionTable, AgentValues, ModuleIncentive

if TYPE_CHECKING:
    import torch

__all__ = [
    "BatchedActionTable",
    "BatchedAgentValues",
    "BatchedIncentiveFn",
    "BatchedIncentiveFunction",
    "BatchedModuleIncentive",
    "BatchedStepContext",
    "PerCopy",
    "batched_joint_action_features",
]

Payments = NDArray[np.float64]
"""Payments of all copies, ``[B, N]`` float64 (0 for agents that did not act)."""


@dataclass(frozen=True)
class BatchedStepContext:
    """Everything a batched incentive function may look at for one step of all copies.

    Attributes:
        designer_obs: ``env.state()`` before the step, ``[B, *state]``, when the env has a state (``has_state``);
            else the agents' observations before the step, ``[B, N, *obs]``.
        actions: ``[B, N]`` joint actions (entries of agents that did not act are meaningless).
        env_rewards: ``[B, N]`` float64: the env's rewards of this step.
        infos: the env's infos of this step, ``{key: [B, N, ...]}``, before the wrapper adds its keys.
        active: ``[B, N]``: the agents that acted (all False in a copy whose episode is over).
        step: ``[B]``: each copy's 0-based step index within its episode.
        possible_agents: every agent, the order of the ``N`` axis.
        action_space: every agent's (Discrete) action space.
        observation_space: every agent's observation space.
        has_state: whether ``designer_obs`` is the env's state (else the observations).
    """

    designer_obs: NDArray[Any]
    actions: NDArray[np.int64]
    env_rewards: NDArray[np.float64]
    infos: Mapping[str, NDArray[Any]]
    active: NDArray[np.bool_]
    step: NDArray[np.int64]
    possible_agents: tuple[str, ...]
    action_space: spaces.Discrete
    observation_space: spaces.Space[Any]
    has_state: bool

    @property
    def shape(self) -> tuple[int, int]:
        """``(B, N)``: the shape of payments."""
        return (self.active.shape[0], len(self.possible_agents))

    def env_agents(self) -> EnvAgents:
        """The agents and spaces as the single wrappers see them (the same spaces for every agent)."""
        agents = self.possible_agents
        return EnvAgents(agents, dict.fromkeys(agents, self.action_space),
                         dict.fromkeys(agents, self.observation_space))

    def copy_context(self, b: int) -> StepContext:
        """The :class:`~wrappers.core.StepContext` of copy ``b`` alone, as a single wrapper would build it.

        The designer observation is copy ``b``'s state, or the observations of the agents that act.
        """
        acting = tuple(a for a, on in zip(self.possible_agents, self.active[b]) if on)
        where = [self.possible_agents.index(a) for a in acting]
        obs = self.designer_obs[b] if self.has_state else {a: self.designer_obs[b, i] for a, i in zip(acting, where)}
        infos = {a: {k: _item(v[b, i]) for k, v in self.infos.items()} for a, i in zip(acting, where)}
        return self.env_agents().context(
            obs,
            {a: int(self.actions[b, i]) for a, i in zip(acting, where)},
            {a: float(self.env_rewards[b, i]) for a, i in zip(acting, where)},
            infos,
            acting,
            int(self.step[b]),
        )


def _item(value: Any) -> Any:
    """A stacked info entry as the single env reports it: a Python scalar, or an array."""
    arr = np.asarray(value)
    return arr.item() if arr.ndim == 0 and arr.dtype != object else value


@runtime_checkable
class BatchedIncentiveFunction(Protocol):
    """A designer's payment rule for all copies: payments ``[B, N]`` (entries of non-acting agents ignored)."""

    def __call__(self, ctx: BatchedStepContext) -> Any: ...


BatchedIncentiveFn = BatchedIncentiveFunction | Callable[[BatchedStepContext], Any]


# ----------------------------------------------------------------------------------------------------------
# Batched incentive functions


class PerCopy:
    """Lift a single-step incentive function ``fn(StepContext) -> {agent: payment}`` to the batch.

    ``fn`` is called once per copy that is not done, with :meth:`BatchedStepContext.copy_context`, and its
    mapping is checked as the single wrapper checks it (a mapping; payments to acting agents only; numbers).
    """

    def __init__(self, fn: IncentiveFn) -> None:
        if not callable(fn):
            raise TypeError(f"PerCopy needs fn(ctx) -> {{agent: payment}}, got {fn!r}")
        self.fn = fn

    def bind(self, possible_agents: Sequence[str], action_spaces: Mapping[str, spaces.Space[Any]]) -> None:
        bind = getattr(self.fn, "bind", None)
        if callable(bind):
            bind(possible_agents, action_spaces)

    def __call__(self, ctx: BatchedStepContext) -> Payments:
        out = np.zeros(ctx.shape)
        for b in np.flatnonzero(ctx.active.any(axis=1)):
            single = ctx.copy_context(int(b))
            raw = self.fn(single)
            if not isinstance(raw, Mapping):
                raise TypeError(f"batch index {b}: incentive function must return a mapping agent -> payment, "
                                f"got {type(raw).__name__}")
            stray = [a for a in raw if a not in single.agents]
            if stray:
                unknown = [a for a in stray if a not in ctx.possible_agents]
                kind = f"unknown agents {unknown}" if unknown else f"agents {stray} that did not act"
                raise KeyError(f"batch index {b}: step {single.step}: incentive paid to {kind}; "
                               f"acting agents are {list(single.agents)}")
            for agent, value in raw.items():
                out[b, ctx.possible_agents.index(agent)] = _number(value, f"batch index {b}: incentive for "
                                                                          f"{agent} at step {single.step}")
        return out

    def __repr__(self) -> str:
        return f"PerCopy({self.fn!r})"


def _number(value: Any, what: str) -> float:
    """``float(value)``; ``TypeError`` naming ``what`` for strings, None and what ``float`` refuses (as the single
    wrapper checks a payment)."""
    number = None if isinstance(value, (str, bytes)) else value
    try:
        return float(number)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a number, got {value!r} of type {type(value).__name__}") from None


class BatchedActionTable:
    """:class:`~wrappers.functions.ActionTable` for the batch: ``scale * values[agent][action]`` per agent.

    Takes the same arguments and checks them the same way (an ``ActionTable`` is built and bound).
    """

    def __init__(self, values: Sequence[float] | Mapping[str, Sequence[float]], scale: float = 1.0) -> None:
        self.table = ActionTable(values, scale)
        self._rows: tuple[tuple[str, ...], NDArray[np.float64]] | None = None

    def bind(self, possible_agents: Sequence[str], action_spaces: Mapping[str, spaces.Space[Any]]) -> None:
        self.table.bind(possible_agents, action_spaces)
        tables = self.table.tables
        rows = [tables[a] if isinstance(tables, dict) else tables for a in possible_agents]
        self._rows = (tuple(possible_agents), np.stack(rows))

    def __call__(self, ctx: BatchedStepContext) -> Payments:
        if self._rows is None or self._rows[0] != ctx.possible_agents:
            self.bind(ctx.possible_agents, ctx.env_agents().action_spaces)
        assert self._rows is not None
        index = np.where(ctx.active, ctx.actions - int(ctx.action_space.start), 0)
        values = self._rows[1][np.arange(ctx.shape[1]), index]
        return np.where(ctx.active, self.table.scale * values, 0.0)

    def __repr__(self) -> str:
        return f"Batched{self.table!r}"


class BatchedAgentValues:
    """:class:`~wrappers.functions.AgentValues` for the batch: a fixed amount per acting agent and step."""

    def __init__(self, values: Mapping[str, float]) -> None:
        self.values = AgentValues(values)

    def bind(self, possible_agents: Sequence[str], action_spaces: Mapping[str, spaces.Space[Any]]) -> None:
        self.values.bind(possible_agents, action_spaces)

    def __call__(self, ctx: BatchedStepContext) -> Payments:
        row = np.array([self.values.values.get(a, 0.0) for a in ctx.possible_agents], dtype=np.float64)
        return np.where(ctx.active, row, 0.0)

    def __repr__(self) -> str:
        return f"Batched{self.values!r}"


def batched_joint_action_features(ctx: BatchedStepContext) -> NDArray[np.float32]:
    """``[B, F]`` float32: row ``b`` is :func:`~wrappers.functions.joint_action_features` of copy ``b``.

    The flattened designer observation (the state, or every agent's observation in ``possible_agents`` order)
    followed by one one-hot block of the action per agent (zeros for agents that did not act).
    """
    n_envs, n_agents = ctx.shape
    state = np.asarray(ctx.designer_obs).astype(np.float32).reshape(n_envs, -1)
    n_actions = int(ctx.action_space.n)
    onehot = np.zeros((n_envs, n_agents, n_actions), dtype=np.float32)
    b, i = np.nonzero(ctx.active)
    onehot[b, i, ctx.actions[b, i] - int(ctx.action_space.start)] = 1.0
    return np.concatenate([state, onehot.reshape(n_envs, -1)], axis=1)


class BatchedModuleIncentive:
    """:class:`~wrappers.functions.ModuleIncentive` for the batch: ``scale * module(x)[b, slot[b, i]]``.

    The module runs once per step on the ``[B, F]`` features of all copies. As with ``ModuleIncentive``,
    calling it is ``pay(inputs(ctx))``: a designer's recorder calls :meth:`inputs` (the features ``[B, F]``
    and each agent's output slot ``[B, N]``, -1 where it did not act) and :meth:`pay` itself, and recomputes the
    payments with gradients as ``payments_from_outputs(module(x), slots)``.

    Args:
        module: the torch module, ``[B, F] -> [B, K]``.
        features: ``features(ctx) -> [B, F]`` (default :func:`batched_joint_action_features`).
        slots: ``"action"``, ``"agent"`` or ``slots(ctx) -> [B, N]`` integer output indices.
        scale: multiplies every payment.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        features: Callable[[BatchedStepContext], NDArray[Any]] = batched_joint_action_features,
        slots: Literal["action", "agent"] | Callable[[BatchedStepContext], NDArray[Any]] = "action",
        scale: float = 1.0,
    ) -> None:
        checked = ModuleIncentive(module, slots="action" if callable(slots) else slots, scale=scale)
        if not callable(features):
            raise TypeError(f"features must be callable, got {features!r}")
        self.module, self.scale = checked.module, checked.scale
        self.features, self.slots = features, slots

    def _slots(self, ctx: BatchedStepContext) -> NDArray[np.int64]:
        if self.slots == "action":
            slots = ctx.actions - int(ctx.action_space.start)
        elif self.slots == "agent":
            slots = np.broadcast_to(np.arange(ctx.shape[1]), ctx.shape)
        else:
            slots = np.asarray(self.slots(ctx))
            if slots.shape != ctx.shape or not np.issubdtype(slots.dtype, np.integer):
                raise ValueError(f"slots(ctx) must be integers of shape [B, N] = {ctx.shape}, got "
                                 f"{slots.dtype} {slots.shape}")
        return np.where(ctx.active, slots, -1).astype(np.int64)

    def inputs(self, ctx: BatchedStepContext) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The float32 features ``[B, F]`` of ``ctx`` and the agents' output slots ``[B, N]`` (-1: not paid).

        Raises:
            ValueError: the features are not ``[B, F]``.
            FloatingPointError: a feature of a copy that is not done is NaN or infinite (naming the copy).
        """
        x = np.asarray(self.features(ctx), dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != ctx.shape[0]:
            raise ValueError(f"features(ctx) must have shape [B, F] with B = {ctx.shape[0]}, got {x.shape}")
        bad = ~np.isfinite(x).all(axis=1) & ctx.active.any(axis=1)
        if bad.any():
            b = int(np.flatnonzero(bad)[0])
            raise FloatingPointError(f"batch index {b}: features(ctx) at step {ctx.step[b]} contain NaN or inf: "
                                     f"{x[b].tolist()}")
        return x, self._slots(ctx)

    def pay(self, inputs: tuple[NDArray[np.float32], NDArray[np.int64]]) -> Payments:
        """The payments ``[B, N]`` for ``inputs`` (from :meth:`inputs`): one module forward without gradients."""
        import torch

        x, slots = inputs
        with torch.no_grad():
            out = self.module(torch.as_tensor(x, dtype=torch.float32))
        return self.payments_from_outputs(out, slots).to(torch.float64).numpy()

    def payments_from_outputs(self, out: torch.Tensor, slots: NDArray[np.int64]) -> torch.Tensor:
        """``scale * out[b, slots[b, i]]`` as a ``[B, N]`` tensor (0 where the slot is -1), with ``out``'s gradient.

        Raises:
            ValueError: ``out`` is not ``[B, K]`` or a slot is outside it.
        """
        import torch

        idx = torch.as_tensor(np.asarray(slots, dtype=np.int64))
        if out.ndim != 2 or out.shape[0] != idx.shape[0]:
            raise ValueError(f"module output must have shape [B, K] with B = {idx.shape[0]}, got {tuple(out.shape)}")
        outside = (idx >= out.shape[1]) | (idx < -1)
        if outside.any():
            b, i = (int(v) for v in outside.nonzero()[0])
            raise ValueError(f"batch index {b}, agent {i}: slot {int(idx[b, i])} is outside the module output of "
                             f"size {out.shape[1]}")
        paid = self.scale * out.gather(1, idx.clamp(min=0))
        return torch.where(idx >= 0, paid, torch.zeros_like(paid))

    def __call__(self, ctx: BatchedStepContext) -> Payments:
        return self.pay(self.inputs(ctx))
