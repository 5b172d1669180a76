"""Iterated prisoner's dilemma (IPD): mutual cooperation beats mutual defection, yet defection dominates.

| Property      | Value                                                                      |
|---------------|----------------------------------------------------------------------------|
| IDs           | ``incentive_envs/ipd-v0`` (PettingZoo), ``incentive_envs/IPD-v0``          |
|               | and ``incentive_envs/IPDSingleAgent-v0`` (Gymnasium views)                 |
| Agents        | ``player_0``, ``player_1``                                                 |
| Actions       | ``Discrete(2)``: 0 cooperate, 1 defect                                     |
| Observations  | ``Box(0, 1, (6,), float32)``: one-hot own last action, then the other's;   |
|               | slot 2 of each block means "no previous round"                             |
| State         | ``Box(0, 1, (6,), float32)``: player 0's last action block, then player 1's |
| Rewards       | the payoff table below                                                     |
| Episode end   | truncated after ``max_cycles`` rounds; never terminated                    |

Payoffs ``(R, S, T, P) = (3, 0, 5, 1)``, Axelrod's tournament values: T > R > P > S, so defecting is
dominant in the stage game, and 2R > T + S, so mutual cooperation beats taking turns at exploiting each
other. (LOLA's IPD, Foerster et al. 2018, uses ``(-1, -3, 0, -2)``: the same ordering with smaller gaps.)
Row player 0, column player 1, entries ``(r0, r1)``:

|             | cooperate   | defect      |
|-------------|-------------|-------------|
| cooperate   | 3, 3        | 0, 5        |
| defect      | 5, 0        | 1, 1        |

This is :class:`incentive_envs.matrix_game.MatrixGameEnv` with the table fixed to ``GAME``; the boundary
semantics and observation encoding are documented there. Use ``matrix_game`` with
``MatrixGame.symmetric_2x2(...)`` for other values.

### Arguments
``pettingzoo.make("parallel", "incentive_envs/ipd-v0", max_cycles=100, render_mode=None)``

- ``max_cycles``: number of rounds per episode.
- ``render_mode``: ``"ansi"`` (returns a string) or ``"human"`` (prints it).

### Version History
* v0: initial release.
"""

from __future__ import annotations

from typing import Any, Final

from pettingzoo import AECEnv

from incentive_envs._aec import aec_from_parallel, checked_aec
from incentive_envs.matrix_game import DEFAULT_MAX_CYCLES, MatrixGame, MatrixGameEnv
from incentive_envs.matrix_vector import BatchedMatrixGame

__all__ = ["GAME", "PAYOFFS", "batched_env", "env", "parallel_env", "raw_env"]

PAYOFFS: Final = (3.0, 0.0, 5.0, 1.0)  # (R, S, T, P)
GAME: Final = MatrixGame.symmetric_2x2(*PAYOFFS, action_names=("cooperate", "defect"), name="ipd")


def parallel_env(max_cycles: int = DEFAULT_MAX_CYCLES, render_mode: str | None = None) -> MatrixGameEnv:
    """The iterated prisoner's dilemma as a PettingZoo ``ParallelEnv``."""
    return MatrixGameEnv(GAME, max_cycles=max_cycles, render_mode=render_mode)


def batched_env(n_envs: int, **kwargs: Any) -> BatchedMatrixGame:
    """``n_envs`` iterated prisoner's dilemmas stepped together with arrays (same arguments as :func:`parallel_env`)."""
    return BatchedMatrixGame(parallel_env(**kwargs), n_envs)


def raw_env(**kwargs: Any) -> AECEnv:
    """The iterated prisoner's dilemma as an AEC env (converted from the parallel implementation)."""
    return aec_from_parallel(parallel_env(**kwargs))


def env(**kwargs: Any) -> AECEnv:
    """The iterated prisoner's dilemma as an AEC env with order enforcement and action checks."""
    return checked_aec(raw_env(**kwargs))
