"""Incentive-design games as PettingZoo envs, registered with both PettingZoo and Gymnasium.

Importing this package registers every game three ways under the ``incentive_envs`` namespace:

- ``pettingzoo.make("parallel", "incentive_envs/<name>-v0")`` and ``pettingzoo.make("aec", ...)``;
- ``gymnasium.make("incentive_envs/<Name>-v0")``: the joint-action view (:class:`JointActionEnv`);
- ``gymnasium.make("incentive_envs/<Name>SingleAgent-v0")``: one learner among random agents
  (:class:`SingleAgentEnv`).

``gymnasium.make("incentive_envs:incentive_envs/<Name>-v0")`` works without importing this package first.
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

__all__ = ["ENVS", "EnvEntry", "JointActionEnv", "SingleAgentEnv", "make_parallel", "optimal_welfare"]


class EnvEntry:
    """One registered game: its PettingZoo name, its Gymnasium CamelCase name and the implementing module."""

    def __init__(self, name: str, gym_name: str, module: str) -> None:
        self.name, self.gym_name, self.module = name, gym_name, module

    @property
    def pz_id(self) -> str:
        return f"incentive_envs/{self.name}-v0"

    def load(self) -> Any:
        return importlib.import_module(self.module)


# One line per game version. The module must define parallel_env, raw_env and env.
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


def _entry_points(module: str, attr: str) -> Any:
    """Lazily import ``module`` so that registering does not import every game."""

    def make(**kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(**kwargs)

    return make


def _make_joint(module: str, **kwargs: Any) -> JointActionEnv:
    return JointActionEnv(importlib.import_module(module).parallel_env, **kwargs)


def _make_single(module: str, **kwargs: Any) -> SingleAgentEnv:
    return SingleAgentEnv(importlib.import_module(module).parallel_env, **kwargs)


def make_parallel(name: str, **kwargs: Any) -> Any:
    """``pettingzoo.make("parallel", "incentive_envs/<name>-v0", **kwargs)`` without typing the namespace."""
    env_id = name if "/" in name else f"incentive_envs/{name}"
    if "-v" not in env_id:
        env_id += "-v0"
    return pettingzoo.make("parallel", env_id, **kwargs)


def _register_all() -> None:
    for entry in ENVS:
        if entry.pz_id in pettingzoo.env_registry.registration.parallel_registry:
            continue  # idempotent on re-import
        pettingzoo.register("parallel", entry.pz_id, entry_point=_entry_points(entry.module, "parallel_env"))
        pettingzoo.register("aec", entry.pz_id, entry_point=_entry_points(entry.module, "env"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                gymnasium.register(
                    id=f"incentive_envs/{entry.gym_name}-v0",
                    entry_point=functools.partial(_make_joint, entry.module),
                    disable_env_checker=False,
                )
                gymnasium.register(
                    id=f"incentive_envs/{entry.gym_name}SingleAgent-v0",
                    entry_point=functools.partial(_make_single, entry.module),
                )
            except RegistrationError:  # pragma: no cover - re-import in an odd order
                pass


_register_all()
