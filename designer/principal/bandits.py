"""Bandit principals over a discretised parameter grid: epsilon-greedy, UCB1 and Gaussian Thompson sampling.

Each arm is one parameter vector: the points of :func:`~designer.principal.base.grid_arms` (``levels`` values
per parameter), or arms given explicitly. The round's reward is the arm's payoff. The agents keep learning
between rounds, so payoffs drift; the bandits treat them as stationary, as the black-box baselines of the
incentive-design literature do. Rules, with ``n_a`` the pulls of arm ``a``, ``mean_a`` its mean reward and ``t``
the rounds so far; ties go to the lowest arm index:

- :class:`EpsilonGreedy`: every arm once (in order), then with probability ``epsilon`` a uniform random arm,
  else the best mean.
- :class:`UCB`: every arm once (in order), then ``argmax mean_a + c * sqrt(2 ln t / n_a)`` (UCB1; ``c`` in
  reward units).
- :class:`ThompsonSampling`: a Gaussian posterior per arm (prior ``N(prior_mean, prior_std^2)``, known reward
  noise ``noise_std``): precision ``1/prior_std^2 + n_a/noise_std^2``, mean ``(prior_mean/prior_std^2 +
  sum_a/noise_std^2) / precision``; one draw per arm, the largest wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from designer.config import check_fraction, check_positive
from designer.principal.base import Principal, Round, grid_arms

__all__ = ["UCB", "BanditPrincipal", "EpsilonGreedy", "ThompsonSampling"]


class BanditPrincipal(Principal):
    """Base of the grid bandits: keeps pull counts and reward sums per arm.

    Args:
        levels: grid values per parameter (ignored when ``arms`` is given).
        arms: the arms themselves (``[K, n]``), each inside the parameter space.
    """

    def __init__(self, levels: int = 3, arms: Sequence[Sequence[float]] | None = None) -> None:
        super().__init__()
        self.levels = levels
        self._given = None if arms is None else np.asarray(arms, dtype=np.float64)
        self.arms = np.zeros((0, 0))
        self.counts = np.zeros(0, dtype=np.int64)
        self.sums = np.zeros(0)
        self._last: int | None = None

    def reset(self, space: spaces.Space[Any], seed: int | None = None) -> None:
        super().reset(space, seed)
        box = self._space()
        if self._given is None:
            self.arms = grid_arms(box, self.levels)
        else:
            arms = self._given.reshape(len(self._given), -1)
            if arms.shape[1] != box.shape[0] or not all(box.contains(a.astype(box.dtype)) for a in arms):
                raise ValueError(f"arms must be {box.shape[0]}-vectors inside {box}, got {arms.tolist()}")
            self.arms = arms
        self.counts = np.zeros(len(self.arms), dtype=np.int64)
        self.sums = np.zeros(len(self.arms))
        self._last = None

    @property
    def means(self) -> NDArray[np.float64]:
        """Mean reward of each arm (0 for arms never pulled)."""
        return np.divide(self.sums, self.counts, out=np.zeros_like(self.sums), where=self.counts > 0)

    def best_arm(self) -> int:
        """The arm with the best mean among those pulled (lowest index on ties; 0 before any pull)."""
        means = np.where(self.counts > 0, self.means, -np.inf)
        return int(np.argmax(means)) if self.counts.any() else 0

    def choose(self) -> int:
        """The index of the next arm."""
        raise NotImplementedError

    def propose(self) -> NDArray[np.float64]:
        self._space()
        self._last = self.choose()
        return self.arms[self._last].copy()

    def observe(self, result: Round) -> None:
        if self._last is None:
            raise RuntimeError(f"{type(self).__name__}: observe() needs the round of the arm propose() gave")
        super().observe(result)
        arm = self._last
        self.counts[arm] += 1
        self.sums[arm] += result.reward
        self._last = None

    def _untried(self) -> int | None:
        untried = np.flatnonzero(self.counts == 0)
        return int(untried[0]) if len(untried) else None


class EpsilonGreedy(BanditPrincipal):
    """Every arm once, then a uniform random arm with probability ``epsilon``, else the best mean."""

    name = "epsilon_greedy"

    def __init__(self, epsilon: float = 0.1, levels: int = 3, arms: Sequence[Sequence[float]] | None = None) -> None:
        check_fraction("epsilon", epsilon)
        super().__init__(levels, arms)
        self.epsilon = float(epsilon)

    def choose(self) -> int:
        untried = self._untried()
        if untried is not None:
            return untried
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(len(self.arms)))
        return self.best_arm()


class UCB(BanditPrincipal):
    """UCB1: every arm once, then the best ``mean + c * sqrt(2 ln t / n)``."""

    name = "ucb"

    def __init__(self, c: float = 1.0, levels: int = 3, arms: Sequence[Sequence[float]] | None = None) -> None:
        check_positive("c", c)
        super().__init__(levels, arms)
        self.c = float(c)

    def scores(self) -> NDArray[np.float64]:
        """Each arm's upper confidence bound (arms never pulled: +inf)."""
        t = max(int(self.counts.sum()), 1)
        bonus = self.c * np.sqrt(2.0 * np.log(t) / np.maximum(self.counts, 1))
        return np.where(self.counts > 0, self.means + bonus, np.inf)

    def choose(self) -> int:
        untried = self._untried()
        return untried if untried is not None else int(np.argmax(self.scores()))


class ThompsonSampling(BanditPrincipal):
    """Gaussian Thompson sampling: one posterior draw per arm, the largest wins."""

    name = "thompson"

    def __init__(self, prior_mean: float = 0.0, prior_std: float = 10.0, noise_std: float = 5.0, levels: int = 3,
                 arms: Sequence[Sequence[float]] | None = None) -> None:
        check_positive("prior_std", prior_std)
        check_positive("noise_std", noise_std)
        super().__init__(levels, arms)
        self.prior_mean, self.prior_std, self.noise_std = float(prior_mean), float(prior_std), float(noise_std)

    def posterior(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Each arm's posterior mean and standard deviation."""
        precision = 1.0 / self.prior_std**2 + self.counts / self.noise_std**2
        mean = (self.prior_mean / self.prior_std**2 + self.sums / self.noise_std**2) / precision
        return mean, 1.0 / np.sqrt(precision)

    def choose(self) -> int:
        mean, std = self.posterior()
        return int(np.argmax(mean + std * self.rng.standard_normal(len(mean))))
