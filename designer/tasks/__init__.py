"""Tasks: one module per game, each holding everything the designer knows about that game.

``make_task(name, **kwargs)`` builds a task by name. A game module registers its task factory with
:func:`designer.registry.register_task`; every module of this package is imported with it, so adding a game's
designer knowledge is one new module here (a subclass of :class:`designer.task.Task` where the game needs more
than the generic task). A game registered in :data:`incentive_envs.ENVS` without a module of its own (Harvest,
``matrix_game``) gets the generic :class:`Task` over its PettingZoo env.

==================== ==================================================================================
module               tasks
==================== ==================================================================================
``escape_room``      ``escape_room``: ER(N, M) with the paper's REINFORCE agents
``matrix``           ``ipd``, ``stag_hunt``, ``chicken``: one-shot or iterated matrix dilemmas
``cleanup``          ``cleanup``: image designer paying by action type, shared CNN actor-critic agents
``gather_trade_build`` ``gather_trade_build``: tax designers acting through the env's tax-rate interface
==================== ==================================================================================
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from designer.registry import TASKS, register_task
from designer.task import Output, SlotRule, Task, action_slots, agent_slots, social_welfare
from incentive_envs import ENVS, make_batched, make_parallel

__all__ = [
    "TASKS",
    "Output",
    "SlotRule",
    "Task",
    "action_slots",
    "agent_slots",
    "make_task",
    "register_task",
    "social_welfare",
    "task_names",
]


def _generic_games() -> tuple[str, ...]:
    return tuple(entry.name for entry in ENVS if entry.name not in TASKS)


def task_names() -> tuple[str, ...]:
    """Every name :func:`make_task` accepts: registered tasks, then the other registered games."""
    return (*TASKS, *_generic_games())


def make_task(name: str, **kwargs: Any) -> Task:
    """Build the task ``name``; unknown names raise ``KeyError`` listing the known ones."""
    if name in TASKS:
        return TASKS[name](**kwargs)
    if name in _generic_games():
        return Task(name, functools.partial(make_parallel, name, **kwargs), env_kwargs=kwargs,
                    make_batched=functools.partial(make_batched, name, **kwargs))
    raise KeyError(f"unknown task {name!r}; known tasks: {sorted(task_names())}")


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
