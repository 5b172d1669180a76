"""Hawk-dove with a sharing bonus: two doves share the resource and gain from it, hawks fight over it.

Resource value ``V = 4``, fight cost ``C = 6`` (so ``C > V``: the classic hawk-dove), and two doves get
``V / 2 + 1`` each. Actions ``0 dove``, ``1 hawk``. Row player 0, column player 1:

|      | dove  | hawk   |
|------|-------|--------|
| dove | 3, 3  | 0, 4   |
| hawk | 4, 0  | -1, -1 |

Selfish play ends in one hawk and one dove (welfare 4) or the mixed equilibrium (hawk half the time,
expected welfare 3); both doves is the optimum (welfare 6). The designer must make dove pay more than hawk
against a dove (more than 1).
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.games._stage import StageGameEnv

TABLE = {(0, 0): (3.0, 3.0), (0, 1): (0.0, 4.0), (1, 0): (4.0, 0.0), (1, 1): (-1.0, -1.0)}


def payoff(joint: Sequence[int]) -> tuple[float, float]:
    """The table above."""
    return TABLE[(joint[0], joint[1])]


def parallel_env(rounds: int = 1, render_mode: str | None = None) -> StageGameEnv:
    """Hawk-dove as a PettingZoo ``ParallelEnv``."""
    return StageGameEnv(payoff, 2, ("dove", "hawk"), rounds=rounds, render_mode=render_mode)
