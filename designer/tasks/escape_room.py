"""Escape Room ER(N, M) for the designer: the paper's REINFORCE agents and MetaGrad designer (method.md §2.3, §5.1).

The generic :class:`~designer.task.Task` already is the paper's designer input (state one-hot plus joint
action one-hot, vectorized for the batched rollout by the generic task too); this module adds the env's known
optimum, the paper's defaults (those of the configs) and the env's native batch.

The contextual game (``escape_room_contextual``: the lever's place drawn per episode from L places) uses the same
inputs: the env's ``state()`` ends with the one-hot lever place, so the designer's features carry the context.
Because the lever moves, paying per action (``output="action"``: one value per position) cannot single out the
agents who pull it without reading the context; :class:`ContextualEscapeRoomTask` adds ``output="action_type"``,
one value per role of the chosen position this episode (:data:`ROLES`), which a constant table can use too.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from designer.registry import register_task
from designer.task import Output, Task
from incentive_envs import make_batched
from incentive_envs.escape_room import CONTEXTUAL_LEVERS, EscapeRoomEnv, optimal_welfare
from wrappers import BatchedStepContext, StepContext

__all__ = ["ROLES", "ContextualEscapeRoomTask", "contextual_escape_room_task", "escape_room_task", "lever_roles"]

ROLES: Final = ("lever", "start", "door", "empty place")
"""Roles of a contextual ER position this episode: the lever's place, the start, the door, another lever place."""


def _role(actions: Any, levers: Any, n_levers: int) -> Any:
    """Role index (:data:`ROLES`) of each chosen position, given the lever's place (works on arrays and ints)."""
    return np.select([actions == levers, actions == n_levers, actions == n_levers + 1], [0, 1, 2], 3)


def lever_roles(ctx: StepContext) -> dict[str, int]:
    """Pay each agent the value of the role of the position it chose (``output="action_type"``)."""
    space = ctx.action_spaces[ctx.possible_agents[0]]
    n_levers = int(space.n) - 2 if isinstance(space, spaces.Discrete) else 0  # positions: L places, start, door
    return {a: int(_role(int(ctx.actions[a]), int(ctx.infos[a]["lever"]), n_levers)) for a in ctx.agents}


def batched_lever_roles(ctx: BatchedStepContext) -> NDArray[np.int64]:
    """:func:`lever_roles` of every copy ``[B, N]`` (0 where the agent did not act)."""
    roles = _role(ctx.actions, ctx.infos["lever"], int(ctx.action_space.n) - 2)
    return np.where(ctx.active, roles, 0).astype(np.int64)


class ContextualEscapeRoomTask(Task):
    """Contextual ER: the generic task (whose features include the lever place through ``state()``) plus the
    ``action_type`` output paying by role (:data:`ROLES`)."""

    @property
    def outputs(self) -> Mapping[str, Output]:
        return {**super().outputs, "action_type": Output(len(ROLES), lever_roles, batched_lever_roles)}


@register_task("escape_room")
def escape_room_task(n_agents: int = 5, min_at_lever: int = 2, max_steps: int = 5, randomize: bool = False) -> Task:
    """ER(N, M) with the paper's REINFORCE agents and MetaGrad designer."""
    kwargs: dict[str, Any] = {"n_agents": n_agents, "min_at_lever": min_at_lever, "max_steps": max_steps,
                              "randomize": randomize}
    return Task("escape_room", functools.partial(EscapeRoomEnv, **kwargs),
                optimum=optimal_welfare(n_agents, min_at_lever), env_kwargs=kwargs,
                make_batched=functools.partial(make_batched, "escape_room", **kwargs))


@register_task("escape_room_contextual")
def contextual_escape_room_task(n_agents: int = 5, min_at_lever: int = 2, max_steps: int = 5,
                                randomize: bool = False, n_levers: int = CONTEXTUAL_LEVERS) -> Task:
    """Contextual ER(N, M) with ``n_levers`` lever places, the paper's REINFORCE agents and MetaGrad designer."""
    kwargs: dict[str, Any] = {"n_agents": n_agents, "min_at_lever": min_at_lever, "max_steps": max_steps,
                              "randomize": randomize, "n_levers": n_levers}
    return ContextualEscapeRoomTask(
        "escape_room_contextual", functools.partial(EscapeRoomEnv, **kwargs),
        optimum=optimal_welfare(n_agents, min_at_lever), env_kwargs=kwargs,
        make_batched=functools.partial(make_batched, "escape_room_contextual", **kwargs))
