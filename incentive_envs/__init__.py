"""Incentive-design games as PettingZoo envs, registered with both PettingZoo and Gymnasium.

Importing this package registers every game three ways under the ``incentive_envs`` namespace:

- ``pettingzoo.make("parallel", "incentive_envs/<name>-v0")`` and ``pettingzoo.make("aec", ...)``;
- ``gymnasium.make("incentive_envs/<Name>-v0")``: the joint-action view (:class:`JointActionEnv`);
- ``gymnasium.make("incentive_envs/<Name>SingleAgent-v0")``: one learner among random agents
  (:class:`SingleAgentEnv`).

``make_batched(name, n_envs, **kwargs)`` builds B copies of a game stepped together with arrays
(:mod:`incentive_envs.vector`): the game's native batch when its module publishes ``batched_env``, else the
generic adapter over B single envs.

``gymnasium.make("incentive_envs:incentive_envs/<Name>-v0")`` works without importing this package first.

:data:`VARIANTS` are registered the same three ways: a game of :data:`ENVS` with other defaults (the contextual
Escape Room, ``escape_room_contextual``), built by the module's ``<prefix>parallel_env`` / ``<prefix>env`` /
``<prefix>batched_env``. They are kept out of ``ENVS``, which the cross-game suites iterate, so that each variant
is tested by its own suite.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from typing import Any, Final

import gymnasium
import pettingzoo
from gymnasium.error import RegistrationError

from incentive_envs.escape_room import optimal_welfare
from incentive_envs.gym_adapter import JointActionEnv, SingleAgentEnv
from incentive_envs.vector import BatchedParallelEnv, batch_of

__all__ = [
    "ENVS",
    "VARIANTS",
    "EnvEntry",
    "JointActionEnv",
    "SingleAgentEnv",
    "make_batched",
    "make_parallel",
    "optimal_welfare",
]


class EnvEntry:
    """One registered game: its PettingZoo name, its Gymnasium CamelCase name and the implementing module.

    ``prefix`` names the module's factories: ``<prefix>parallel_env``, ``<prefix>env`` and ``<prefix>batched_env``.
    """

    def __init__(self, name: str, gym_name: str, module: str, prefix: str = "") -> None:
        self.name, self.gym_name, self.module, self.prefix = name, gym_name, module, prefix

    @property
    def pz_id(self) -> str:
        return f"incentive_envs/{self.name}-v0"

    def load(self) -> Any:
        return importlib.import_module(self.module)


# One line per game version. The module must define parallel_env, raw_env and env (and may define batched_env).
ENVS: Final[tuple[EnvEntry, ...]] = (
    EnvEntry("escape_room", "EscapeRoom", "incentive_envs.escape_room"),
    EnvEntry("ipd", "IPD", "incentive_envs.ipd"),
    EnvEntry("stag_hunt", "StagHunt", "incentive_envs.stag_hunt"),
    EnvEntry("chicken", "Chicken", "incentive_envs.chicken"),
    EnvEntry("matrix_game", "MatrixGame", "incentive_envs.matrix_game"),
    EnvEntry("gather_trade_build", "GatherTradeBuild", "incentive_envs.gather_trade_build"),
    EnvEntry("cleanup", "Cleanup", "incentive_envs.cleanup"),
    EnvEntry("harvest", "Harvest", "incentive_envs.harvest"),
)
VARIANTS: Final[tuple[EnvEntry, ...]] = (
    EnvEntry("escape_room_contextual", "EscapeRoomContextual", "incentive_envs.escape_room", prefix="contextual_"),
)


def _entry_points(module: str, attr: str) -> Any:
    """Lazily import ``module`` so that registering does not import every game."""

    def make(**kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(**kwargs)

    return make


def _make_joint(module: str, attr: str, **kwargs: Any) -> JointActionEnv:
    return JointActionEnv(getattr(importlib.import_module(module), attr), **kwargs)


def _make_single(module: str, attr: str, **kwargs: Any) -> SingleAgentEnv:
    return SingleAgentEnv(getattr(importlib.import_module(module), attr), **kwargs)


def make_parallel(name: str, **kwargs: Any) -> Any:
    """``pettingzoo.make("parallel", "incentive_envs/<name>-v0", **kwargs)`` without typing the namespace."""
    env_id = name if "/" in name else f"incentive_envs/{name}"
    if "-v" not in env_id:
        env_id += "-v0"
    return pettingzoo.make("parallel", env_id, **kwargs)


def make_batched(name: str, n_envs: int, **kwargs: Any) -> BatchedParallelEnv:
    """``n_envs`` copies of the registered game ``name`` (``"ipd"`` or ``"incentive_envs/ipd-v0"``) stepped
    together with arrays, built with ``parallel_env``'s ``kwargs``: the module's native ``batched_env`` when it
    has one, else :func:`incentive_envs.vector.batch_of` over its ``parallel_env``.

    Raises:
        ValueError: ``name`` is not a registered game (the registered ones are listed).
        TypeError: the game cannot be batched (the reason is given).
    """
    short = name.removeprefix("incentive_envs/").removesuffix("-v0")
    entry = next((e for e in (*ENVS, *VARIANTS) if e.name == short), None)
    if entry is None:
        raise ValueError(f"unknown game {name!r}; registered games: {[e.name for e in (*ENVS, *VARIANTS)]}")
    module = entry.load()
    if hasattr(module, f"{entry.prefix}batched_env"):
        return getattr(module, f"{entry.prefix}batched_env")(n_envs, **kwargs)
    return batch_of(functools.partial(getattr(module, f"{entry.prefix}parallel_env"), **kwargs), n_envs)


def _register_all() -> None:
    for entry in (*ENVS, *VARIANTS):
        if entry.pz_id in pettingzoo.env_registry.registration.parallel_registry:
            continue  # idempotent on re-import
        parallel = f"{entry.prefix}parallel_env"
        pettingzoo.register("parallel", entry.pz_id, entry_point=_entry_points(entry.module, parallel))
        pettingzoo.register("aec", entry.pz_id, entry_point=_entry_points(entry.module, f"{entry.prefix}env"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                gymnasium.register(
                    id=f"incentive_envs/{entry.gym_name}-v0",
                    entry_point=functools.partial(_make_joint, entry.module, parallel),
                    disable_env_checker=False,
                )
                gymnasium.register(
                    id=f"incentive_envs/{entry.gym_name}SingleAgent-v0",
                    entry_point=functools.partial(_make_single, entry.module, parallel),
                )
            except RegistrationError:  # pragma: no cover - re-import in an odd order
                pass


_register_all()
