"""The registries: designer algorithms (configs, the CLI, sweeps and tasks all read it) and tasks.

Each algorithm module in :mod:`designer.algorithms` registers its designer class under one or more names with
:func:`register_algorithm`; :class:`~designer.config.DesignerConfig` validates ``algorithm`` against it, the CLI
and sweeps offer its names, and :func:`make_designer` builds from it. A task may implement a registered
algorithm its own way (the Gather-Trade-Build tax designers act through a tax-rate control point) through
``Task.designers``; it cannot invent a name the registry does not know.

To add an algorithm: write one module in ``designer/algorithms/`` whose designer class is decorated with
``@register_algorithm("name", summary="...")`` (and its tests). To add a game's designer knowledge: one module in
``designer/tasks/`` with a factory decorated ``@register_task("name")``. Both packages import every module in
them. A game of your own, anywhere: ``register_task("name", factory)`` in your module (see the README's "Your own
game").
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

    from designer.algorithms.base import Designer
    from designer.config import DesignerConfig
    from designer.task import Task

__all__ = [
    "TASKS",
    "TASK_MODULES",
    "AlgorithmEntry",
    "algorithm_entry",
    "algorithm_names",
    "make_designer",
    "register_algorithm",
    "register_task",
    "task_reference",
]

DesignerFactory = Callable[["Task", "DesignerConfig", "torch.Generator"], "Designer"]
"""``(task, config, generator) -> designer``: how a designer is built."""


@dataclass(frozen=True)
class AlgorithmEntry:
    """One registered algorithm.

    Attributes:
        name: the name configs, the CLI and sweeps use.
        build: builds the designer (usually the designer class itself).
        summary: one line for ``--help`` and the README.
        defaults: DesignerConfig overrides the algorithm needs unless the user sets them (AMD pays per agent).
        required: DesignerConfig fields the user must set (``fixed`` needs ``fixed_values``).
    """

    name: str
    build: DesignerFactory
    summary: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()


_REGISTRY: dict[str, AlgorithmEntry] = {}
_T = TypeVar("_T")


def register_algorithm(
    *names: str, summary: str, defaults: Mapping[str, Any] | None = None, required: tuple[str, ...] = ()
) -> Callable[[_T], _T]:
    """Class decorator: register a designer class (called as ``cls(task, config, generator)``) under ``names``."""
    if not names:
        raise ValueError("register_algorithm needs at least one name")

    def decorate(cls: _T) -> _T:
        for name in names:
            if name in _REGISTRY and _REGISTRY[name].build is not cls:
                raise ValueError(f"algorithm {name!r} is already registered by {_REGISTRY[name].build!r}")
            _REGISTRY[name] = AlgorithmEntry(name, cls, summary, dict(defaults or {}), tuple(required))  # type: ignore[arg-type]
        return cls

    return decorate


def algorithm_names() -> tuple[str, ...]:
    """Every registered algorithm name, in registration order."""
    return tuple(_REGISTRY)


def algorithm_entry(name: str) -> AlgorithmEntry:
    """The entry of ``name``; ``ValueError`` listing the registered names otherwise."""
    if name not in _REGISTRY:
        raise ValueError(f"algorithm must be one of {algorithm_names()}, got {name!r}")
    return _REGISTRY[name]


def make_designer(task: Task, config: DesignerConfig, generator: torch.Generator) -> Designer:
    """Build the designer ``config.algorithm`` names: the task's own implementation of it when the task has
    one (``Task.designers``), else the registered one."""
    entry = algorithm_entry(config.algorithm)
    own = task.designers
    if own is None:
        return entry.build(task, config, generator)
    if config.algorithm not in own:
        raise ValueError(f"algorithm {config.algorithm!r} is not a designer of task {task.name!r}; it has "
                         f"{sorted(own)}")
    return own[config.algorithm](task, config, generator)


TaskFactory = Callable[..., Any]
"""``(**kwargs) -> Task``, or ``(**kwargs) -> ParallelEnv`` for a plain game (:func:`designer.tasks.make_task` then
wraps it in the generic task with the ``small_game`` preset of :mod:`designer.presets`)."""

TASKS: dict[str, TaskFactory] = {}
"""Registered task factories by name (see :func:`designer.tasks.make_task` for games without one)."""

TASK_MODULES: dict[str, str] = {}
"""The module that registered each task: a dotted module name, or a ``.py`` file path for a script run as
``__main__``. Checkpoints and sweep specs name a task registered outside the library as ``"<module>:<name>"``
(:func:`task_reference`), so a resumed run, a sweep trial or a Ray worker imports that module first."""

_LIBRARY_PREFIX = "designer."
_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
PATH_MODULE_PREFIX = "_designer_task_file_"
"""Module-name prefix of task files imported by path (:func:`designer.tasks.import_task_module`)."""


def _caller_module(depth: int) -> str:
    """The importable reference of the module ``depth`` frames up: its dotted name, or its file for a script."""
    module_globals = sys._getframe(depth + 1).f_globals
    name = str(module_globals.get("__name__", ""))
    if name == "__main__" or name.startswith(PATH_MODULE_PREFIX):
        file = module_globals.get("__file__")
        if file:
            return str(Path(file).resolve())
    return name


def register_task(name: str, factory: TaskFactory | None = None, *, module: str | None = None) -> Any:
    """Register a game as the designer task ``name``: the public way to train MetaGrad on your own game.

    ``factory(**task_kwargs)`` returns a :class:`~designer.task.Task` (your own hyperparameters, optimum,
    designer inputs), or just the PettingZoo ``ParallelEnv``: :func:`designer.tasks.make_task` then builds the
    generic task over it with the ``small_game`` preset. Used as ``register_task("name", factory)`` or as the
    decorator ``@register_task("name")``. Every task is validated when it is built
    (:func:`designer.task.check_game`: spaces, seeding, ``render_mode``, ``state()`` against ``state_space``,
    agent sets), with errors that say what to add.

    The registering module is recorded (``module``, default: the caller's; a script's file path when it runs as
    ``__main__``): checkpoints and sweeps then name the task ``"<module>:<name>"`` and import that module when
    they load it, in a resumed run, ``load_incentive`` or on a Ray worker.

    Raises:
        ValueError: ``name`` is not a plain name (letters, digits, ``_ . -``; no ``:``), or another module
            already registered a different factory under it.
    """
    if not isinstance(name, str) or not _TASK_NAME.match(name):
        raise ValueError(f"task name must be letters, digits, '_', '.' or '-' (starting with a letter; no ':'), "
                         f"got {name!r}")
    owner = module if module is not None else _caller_module(1)

    def decorate(fn: TaskFactory) -> TaskFactory:
        if not callable(fn):
            raise TypeError(f"register_task({name!r}, factory): factory must be callable, got {fn!r}")
        if name in TASKS and TASKS[name] is not fn and TASK_MODULES.get(name) != owner:
            raise ValueError(f"task {name!r} is already registered by {TASKS[name]!r} (module "
                             f"{TASK_MODULES.get(name)!r}); pick another name")
        TASKS[name] = fn
        TASK_MODULES[name] = owner
        return fn

    return decorate if factory is None else decorate(factory)


def task_reference(name: str) -> str:
    """How a checkpoint or sweep spec names the task ``name``: the bare name for the library's own tasks,
    ``"<module>:<name>"`` for a task registered elsewhere (so loading it imports that module first)."""
    if ":" in name or name not in TASKS:
        return name
    module = TASK_MODULES.get(name, "")
    if not module or module.startswith(_LIBRARY_PREFIX):
        return name
    return f"{module}:{name}"
