"""What every black-box principal shares: the round record it learns from, the interface, and parameter grids.

A principal chooses the incentive parameters of the next round of a designer environment
(:class:`~designer.principal.env.DesignerEnv`) from the rounds it has seen: :meth:`Principal.propose` gives the
parameters, :meth:`Principal.observe` hands back what they produced (a :class:`Round`). :func:`run_principal
<designer.principal.run.run_principal>` drives one against an env.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

__all__ = ["Principal", "Round", "box_of", "grid_arms"]


@dataclass(frozen=True)
class Round:
    """One round of a designer environment, as a principal sees it.

    Attributes:
        step: 0-based round index within the run.
        parameters: the incentive parameters set for the round.
        reward: the principal's objective over the round (the env's reward).
        outcome: the round's outcome (:meth:`designer.principal.env.Outcome.summary`; empty for other envs).
        agent_episodes: agent episodes the round consumed.
        total_agent_episodes: agent episodes consumed so far in the run, this round included.
    """

    step: int
    parameters: tuple[float, ...]
    reward: float
    outcome: dict[str, Any] = field(default_factory=dict)
    agent_episodes: int = 0
    total_agent_episodes: int = 0

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of the round."""
        return {"step": self.step, "parameters": [round(p, 6) for p in self.parameters],
                "reward": round(self.reward, 6), "outcome": self.outcome, "agent_episodes": self.agent_episodes,
                "total_agent_episodes": self.total_agent_episodes}


def box_of(space: spaces.Space[Any]) -> spaces.Box:
    """``space`` as a bounded 1-d Box (the parameter spaces principals search); ``TypeError`` otherwise."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 1 or not space.is_bounded("both"):
        raise TypeError(f"a principal needs a bounded 1-d Box action space, got {space}")
    return space


def grid_arms(space: spaces.Box, levels: int) -> NDArray[np.float64]:
    """``[levels**n, n]``: every point of the grid with ``levels`` evenly spaced values per dimension of the
    bounded Box ``space`` (bounds included), in lexicographic order (the last dimension varies fastest).

    Raises:
        ValueError: ``levels < 2``, or the grid would have more than 100 000 arms.
    """
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    box = box_of(space)
    n = box.shape[0]
    if levels**n > 100_000:
        raise ValueError(f"a grid of {levels} levels over {n} parameters has {levels**n} arms; give fewer levels "
                         "or the arms themselves")
    axes = [np.linspace(float(lo), float(hi), levels) for lo, hi in zip(box.low, box.high)]
    return np.array(list(itertools.product(*axes)), dtype=np.float64).reshape(-1, n)


class Principal:
    """Base class of black-box principals: choose each round's parameters from the rounds seen so far.

    Subclasses implement :meth:`propose` and :meth:`observe`, and may extend :meth:`reset` (call ``super``).
    ``name`` labels the principal in logs and tables.
    """

    name = "principal"

    def __init__(self) -> None:
        self.space: spaces.Box | None = None
        self.rng = np.random.default_rng()
        self.history: list[Round] = []

    def reset(self, space: spaces.Space[Any], seed: int | None = None) -> None:
        """Start a run over the parameter space ``space`` (a bounded 1-d Box); ``seed`` seeds ``self.rng``."""
        self.space = box_of(space)
        self.rng = np.random.default_rng(seed)
        self.history = []

    def propose(self) -> NDArray[np.float64]:
        """The parameters of the next round (inside :attr:`space`)."""
        raise NotImplementedError

    def observe(self, result: Round) -> None:
        """Learn from the round just played (the base class keeps it in :attr:`history`)."""
        self.history.append(result)

    def _space(self) -> spaces.Box:
        if self.space is None:
            raise RuntimeError(f"{type(self).__name__}: call reset(space, seed) before propose()")
        return self.space
