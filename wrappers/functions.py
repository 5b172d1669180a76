"""Ready-made incentive functions: fixed tables and values, and a torch module as the designer.

Each is an :class:`~wrappers.core.IncentiveFunction` (``fn(ctx) -> {agent: payment}``); those with a
``bind(possible_agents, action_spaces)`` method are checked against the env when a wrapper takes them, so a
table of the wrong size fails at wrap time rather than mid-episode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from gymnasium import spaces

from incentive_envs.validation import finite_vector
from wrappers.core import StepContext

if TYPE_CHECKING:
    import torch

__all__ = ["ActionTable", "AgentValues", "ModuleIncentive", "joint_action_features"]


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

    Calling it is ``pay(inputs(ctx))``; it keeps no record of what it was called on. A designer that needs the
    exact inputs for the meta-gradient records them itself: it calls :meth:`inputs` and :meth:`pay` (the
    designer package does that in its rollout), then recomputes the payments with gradients as
    ``payments_from_outputs(module(x[None])[0], slots)``, which equal the paid ones.
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

    def _slots(self, ctx: StepContext) -> dict[str, int]:
        if self.slots == "action":
            return {a: _discrete_index(a, ctx.actions[a], ctx.action_spaces[a]) for a in ctx.agents}
        if self.slots == "agent":
            return {a: ctx.possible_agents.index(a) for a in ctx.agents}
        custom = dict(self.slots(ctx))
        if set(custom) != set(ctx.agents):
            raise KeyError(f"slots(ctx) must name exactly the acting agents {list(ctx.agents)}, got {sorted(custom)}")
        return {a: int(custom[a]) for a in ctx.agents}

    def inputs(self, ctx: StepContext) -> tuple[np.ndarray, dict[str, int]]:
        """The float32 1-D feature vector of ``ctx`` and each acting agent's output slot.

        Raises:
            ValueError: the features are not a 1-D vector.
            FloatingPointError: a feature is NaN or infinite.
        """
        x = np.asarray(self.features(ctx), dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"features(ctx) must be a 1-D vector, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise FloatingPointError(f"features(ctx) at step {ctx.step} contain NaN or inf: {x.tolist()}")
        return x, self._slots(ctx)

    def pay(self, inputs: tuple[np.ndarray, Mapping[str, int]]) -> dict[str, float]:
        """The payments for ``inputs`` (from :meth:`inputs`): the module run once without gradients."""
        import torch

        x, slots = inputs
        with torch.no_grad():
            out = self.module(torch.as_tensor(x, dtype=torch.float32)[None])[0]
        return {agent: float(value) for agent, value in self.payments_from_outputs(out, slots).items()}

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
        return self.pay(self.inputs(ctx))
