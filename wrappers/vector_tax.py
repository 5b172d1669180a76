"""The tax designer's control point for B copies: :class:`~wrappers.tax_rates.TaxRatesWrapper`, batched.

:class:`BatchedTaxRatesWrapper` wraps a :class:`~incentive_envs.vector.BatchedParallelEnv` whose copies step in
lockstep and which has the batched tax interface (the Gather-Trade-Build batch has it):

- ``tax_cycle_position``: position of the *next* step in the tax period, shared by every copy (1 = a period
  starts with it);
- ``set_tax_rates(rates)``: ``[B, K]`` marginal rates (one row per copy) for the period that starts next;
- ``tax_rates``: ``[B, K]``, the rates in force (used to learn the number of brackets K).

Before every step that starts a period it calls ``rates_fn(designer_obs)`` once for all copies, with the
designer's observation ``[B, ...]`` (``env.state()`` when the env has a global state, else the agents' latest
observations ``[B, N, ...]``), checks the ``[B, K]`` rates (naming the batch index and the bracket of a bad one)
and sets them. A ``rates_fn`` with ``after_step(infos=, done=, active=)`` is also told about every step (batched
infos ``{key: [B, N, ...]}``, the copies whose episode ended ``[B]`` and the agents that acted ``[B, N]``), so
adaptive models (Saez) learn from the incomes taxed. :class:`PerCopyRates` lifts single-copy ``rates_fn`` s (the
tax models of :mod:`incentive_envs.gtb`, any ``TaxRatesWrapper`` designer): copy by copy, in batch order, as B
single wrappers stepped one after the other would call them, and ``after_step`` per copy with that copy's
PettingZoo infos.

Infos gain ``tax_rates_set`` (:data:`~wrappers.tax_rates.RATES_INFO_KEY`): ``[B, N, K]`` float64, the rates set
before the step for every agent of the copy, and NaN rows where the step did not start a period (all NaN at
reset, so reset and step infos have the same keys). It is the single wrapper's tuple-or-None, as an array.

B copies reset with ``seed=s`` and driven by ``PerCopyRates(fn)`` set, reward and report exactly what B single
``TaxRatesWrapper(env, fn)`` reset with ``s, s + 1, ...`` and stepped in batch order do (for tax periods longer
than one step: with one-step periods a shared adaptive model would see, in the single wrappers, the incomes of
the copies before it taxed within the same step).

A step is checked (call order, then the actions) before ``rates_fn`` is asked, so a rejected step consumes no
decision of a stateful designer and adds nothing to the schedule; the env's rewards are checked finite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from incentive_envs.economics import check_rates
from incentive_envs.vector import BatchedInfos, BatchedParallelEnv, BatchedStep, check_batched_actions
from wrappers.core import EpisodeGuard, has_state, snapshot
from wrappers.tax_rates import RATES_INFO_KEY, RatesFunction

__all__ = ["BatchedRatesFunction", "BatchedTaxRatesWrapper", "PerCopyRates", "check_batched_rates"]

BatchedRatesFunction = Callable[[NDArray[Any]], ArrayLike]
"""A batched tax designer: rates ``[B, K]`` (in [0, 1]) from the designer's observations ``[B, ...]`` at a period
start; optionally with ``after_step(infos=, done=, active=)``."""

_TAX_INTERFACE = ("tax_cycle_position", "set_tax_rates", "tax_rates")


def check_batched_rates(rates: ArrayLike, n_envs: int, n_brackets: int) -> NDArray[np.float64]:
    """Validate one row of marginal rates per copy and return them as a float64 ``[B, K]`` array.

    Each row is checked by :func:`incentive_envs.economics.check_rates` (the single wrapper's check); the error
    of a bad row is prefixed with its batch index and the first bad bracket.

    Raises:
        ValueError: not ``[B, K]``, or a rate outside [0, 1] (rates are never clipped).
        FloatingPointError: a rate is NaN or infinite.
    """
    r = np.asarray(rates, dtype=np.float64)
    if r.shape != (n_envs, n_brackets):
        raise ValueError(f"rates_fn must return one row of {n_brackets} marginal rates per batch index, shape "
                         f"[B, K] = ({n_envs}, {n_brackets}); got shape {r.shape}")
    with np.errstate(invalid="ignore"):
        bad = np.argwhere(~(np.isfinite(r) & (r >= 0.0) & (r <= 1.0)))
    if len(bad):
        b, k = (int(v) for v in bad[0])
        try:
            check_rates(r[b], n_brackets)
        except (ValueError, FloatingPointError) as err:
            raise type(err)(f"batch index {b}, bracket {k} (rate {float(r[b, k])!r}): {err}") from None
    return r


def copy_infos(infos: BatchedInfos, b: int, agents: Sequence[str], active: NDArray[np.bool_]
               ) -> dict[str, dict[str, Any]]:
    """Copy ``b``'s infos as its single env returns them: ``{agent: {key: value}}`` for the agents that acted,
    Python scalars for 0-d entries."""
    out: dict[str, dict[str, Any]] = {}
    for i, agent in enumerate(agents):
        if active[b, i]:
            out[agent] = {k: (v[b, i].item() if v.ndim == 2 else v[b, i]) for k, v in infos.items()}
    return out


class PerCopyRates:
    """Lifts single-copy ``rates_fn`` s to a :data:`BatchedRatesFunction`, copy by copy in batch order.

    Args:
        fns: one ``rates_fn(obs) -> [K]`` shared by all copies (called B times per period start, as B single
            wrappers sharing it would call it), or one per copy (a sequence of B). Copy ``b``'s function gets
            row ``b`` of the designer's observations (its state, or its agents' observations ``[N, ...]``).

    The single functions' ``after_step(infos=, done=)`` is called per copy that stepped, in batch order, with the
    copy's own infos (``{agent: {key: value}}``, its agents that acted) and whether its episode ended.
    """

    def __init__(self, fns: RatesFunction | Sequence[RatesFunction]) -> None:
        self.fns: RatesFunction | tuple[RatesFunction, ...] = tuple(fns) if isinstance(fns, Sequence) else fns
        self.agents: tuple[str, ...] = ()
        for fn in self.fns if isinstance(self.fns, tuple) else (self.fns,):
            if not callable(fn):
                raise TypeError(f"rates_fn must be callable, got {fn!r}")

    def _fn(self, b: int) -> RatesFunction:
        if not isinstance(self.fns, tuple):
            return self.fns
        if len(self.fns) <= b:
            raise ValueError(f"PerCopyRates has {len(self.fns)} rates functions, none for batch index {b}")
        return self.fns[b]

    def bind(self, possible_agents: Sequence[str]) -> None:
        """Learn the agents (the order of the infos' N axis)."""
        self.agents = tuple(possible_agents)

    def __call__(self, obs: NDArray[Any]) -> NDArray[np.float64]:
        return np.stack([np.asarray(self._fn(b)(row), dtype=np.float64) for b, row in enumerate(obs)])

    def after_step(self, *, infos: BatchedInfos, done: NDArray[np.bool_], active: NDArray[np.bool_]) -> None:
        for b in np.flatnonzero(active.any(axis=1)):
            hook = getattr(self._fn(int(b)), "after_step", None)
            if callable(hook):
                hook(infos=copy_infos(infos, int(b), self.agents, active), done=bool(done[b]))


class BatchedTaxRatesWrapper(EpisodeGuard, BatchedParallelEnv):
    """Sets each copy's tax rates from ``rates_fn`` at the start of each tax period (see the module docstring).

    Args:
        env: a batched env whose copies step in lockstep, with ``tax_cycle_position``, ``set_tax_rates`` and
            ``tax_rates``.
        rates_fn: ``rates_fn(designer_obs [B, ...]) -> [B, K]``; optionally with ``after_step(infos=, done=,
            active=)`` and ``bind(possible_agents)``.

    Attributes:
        rates: ``[B, K]``, the rates set most recently (None before the first period of the run).
        episode_schedule: per copy, ``(step, rates)`` for every period started in the current episode.

    Raises:
        TypeError: the env lacks the tax interface or is not a ``BatchedParallelEnv``, or ``rates_fn`` is not
            callable.
        RuntimeError: ``step`` before ``reset``, after every copy's episode ended, or after a step that raised
            once the env had changed.
        ValueError: bad actions (before ``rates_fn`` is asked); ``rates_fn`` returned rates not ``[B, K]`` or
            outside [0, 1] (naming batch index and bracket; nothing is clipped).
        FloatingPointError: ``rates_fn`` returned a NaN or infinite rate; the env returned a NaN/inf reward
            (naming batch index, agent and step).
    """

    def __init__(self, env: BatchedParallelEnv, rates_fn: BatchedRatesFunction) -> None:
        if not isinstance(env, BatchedParallelEnv):
            raise TypeError(f"BatchedTaxRatesWrapper needs a BatchedParallelEnv, got {type(env).__name__}")
        missing = [name for name in _TAX_INTERFACE if not hasattr(type(env), name)]
        if missing:
            raise TypeError(f"{type(env).__name__} has no batched tax interface: missing {missing}")
        if not callable(rates_fn):
            raise TypeError(f"rates_fn must be callable, got {rates_fn!r}")
        self.env = env
        self.possible_agents, self.n_envs = env.possible_agents, env.n_envs
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.state_space = env.state_space
        self.rates_fn = rates_fn
        bind = getattr(rates_fn, "bind", None)
        if callable(bind):
            bind(self.possible_agents)
        self._after_step = getattr(rates_fn, "after_step", None)
        self.rates: NDArray[np.float64] | None = None
        self.episode_schedule: list[list[tuple[int, tuple[float, ...]]]] = [[] for _ in range(self.n_envs)]
        self._has_state = False
        self._obs: NDArray[Any] = np.zeros(0)
        self._n_brackets = 0

    # -- the env ----------------------------------------------------------------------------------------------

    @property
    def active(self) -> NDArray[np.bool_]:
        return self.env.active

    @property
    def rngs(self) -> list[np.random.Generator | None]:
        """The copies' random generators, as the wrapped env exposes them (for checkpoints)."""
        for holder in (self.env, getattr(self.env, "sim", None), getattr(self.env, "engine", None)):
            rngs = getattr(holder, "rngs", None)
            if rngs is not None:
                return list(rngs)
        raise AttributeError(f"{type(self.env).__name__} does not expose its copies' random generators")

    def state(self) -> NDArray[Any]:
        return self.env.state()

    def close(self) -> None:
        self.env.close()

    def _episode_over(self) -> bool:
        return bool(self.env.done.all())

    def reset(self, seed: int | None = None) -> tuple[NDArray[Any], BatchedInfos]:
        obs, infos = self.env.reset(seed=seed)
        self._has_state = has_state(self.env)
        self._obs = snapshot(np.asarray(obs))
        self._n_brackets = int(np.asarray(self.env.tax_rates).reshape(self.n_envs, -1).shape[1])
        self.episode_schedule = [[] for _ in range(self.n_envs)]
        self._begin_episode()
        return obs, {**infos, RATES_INFO_KEY: self._not_set()}

    def step(self, actions: Any) -> BatchedStep:
        self._check_step()
        active = self.env.active
        live = active.any(axis=1)
        acts = check_batched_actions(actions, self.n_envs, self.possible_agents, self.env.action_counts, active)
        set_now = self._set_rates(live) if self.env.tax_cycle_position == 1 else self._not_set()
        self._env_stepped()  # the env has its rates: a raise from here on needs a reset
        obs, rewards, terms, truncs, infos = self.env.step(acts)
        self._check_rewards(np.asarray(rewards, dtype=np.float64))
        self._obs = np.where(live.reshape(-1, *([1] * (np.ndim(obs) - 1))), obs, self._obs)
        self._step_done()
        if callable(self._after_step):
            self._after_step(infos=infos, done=self.env.done, active=active)
        return obs, rewards, terms, truncs, {**infos, RATES_INFO_KEY: set_now}

    # -- helpers ----------------------------------------------------------------------------------------------

    def _not_set(self) -> NDArray[np.float64]:
        return np.full((self.n_envs, self.n_agents, self._n_brackets), np.nan)

    def _set_rates(self, live: NDArray[np.bool_]) -> NDArray[np.float64]:
        """Ask ``rates_fn`` for every copy's rates, check and set them; record them for the live copies."""
        view = snapshot(self.env.state()) if self._has_state else self._obs.copy()
        rates = check_batched_rates(self.rates_fn(view), self.n_envs, self._n_brackets)
        self.env.set_tax_rates(rates)
        self.rates = rates
        for b in np.flatnonzero(live):
            self.episode_schedule[b].append((self._step, tuple(rates[b].tolist())))
        return np.where(live[:, None, None], rates[:, None, :], np.nan).repeat(self.n_agents, axis=1)

    def _check_rewards(self, rewards: NDArray[np.float64]) -> None:
        """``FloatingPointError`` naming the batch index, agent and step of a NaN/inf env reward."""
        bad = np.argwhere(~np.isfinite(rewards))
        if len(bad):
            b, i = (int(v) for v in bad[0])
            raise FloatingPointError(f"batch index {b}: env reward of {self.possible_agents[i]} at step {self._step} "
                                     f"is {rewards[b, i]}; rewards must be finite")

    def __str__(self) -> str:
        return f"BatchedTaxRatesWrapper<{type(self.env).__name__}>"

