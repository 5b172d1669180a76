"""Fixed tax baselines for Gather-Trade-Build (method.md §3.3.8): free market, US federal 2018, Saez.

A tax model only talks to the env through its public tax interface (``tax_cycle_position`` and
``set_tax_rates``), so the same object drives the PettingZoo env and the batched engine::

    model = SaezTax(seed=0)
    obs, infos = env.reset(seed=0)
    while env.agents:
        model.before_step(env)  # sets the rates when a period starts
        obs, rewards, terms, truncs, infos = env.step(actions)
        model.after_step(infos=infos, done=not env.agents)  # feeds the Saez buffer, counts episodes

With :class:`~incentive_envs.gtb.BatchedGTB` call ``model.after_step(result=out)`` with the
:class:`~incentive_envs.gtb.GTBStep`; one schedule then applies to every world and the Saez buffer pools all of
them (like Foundation's global buffer across replicas).
"""

from __future__ import annotations

import abc
import collections
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import numpy as np
from gymnasium.utils import seeding
from numpy.typing import ArrayLike, NDArray

from incentive_envs.economics import US_FEDERAL_2018_CUTOFFS, US_FEDERAL_2018_RATES, check_cutoffs
from incentive_envs.gtb.components import marginal_rate

__all__ = ["FreeMarketTax", "SaezTax", "TaxModel", "TaxSettable", "USFederalTax", "annealed_rate_cap"]

_EPS: Final = 1e-9  # Foundation's guard against division by zero in the Saez formulas


class TaxSettable(Protocol):
    """What a tax model needs from an env: the cycle position and the rate setter."""

    @property
    def tax_cycle_position(self) -> int: ...

    def set_tax_rates(self, rates: ArrayLike) -> None: ...


def annealed_rate_cap(completed_episodes: int, initial_cap: float = 0.1, anneal_episodes: int = 8000) -> float:
    """Foundation's tax-cap annealing (method.md §3.3.7): ``clip(slope (n - warmup), 0, 1)`` with
    ``slope = (1 - initial_cap) / anneal_episodes`` and ``warmup = -initial_cap / slope``; i.e. the cap rises
    linearly from ``initial_cap`` to 1 over ``anneal_episodes`` completed episodes."""
    if completed_episodes < 0 or anneal_episodes < 1 or not 0.0 <= initial_cap <= 1.0:
        raise ValueError(
            f"need completed_episodes >= 0, anneal_episodes >= 1, initial_cap in [0, 1]; got "
            f"{completed_episodes}, {anneal_episodes}, {initial_cap}"
        )
    slope = (1.0 - initial_cap) / anneal_episodes
    return float(np.clip(initial_cap + slope * completed_episodes, 0.0, 1.0))


class TaxModel(abc.ABC):
    """A tax schedule chosen at the start of each period from what the model has seen so far.

    Args:
        cutoffs: bracket lower edges (default: scaled 2018 US federal, the env's default).
    """

    def __init__(self, cutoffs: Sequence[float] = US_FEDERAL_2018_CUTOFFS) -> None:
        self.cutoffs = check_cutoffs(cutoffs)
        self.completed_episodes = 0

    @property
    def n_brackets(self) -> int:
        return int(self.cutoffs.size)

    @abc.abstractmethod
    def schedule(self) -> NDArray[np.float64]:
        """Marginal rates (one per bracket, in [0, 1]) for the period about to start."""

    def __call__(self, observation: Any = None) -> NDArray[np.float64]:
        """The schedule for the coming period (the observation is ignored): a model is a ``rates_fn(obs)``."""
        return self.schedule()

    def record(self, income: ArrayLike, marginal_rates: ArrayLike) -> None:
        """Observe the incomes taxed at an enactment and the marginal rate each faced (default: ignore)."""
        return None

    def end_episode(self) -> None:
        """Count a completed episode (drives cap annealing)."""
        self.completed_episodes += 1

    def before_step(self, env: TaxSettable) -> bool:
        """Set the rates when a tax period starts with the coming step; returns whether it did."""
        if env.tax_cycle_position != 1:
            return False
        env.set_tax_rates(self.schedule())
        return True

    def after_step(
        self, *, result: Any = None, infos: Mapping[str, Mapping[str, Any]] | None = None, done: bool = False
    ) -> None:
        """Digest one step: a batched ``GTBStep`` as ``result``, or the PettingZoo ``infos`` plus ``done``."""
        if (result is None) == (infos is None):
            raise ValueError("pass exactly one of result= (a GTBStep) or infos= (PettingZoo infos)")
        if result is not None:
            enacted, done = bool(result.tax_enacted), bool(result.done)
            income, rates = np.asarray(result.income), np.asarray(result.marginal_rates)
        else:
            if not infos:
                raise ValueError("infos is empty: pass the infos returned by env.step")
            first = next(iter(infos.values()))
            enacted = bool(first["tax_enacted"])
            income = np.array([[info["income"] for info in infos.values()]])
            rates = np.asarray(first["marginal_rates"])[None]
        if enacted:
            self.record(income, marginal_rate(income, rates, self.cutoffs))
        if done:
            self.end_episode()


class FreeMarketTax(TaxModel):
    """No taxes: every rate is 0 (Foundation's ``disable_taxes=True``)."""

    def schedule(self) -> NDArray[np.float64]:
        return np.zeros(self.n_brackets)


class USFederalTax(TaxModel):
    """The 2018 US federal single-filer rates (scaled brackets), min'd with an optionally annealed cap.

    Args:
        anneal_cap: anneal the maximum rate from ``initial_cap`` to 1 over ``anneal_episodes`` completed
            episodes (the paper's US-federal baseline does; method.md §3.3.7).
        initial_cap: cap at 0 completed episodes.
        anneal_episodes: episodes to reach a cap of 1.
    """

    def __init__(
        self,
        anneal_cap: bool = False,
        initial_cap: float = 0.1,
        anneal_episodes: int = 8000,
        rates: Sequence[float] = US_FEDERAL_2018_RATES,
        cutoffs: Sequence[float] = US_FEDERAL_2018_CUTOFFS,
    ) -> None:
        super().__init__(cutoffs)
        self.rates = np.asarray(rates, dtype=np.float64)
        if self.rates.shape != (self.n_brackets,):
            raise ValueError(f"need {self.n_brackets} rates, got {self.rates.shape}")
        self.anneal_cap = bool(anneal_cap)
        self.initial_cap = float(initial_cap)
        self.anneal_episodes = int(anneal_episodes)
        annealed_rate_cap(0, self.initial_cap, self.anneal_episodes)  # validates the schedule

    @property
    def cap(self) -> float:
        """Current maximum rate (1 without annealing)."""
        if not self.anneal_cap:
            return 1.0
        return annealed_rate_cap(self.completed_episodes, self.initial_cap, self.anneal_episodes)

    def schedule(self) -> NDArray[np.float64]:
        return np.minimum(self.rates, self.cap)


class SaezTax(TaxModel):
    """Adaptive Saez rates from the empirical income distribution (Foundation's ``tax_model="saez"``).

    ``tau(z) = (1 - G(z)) / (1 - G(z) + a(z) e)`` per income bin, where ``G`` is the average Pareto weight of
    incomes >= z (inverse-income weights ``1 / max(1, z)`` by default), ``a(z)`` the local Pareto parameter and
    ``e`` the elasticity of income w.r.t. the net-of-tax rate. Rates are estimated from a buffer of the last
    ``buffer_size`` (income, marginal rate) samples in ``n_bins`` equal income bins up to the top cutoff;
    empty bins are filled by linear interpolation, the bin schedule is averaged into the brackets and clipped
    to ``[0, cap]``. ``e`` is an OLS estimate of ``log z`` on ``log(1 - tau)`` smoothed as
    ``e <- 0.02 e_new + 0.98 e`` (clipped at 0), unless ``fixed_elasticity`` is given. Until the buffer is full
    the rates are uniform random in ``[0, cap]``.

    Args:
        buffer_size: samples kept (one per agent per enactment).
        n_bins: income bins between 0 and the top cutoff.
        fixed_elasticity: use this elasticity instead of the running estimate.
        pareto_weights: ``"inverse_income"`` or ``"uniform"``.
        cap: maximum rate.
        elasticity_smoothing: weight of the previous estimate (0.98 in Foundation).
        seed: seed of the generator for the random rates used while the buffer fills.
    """

    def __init__(
        self,
        buffer_size: int = 500,
        n_bins: int = 100,
        fixed_elasticity: float | None = None,
        pareto_weights: str = "inverse_income",
        cap: float = 1.0,
        elasticity_smoothing: float = 0.98,
        seed: int | None = None,
        cutoffs: Sequence[float] = US_FEDERAL_2018_CUTOFFS,
    ) -> None:
        super().__init__(cutoffs)
        if buffer_size < 1 or n_bins < 1:
            raise ValueError(f"buffer_size and n_bins must be >= 1, got {buffer_size}, {n_bins}")
        if fixed_elasticity is not None and not (math.isfinite(fixed_elasticity) and fixed_elasticity >= 0):
            raise ValueError(f"fixed_elasticity must be finite and >= 0, got {fixed_elasticity!r}")
        if pareto_weights not in ("inverse_income", "uniform"):
            raise ValueError(f"pareto_weights must be 'inverse_income' or 'uniform', got {pareto_weights!r}")
        if not 0.0 <= cap <= 1.0 or not 0.0 <= elasticity_smoothing <= 1.0:
            raise ValueError(f"cap and elasticity_smoothing must be in [0, 1], got {cap}, {elasticity_smoothing}")
        self.buffer: collections.deque[tuple[float, float]] = collections.deque(maxlen=int(buffer_size))
        self.fixed_elasticity = fixed_elasticity
        self.pareto_weights = pareto_weights
        self.cap = float(cap)
        self.smoothing = float(elasticity_smoothing)
        self.elasticity = 0.5  # Foundation's initial running estimate
        self.bin_edges = np.linspace(0.0, float(self.cutoffs[-1]), int(n_bins) + 1)
        self.rng, _ = seeding.np_random(seed)

    @property
    def buffer_full(self) -> bool:
        return len(self.buffer) >= (self.buffer.maxlen or 0)

    def record(self, income: ArrayLike, marginal_rates: ArrayLike) -> None:
        """Append one (income, marginal rate) sample per agent (world-major, then agent index order)."""
        z = np.asarray(income, dtype=np.float64).reshape(-1)
        tau = np.asarray(marginal_rates, dtype=np.float64).reshape(-1)
        if z.shape != tau.shape or not (np.isfinite(z).all() and np.isfinite(tau).all()):
            raise ValueError(f"income and marginal_rates must be finite and of one shape, got {z.shape}, {tau.shape}")
        self.buffer.extend(zip(z.tolist(), tau.tolist()))

    def schedule(self) -> NDArray[np.float64]:
        if not self.buffer_full:
            return self.rng.uniform(0.0, self.cap, size=self.n_brackets)
        samples = np.array(self.buffer)
        self.elasticity = self.estimate_elasticity(samples[:, 0], samples[:, 1], self.elasticity, self.smoothing)
        elas = self.elasticity if self.fixed_elasticity is None else self.fixed_elasticity
        g, a = self.binned_welfare_weights_and_pareto(samples[:, 0])
        bin_rates = self.bin_marginal_rates(g, a, elas)
        return np.clip(self.bracketize(bin_rates), 0.0, self.cap)

    @staticmethod
    def estimate_elasticity(
        income: NDArray[np.float64], rate: NDArray[np.float64], previous: float, smoothing: float = 0.98
    ) -> float:
        """Smoothed OLS slope of ``log z`` on ``log(1 - tau)`` over samples with ``z > 0`` and ``tau < 1``;
        the previous estimate is kept with fewer than 10 usable samples or (almost) constant rates."""
        keep = (income > 0) & (rate < 1)
        z, tau = income[keep], rate[keep]
        if z.size < 10 or np.std(tau) < 1e-6:
            return float(previous)
        x = np.log(np.maximum(1.0 - tau, 1e-9))
        design = np.stack([x, np.ones_like(x)], axis=1)
        slope, _ = np.linalg.solve(design.T @ design, design.T @ np.log(np.maximum(z, 1e-9)))
        return float((1.0 - smoothing) * max(slope, 0.0) + smoothing * previous)

    def _pareto(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.ones_like(z) if self.pareto_weights == "uniform" else 1.0 / np.maximum(1.0, z)

    def binned_welfare_weights_and_pareto(
        self, income: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per income bin (plus the open top bin): ``G(z)`` and the local Pareto parameter ``a(z)`` (NaN for
        empty bins), following Foundation's ``get_binned_saez_welfare_weight_and_pareto_params``."""
        edges = self.bin_edges
        counts = np.histogram(income, bins=edges)[0].astype(np.float64)
        below, above = income[income < edges[0]], income[income > edges[-1]]
        n_total = counts.sum() + below.size + above.size
        pz = np.append(counts, above.size) / n_total  # P(bin), open top bin last
        cum_pz = np.minimum(np.cumsum(pz) + below.size / n_total, 1.0)  # P(z' <= bin)
        mid = 0.5 * (edges[:-1] + edges[1:])
        # G(z): average Pareto weight of the incomes at or above each bin.
        weight_bins = counts * self._pareto(mid)
        weight_above = self._pareto(above).sum() if above.size else 0.0
        weight_below = self._pareto(np.maximum(below, 0.0)).sum() if below.size else 0.0
        density = np.append(weight_bins, weight_above) / (weight_bins.sum() + weight_below + weight_above + _EPS)
        geq_weight = np.cumsum(density[::-1])[::-1]
        geq_prob = np.cumsum(pz[::-1])[::-1]
        avg = geq_weight / (geq_prob + _EPS)
        g = np.append(0.5 * (avg[:-1] + avg[1:]), avg[-1])
        # a(z) = z f(z) / (1 - F(z)), with half of the bin's own mass counted as above z.
        p_geq = np.clip(1.0 - cum_pz + 0.5 * pz, 0.0, 1.0)[:-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            a_bins = np.where(pz[:-1] == 0, np.nan, mid * pz[:-1] / (p_geq + _EPS) / np.diff(edges))
        if above.size:
            mean_above = above.mean()
            a_top = mean_above / (mean_above - edges[-1] + _EPS)
        else:
            a_top = 0.0
        return g, np.append(a_bins, a_top)

    @staticmethod
    def bin_marginal_rates(g: NDArray[np.float64], a: NDArray[np.float64], elasticity: float) -> NDArray[np.float64]:
        """Saez rates per bin; NaN bins (no incomes) are interpolated linearly from the previous real rate
        (0 before the first) to the next one."""
        taus = (1.0 - g) / (1.0 - g + a * elasticity + _EPS)
        real = np.flatnonzero(~np.isnan(taus))
        if real.size == 0:
            return np.zeros_like(taus)
        xs = np.append(-1, real)
        ys = np.append(0.0, taus[real])
        gaps = np.flatnonzero(np.isnan(taus))
        taus[gaps] = np.interp(gaps, xs, ys)
        return taus

    def bracketize(self, bin_rates: NDArray[np.float64]) -> NDArray[np.float64]:
        """Average bin rates into the brackets: each bracket's rate is the tax its width would owe under the
        bin schedule divided by the width; the open top bracket takes the top bin's rate."""
        sizes = np.append(np.diff(self.bin_edges), np.inf)
        upper = self.cutoffs[1:, None]  # (n_brackets - 1, 1)
        in_bin = np.minimum(sizes, np.maximum(0.0, upper - self.bin_edges))  # (n_brackets - 1, n_bins + 1)
        owed = np.maximum(0.0, (in_bin * bin_rates).sum(-1))
        burden = np.diff(np.append(0.0, owed))
        return np.append(burden / np.diff(self.cutoffs), bin_rates[-1])
