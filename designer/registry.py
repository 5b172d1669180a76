"""The registries: designer algorithms (configs, the CLI, sweeps and tasks all read it) and tasks.

Each algorithm module in :mod:`designer.algorithms` registers its designer class under one or more names with
:func:`register_algorithm`; :class:`~designer.config.DesignerConfig` validates ``algorithm`` against it, the CLI
and sweeps offer its names, and :func:`make_designer` builds from it. A task may implement a registered
algorithm its own way (the Gather-Trade-Build tax designers act through a tax-rate control point) through
``Task.designers``; it cannot invent a name the registry does not know.

To add an algorithm: write one module in ``designer/algorithms/`` whose designer class is decorated with
``@register_algorithm("name", summary="...")`` (and its tests). To add a game's designer knowledge: one module in
``designer/tasks/`` with a factory decorated ``@register_task("name")``. Both packages import every module in
them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

    from designer.algorithms.base import Designer
    from designer.config import DesignerConfig
    from designer.task import Task

__all__ = [
    "TASKS",
    "AlgorithmEntry",
    "algorithm_entry",
    "algorithm_names",
    "make_designer",
    "register_algorithm",
    "register_task",
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


TaskFactory = Callable[..., "Task"]
"""``(**kwargs) -> Task``: builds a game's task from its keyword arguments."""

TASKS: dict[str, TaskFactory] = {}
"""Registered task factories by name (see :func:`designer.tasks.make_task` for games without one)."""


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator: register ``factory(**kwargs) -> Task`` as the task ``name``."""

    def decorate(factory: TaskFactory) -> TaskFactory:
        if name in TASKS and TASKS[name] is not factory:
            raise ValueError(f"task {name!r} is already registered by {TASKS[name]!r}")
        TASKS[name] = factory
        return factory

    return decorate
