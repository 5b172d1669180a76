"""The tax designer's control point: set an env's marginal tax rates at the start of every tax period.

:class:`TaxRatesWrapper` wraps any PettingZoo ``ParallelEnv`` with a public tax interface (the Gather-Trade-Build
env has one):

- ``tax_cycle_position``: position of the *next* step in the tax period (1 = a period starts with it);
- ``set_tax_rates(rates)``: marginal rates (one per bracket) for the period that starts next;
- ``tax_rates``: the rates currently in force (used to learn the number of brackets).

Before every step that starts a period it calls ``rates_fn(designer_obs)`` with the designer's observation
(``env.state()`` when the env has a global state, else the dict of the agents' latest observations), checks the
rates and sets them. A ``rates_fn`` with an ``after_step(infos=..., done=...)`` method (such as the fixed tax
models of :mod:`incentive_envs.gtb.tax_models`, whose ``__call__`` returns their schedule) is also told about
every step, so adaptive models (Saez) can learn from the incomes taxed.

Every step ``infos[agent]`` gains ``tax_rates_set``: the rates this wrapper set before the step (a tuple), or
None when the step did not start a period (and None at reset, so reset and step infos have the same keys).

A step is checked (call order, then the joint action) before ``rates_fn`` is asked, so a rejected step consumes
no decision of a stateful designer and adds nothing to the schedule; the env's rewards are checked finite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pettingzoo import ParallelEnv
from pettingzoo.utils import BaseParallelWrapper

from incentive_envs.economics import check_rates
from incentive_envs.validation import check_joint_action
from wrappers.core import ParallelCore, check_rewards

__all__ = ["RATES_INFO_KEY", "RatesFunction", "TaxRatesWrapper"]

RATES_INFO_KEY = "tax_rates_set"
"""Key this wrapper adds to ``infos[agent]``: the rates set before the step, or None."""

RatesFunction = Callable[[Any], Sequence[float] | np.ndarray]
"""A tax designer: marginal rates (one per bracket, in [0, 1]) from the designer's observation at a period start."""


class TaxRatesWrapper(ParallelCore, BaseParallelWrapper):
    """Sets the wrapped env's tax rates from ``rates_fn`` at the start of each tax period.

    Args:
        env: a PettingZoo parallel env exposing ``tax_cycle_position``, ``set_tax_rates`` and ``tax_rates``.
        rates_fn: ``rates_fn(designer_obs) -> rates``; optionally with ``after_step(infos=, done=)``.

    Attributes:
        rates: the rates set most recently (None before the first period of the run).
        episode_schedule: ``(step, rates)`` for every period started in the current episode.

    Raises:
        TypeError: the env lacks the tax interface, or ``rates_fn`` is not callable.
        RuntimeError: ``step`` before ``reset`` or after a step that raised once the env had changed.
        KeyError: actions do not name exactly the live agents (before ``rates_fn`` is asked).
        ValueError: an action outside its space (before ``rates_fn`` is asked); ``rates_fn`` returned rates of
            the wrong length or outside [0, 1] (nothing is clipped).
        FloatingPointError: ``rates_fn`` returned a NaN or infinite rate; the env returned a NaN/inf reward.
    """

    def __init__(self, env: ParallelEnv, rates_fn: RatesFunction) -> None:
        if not isinstance(env, ParallelEnv):
            raise TypeError(f"TaxRatesWrapper needs a PettingZoo ParallelEnv, got {type(env).__name__}")
        base = type(env.unwrapped)  # look at the class: the properties raise before reset
        missing = [name for name in ("tax_cycle_position", "set_tax_rates", "tax_rates") if not hasattr(base, name)]
        if missing:
            raise TypeError(f"{type(env).__name__} has no tax interface: missing {missing}")
        if not callable(rates_fn):
            raise TypeError(f"rates_fn must be callable, got {rates_fn!r}")
        super().__init__(env)
        self.rates_fn = rates_fn
        self.rates: tuple[float, ...] | None = None
        self.episode_schedule: list[tuple[int, tuple[float, ...]]] = []
        self._after_step = getattr(rates_fn, "after_step", None)
        self._obs: dict[str, Any] = {}

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        obs, infos = self._reset_env(seed, options)
        self._obs = dict(obs)
        self.episode_schedule = []
        return obs, {a: {**i, RATES_INFO_KEY: None} for a, i in infos.items()}

    def _episode_over(self) -> bool:
        """Never: the env answers a step past the end itself (PettingZoo lets ``step({})`` there be a no-op)."""
        return False

    def _mid_episode(self) -> bool:
        """Whether an episode is under way (for copies): reset, not failed, and the env has live agents."""
        return self._started and not self._failed and bool(self.env.agents)

    def _set_rates(self) -> tuple[float, ...]:
        n_brackets = int(np.asarray(self.env.tax_rates).reshape(-1).size)
        raw = np.asarray(self.rates_fn(self._designer_view(self._obs)), dtype=np.float64)
        if raw.ndim != 1:
            raise ValueError(f"rates_fn must return one rate per bracket ({n_brackets}), got shape {raw.shape}")
        rates = check_rates(raw, n_brackets)  # ValueError (length, range) or FloatingPointError (NaN/inf)
        self.env.set_tax_rates(rates)
        self.rates = tuple(float(r) for r in rates)
        self.episode_schedule.append((self._step, self.rates))
        return self.rates

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]]:
        self._check_step()
        live = list(self.env.agents)
        if live:  # past the end the env answers itself
            check_joint_action(actions, live, self.env.action_space)
        set_now = self._set_rates() if live and self.env.tax_cycle_position == 1 else None
        self._env_stepped()  # the env has its rates: a raise from here on needs a reset
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        check_rewards(rewards, self._step)
        self._obs.update(obs)
        self._step_done()
        if callable(self._after_step):
            self._after_step(infos=infos, done=not self.env.agents)
        return obs, rewards, terms, truncs, {a: {**i, RATES_INFO_KEY: set_now} for a, i in infos.items()}

    def __str__(self) -> str:
        return f"TaxRatesWrapper<{self.env}>"
