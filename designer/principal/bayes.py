"""Bayesian optimisation principals through Optuna's samplers (the ``principals`` extra).

Each round is one Optuna trial (ask/tell): the sampler suggests every parameter as a float in its bounds, and the
round's reward is told back as the trial's value (maximised). ``sampler`` picks Optuna's sampler: ``"gp"``
(Gaussian-process Bayesian optimisation, :class:`optuna.samplers.GPSampler`), ``"tpe"`` (tree-structured Parzen
estimator) or ``"random"``; all are seeded from :meth:`~designer.principal.base.Principal.reset`'s seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from designer.extras import require
from designer.principal.base import Principal, Round

__all__ = ["SAMPLERS", "OptunaPrincipal"]

SAMPLERS: dict[str, str] = {"gp": "GPSampler", "tpe": "TPESampler", "random": "RandomSampler"}
"""Sampler names this principal accepts, and Optuna's class for each."""


def _optuna() -> Any:
    return require("optuna", "principals", "the Bayesian-optimisation principal")


class OptunaPrincipal(Principal):
    """Bayesian optimisation of the round's reward with an Optuna sampler (ask/tell, maximising).

    Args:
        sampler: ``"gp"``, ``"tpe"`` or ``"random"`` (:data:`SAMPLERS`).
        n_startup_trials: random rounds before the model proposes (GP and TPE samplers).

    Raises:
        ValueError: an unknown sampler name.
        designer.extras.MissingExtra: Optuna is not installed (``pip install "incentive-design[principals]"``).
    """

    def __init__(self, sampler: str = "gp", n_startup_trials: int = 5) -> None:
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
        if n_startup_trials < 1:
            raise ValueError(f"n_startup_trials must be >= 1, got {n_startup_trials}")
        _optuna()  # fail at construction, not at the first round
        super().__init__()
        self.sampler, self.n_startup_trials = sampler, n_startup_trials
        self.name = f"bo_{sampler}"
        self.study: Any = None
        self._trial: Any = None

    def reset(self, space: spaces.Space[Any], seed: int | None = None) -> None:
        super().reset(space, seed)
        optuna = _optuna()
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        kwargs: dict[str, Any] = {"seed": seed}
        if self.sampler != "random":
            kwargs["n_startup_trials"] = self.n_startup_trials
        sampler = getattr(optuna.samplers, SAMPLERS[self.sampler])(**kwargs)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self._trial = None

    def propose(self) -> NDArray[np.float64]:
        box = self._space()
        self._trial = self.study.ask()
        return np.array([self._trial.suggest_float(f"p{i}", float(lo), float(hi))
                         for i, (lo, hi) in enumerate(zip(box.low, box.high))])

    def observe(self, result: Round) -> None:
        if self._trial is None:
            raise RuntimeError("OptunaPrincipal: observe() needs the round of the trial propose() gave")
        super().observe(result)
        self.study.tell(self._trial, float(result.reward))
        self._trial = None
