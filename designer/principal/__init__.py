"""Black-box principals and the designer's problem as a Gymnasium environment (issue #18).

- :class:`DesignerEnv` (:mod:`designer.principal.env`): one step = the principal sets the incentive parameters,
  the agents learn under them for a round of episodes, and the outcome comes back. Importing this package
  registers ``incentive_design/Designer<Game>-v0`` with ``gymnasium.make`` for every shipped game (e.g.
  ``DesignerEscapeRoom-v0``, ``DesignerEscapeRoomContextual-v0``, ``DesignerCleanup-v0``); its keyword arguments
  are :class:`DesignerEnvConfig` fields.
- Principals (:class:`Principal`: ``propose`` the next round's parameters, ``observe`` its result): the grid
  bandits :class:`EpsilonGreedy`, :class:`UCB` and :class:`ThompsonSampling`; Bayesian optimisation with
  Optuna's samplers (:class:`OptunaPrincipal`, the ``principals`` extra); :class:`CallablePrincipal`, any
  function from a JSON summary of past rounds to parameters (the hook for an LLM policymaker).
- :func:`run_principal`: the loop, within an agent-episode budget, logging each round to CSV.

SB3 needs no principal class: it trains on :class:`DesignerEnv` directly (see the README's "The designer as an
environment").
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium

from designer.principal.bandits import UCB, BanditPrincipal, EpsilonGreedy, ThompsonSampling
from designer.principal.base import Principal, Round, grid_arms
from designer.principal.bayes import OptunaPrincipal
from designer.principal.env import OBJECTIVES, DesignerEnv, DesignerEnvConfig, Outcome, parameter_bounds
from designer.principal.function import CallablePrincipal, history_json
from designer.principal.run import run_principal
from incentive_envs import ENVS, VARIANTS

__all__ = [
    "NAMESPACE",
    "OBJECTIVES",
    "UCB",
    "BanditPrincipal",
    "CallablePrincipal",
    "DesignerEnv",
    "DesignerEnvConfig",
    "EpsilonGreedy",
    "OptunaPrincipal",
    "Outcome",
    "Principal",
    "Round",
    "ThompsonSampling",
    "designer_env_id",
    "grid_arms",
    "history_json",
    "parameter_bounds",
    "run_principal",
]

NAMESPACE = "incentive_design"


def designer_env_id(gym_name: str) -> str:
    """The Gymnasium id of the designer env of the game whose Gymnasium name is ``gym_name``."""
    return f"{NAMESPACE}/Designer{gym_name}-v0"


def _make(task: str, **kwargs: Any) -> DesignerEnv:
    render_mode = kwargs.pop("render_mode", None)
    return DesignerEnv(DesignerEnvConfig(task=task, **kwargs), render_mode=render_mode)


def _register_all() -> None:
    for entry in (*ENVS, *VARIANTS):
        env_id = designer_env_id(entry.gym_name)
        if env_id not in gymnasium.registry:  # idempotent on re-import
            gymnasium.register(id=env_id, entry_point=functools.partial(_make, entry.name))


_register_all()
