"""Stable-baselines3 as a black-box principal: an SB3 algorithm learns the designer's policy over one run.

SB3 owns its training loop, so it cannot sit behind :class:`~designer.principal.base.Principal`'s
propose/observe; :func:`run_sb3_principal` gives it the designer env instead, with the same budget rule and the
same per-round records (:class:`~designer.principal.run.RoundLog`, ``rounds.csv``) as :func:`run_principal
<designer.principal.run.run_principal>`. One run is one episode of the designer env (one set of learning
agents): SB3 stops after the last round that fits the agent-episode budget, before the env would reset and start
new agents. Needs the ``sb3`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from designer.extras import require
from designer.principal.base import Round
from designer.principal.run import RoundLog, parameter_names

__all__ = ["SB3_ALGORITHMS", "run_sb3_principal"]

SB3_ALGORITHMS = ("PPO", "A2C", "SAC", "TD3", "DDPG")
"""SB3 algorithms for a continuous (``Box``) action: the designer env's parameters."""


class _Recorded(gymnasium.Wrapper[Any, Any, Any, Any]):
    """Records each step of the wrapped designer env in a :class:`RoundLog`. After the run's last round (the env
    truncates at its horizon) SB3's vectorised env resets at once; the run is over, so that reset returns the last
    observation instead of starting new agents (and evaluating them)."""

    def __init__(self, env: gymnasium.Env[Any, Any], log: RoundLog) -> None:
        super().__init__(env)
        self.log = log
        self._final: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self._final is not None:
            return self._final, {}
        return super().reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        self.log.record(np.asarray(action, dtype=np.float64), float(reward), info)
        if terminated or truncated:
            self._final = obs
        return obs, reward, terminated, truncated, info


def run_sb3_principal(env: gymnasium.Env[Any, Any], budget: int, *, seed: int = 0, algorithm: str = "PPO",
                      csv_path: str | Path | None = None, **kwargs: Any) -> list[Round]:
    """Train SB3 ``algorithm`` (``"MlpPolicy"``, CPU) on ``env`` for the rounds that fit ``budget`` agent
    episodes and the env's horizon; the rounds played, in order.

    Args:
        env: a designer environment (its ``episodes_per_step`` is the cost of a round).
        budget: agent episodes the run may consume.
        seed: the model's seed (it seeds the env's reset through SB3).
        algorithm: one of :data:`SB3_ALGORITHMS`.
        csv_path: one row per round, as :func:`run_principal` writes (None: no file).
        kwargs: the algorithm's own arguments (e.g. ``n_steps=8, batch_size=8`` for PPO).

    Raises:
        ValueError: an unknown algorithm, or a budget under one round.
        MissingExtra: stable-baselines3 is not installed.
    """
    if algorithm not in SB3_ALGORITHMS:
        raise ValueError(f"algorithm must be one of {SB3_ALGORITHMS}, got {algorithm!r}")
    cost = int(getattr(env.unwrapped, "episodes_per_step", 1))
    horizon = int(getattr(getattr(env.unwrapped, "config", None), "horizon", budget))
    rounds = min(budget // cost, horizon)
    if rounds < 1:
        raise ValueError(f"budget {budget} agent episodes is less than one round ({cost} episodes)")
    sb3 = require("stable_baselines3", "sb3", "an SB3 principal", package="stable-baselines3")
    callbacks = require("stable_baselines3.common.callbacks", "sb3", "an SB3 principal", package="stable-baselines3")
    log = RoundLog(parameter_names(env), csv_path)

    class _StopAtBudget(callbacks.BaseCallback):  # type: ignore[name-defined]
        def _on_step(self) -> bool:
            return len(log.rounds) < rounds

    try:
        model = getattr(sb3, algorithm)("MlpPolicy", _Recorded(env, log), seed=seed, device="cpu", **kwargs)
        model.learn(total_timesteps=rounds, callback=_StopAtBudget())
    finally:
        log.close()
    return log.rounds
