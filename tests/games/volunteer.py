"""A volunteer's dilemma with a shared cost: one volunteer is enough to produce a good everyone enjoys.

Three players; actions ``0 volunteer``, ``1 ignore``. If at least one player volunteers, every player gets
``B = 3``; the volunteers split the cost ``c = 4`` equally. Volunteering never pays for oneself (alone:
``3 - 4 < 0``; with others it only adds a share of the cost), so selfish play is nobody volunteering
(welfare 0), while any volunteering gives welfare ``3 * 3 - 4 = 5``. A designer paying volunteers more than
``4 / 3`` makes volunteering dominant.
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.games._stage import StageGameEnv

BENEFIT, COST = 3.0, 4.0


def payoff(joint: Sequence[int]) -> list[float]:
    """Benefit to all when someone volunteers, cost split among the volunteers."""
    volunteers = sum(1 for a in joint if a == 0)
    if volunteers == 0:
        return [0.0] * len(joint)
    return [BENEFIT - (COST / volunteers if a == 0 else 0.0) for a in joint]


def parallel_env(rounds: int = 1, n_players: int = 3, render_mode: str | None = None) -> StageGameEnv:
    """The volunteer's dilemma as a PettingZoo ``ParallelEnv``."""
    return StageGameEnv(payoff, n_players, ("volunteer", "ignore"), rounds=rounds, render_mode=render_mode)
