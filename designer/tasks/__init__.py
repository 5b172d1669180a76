"""Tasks: one module per game, each holding everything the designer knows about that game.

``make_task(name, **kwargs)`` builds a task by name. A game module registers its task factory with
:func:`designer.registry.register_task`; every module of this package is imported with it, so adding a game's
designer knowledge is one new module here (a subclass of :class:`designer.task.Task` where the game needs more
than the generic task). A game registered in :data:`incentive_envs.ENVS` without a module of its own (Harvest,
``matrix_game``) gets the generic :class:`Task` over its PettingZoo env. A game of your own is registered from
your own module with ``register_task(name, factory)``, or named ``"package.module:factory"`` (see
:func:`make_task` and the README's "Your own game").

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
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from pettingzoo import ParallelEnv

from designer.registry import PATH_MODULE_PREFIX, TASKS, register_task, task_reference
from designer.task import Output, SlotRule, Task, action_slots, agent_slots, check_game, social_welfare
from incentive_envs import ENVS, make_batched, make_parallel

__all__ = [
    "TASKS",
    "Output",
    "SlotRule",
    "Task",
    "action_slots",
    "agent_slots",
    "check_game",
    "import_task_module",
    "make_task",
    "register_task",
    "social_welfare",
    "task_names",
    "task_reference",
]


def _generic_games() -> tuple[str, ...]:
    return tuple(entry.name for entry in ENVS if entry.name not in TASKS)


def task_names() -> tuple[str, ...]:
    """Every name :func:`make_task` accepts without a module: registered tasks, then the other registered games."""
    return (*TASKS, *_generic_games())


def import_task_module(module: str) -> ModuleType:
    """Import the module of a task reference: a dotted module name, or the path of a ``.py`` file.

    Raises:
        ValueError: the module cannot be imported (the message says why and how to fix it).
    """
    if module.endswith(".py"):
        path = Path(module).resolve()
        if not path.is_file():
            raise ValueError(f"task module file {path} does not exist")
        name = f"{PATH_MODULE_PREFIX}{path.stem}_{abs(hash(str(path))):x}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot import task module file {path}")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[name] = loaded
        spec.loader.exec_module(loaded)
        return loaded
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"cannot import task module {module!r} ({err}); make it importable (install your package, "
                         "or add its folder to PYTHONPATH)") from err


def _resolve(name: str) -> tuple[str, Any]:
    """``(task name, factory)`` of a registered name or a ``"module:attribute"`` reference (module imported)."""
    if ":" not in name:
        if name in TASKS:
            return name, TASKS[name]
        raise KeyError(f"unknown task {name!r}; known tasks: {sorted(task_names())} (a task of your own: "
                       "register_task(name, factory) in your module, or name it as 'package.module:factory')")
    module, _, attr = name.rpartition(":")
    loaded = import_task_module(module)
    if attr in TASKS:  # the module registered it (register_task), or it is the library's own
        return attr, TASKS[attr]
    factory = getattr(loaded, attr, None)
    if not callable(factory):
        raise KeyError(f"task {name!r}: module {module!r} neither registers a task {attr!r} nor defines a "
                       f"callable {attr!r} (a factory returning a Task or a PettingZoo ParallelEnv)")
    return name, factory


def make_task(name: str, **kwargs: Any) -> Task:
    """Build the task ``name`` with the factory's keyword arguments.

    ``name`` is a registered task (:func:`~designer.registry.register_task`), a game of :data:`incentive_envs.ENVS`
    (the generic task), or ``"package.module:attribute"`` / ``"path/to/file.py:attribute"``: the module is
    imported, then ``attribute`` is the task it registered or its factory. A factory returning a PettingZoo
    ``ParallelEnv`` instead of a :class:`Task` gets the generic task with the ``small_game`` preset
    (:func:`designer.presets.game_task`). The game is validated (:func:`~designer.task.check_game`).

    Raises:
        KeyError: an unknown name (the known ones are listed).
        ValueError: the module of a reference cannot be imported, or the kwargs do not fit the factory.
        TypeError: the factory returned neither a Task nor a ParallelEnv, or the game does not fit a task.
    """
    if ":" not in name and name not in TASKS and name in _generic_games():
        return Task(name, functools.partial(make_parallel, name, **kwargs), env_kwargs=kwargs,
                    make_batched=functools.partial(make_batched, name, **kwargs))
    task_name, factory = _resolve(name)
    try:
        built = factory(**kwargs)
    except TypeError as err:
        if "argument" not in str(err):
            raise
        raise ValueError(f"task {name!r} does not take the task kwargs {sorted(kwargs)}: {err}") from err
    if isinstance(built, Task):
        return built
    if isinstance(built, ParallelEnv):
        from designer.presets import game_task

        built.close()
        return game_task(task_name, functools.partial(factory, **kwargs), env_kwargs=kwargs)
    raise TypeError(f"task factory {name!r} returned {type(built).__name__}; it must return a designer Task or a "
                    "PettingZoo ParallelEnv")


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
