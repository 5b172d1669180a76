"""Escape Room ER(N, M) for the designer: the paper's REINFORCE agents and MetaGrad designer (method.md §2.3, §5.1).

The generic :class:`~designer.task.Task` already is the paper's designer input (state one-hot plus joint
action one-hot, vectorized for the batched rollout by the generic task too); this module adds the env's known
optimum, the paper's defaults (those of the configs) and the env's native batch.
"""

from __future__ import annotations

import functools
from typing import Any

from designer.registry import register_task
from designer.task import Task
from incentive_envs import make_batched
from incentive_envs.escape_room import EscapeRoomEnv, optimal_welfare


@register_task("escape_room")
def escape_room_task(n_agents: int = 5, min_at_lever: int = 2, max_steps: int = 5, randomize: bool = False) -> Task:
    """ER(N, M) with the paper's REINFORCE agents and MetaGrad designer."""
    kwargs: dict[str, Any] = {"n_agents": n_agents, "min_at_lever": min_at_lever, "max_steps": max_steps,
                              "randomize": randomize}
    return Task("escape_room", functools.partial(EscapeRoomEnv, **kwargs),
                optimum=optimal_welfare(n_agents, min_at_lever), env_kwargs=kwargs,
                make_batched=functools.partial(make_batched, "escape_room", **kwargs))
