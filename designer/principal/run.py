"""The loop every principal runs on a designer environment, logging each round to CSV.

:func:`run_principal` resets the env and the principal with one seed, then plays rounds (propose, step,
observe) while the next round fits the agent-episode budget (the fair x-axis of a comparison: MetaGrad's
training episodes and a principal's rounds are counted alike) and the env's horizon allows. Each round is a
CSV row: ``step``, ``agent_episodes``, ``total_agent_episodes``, ``reward``, one ``param/<name>`` column per
parameter, then the outcome (``welfare``, ``incentives``, ``net``, ``designer_return``, ``episode_steps``) when
the env reports one.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from designer.principal.base import Principal, Round

__all__ = ["CSV_OUTCOME_COLUMNS", "RoundLog", "parameter_names", "run_principal"]

CSV_OUTCOME_COLUMNS = ("welfare", "incentives", "net", "designer_return", "episode_steps")


class RoundLog:
    """Turns each designer-env step into a :class:`Round` (and a CSV row when ``csv_path`` is given): the one
    record of a run, whether the loop is :func:`run_principal`'s or another library's (SB3's ``learn``)."""

    def __init__(self, names: tuple[str, ...], csv_path: str | Path | None = None) -> None:
        self.names = names
        self.rounds: list[Round] = []
        self.total = 0
        self._fh = None
        self._writer: csv.DictWriter[str] | None = None
        if csv_path is not None:
            Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
            self._fh = Path(csv_path).open("w", newline="")
            columns = ["step", "agent_episodes", "total_agent_episodes", "reward", *(f"param/{n}" for n in names),
                       *CSV_OUTCOME_COLUMNS]
            self._writer = csv.DictWriter(self._fh, fieldnames=columns, restval="", extrasaction="ignore")
            self._writer.writeheader()

    def record(self, params: np.ndarray, reward: float, info: dict[str, Any]) -> Round:
        """The round of one step: ``params`` set, its ``reward`` and ``info`` (``agent_episodes``, ``parameters``
        in force, ``outcome``, where the env gives them; a round without ``agent_episodes`` counts as one)."""
        cost = int(info.get("agent_episodes", 1))
        self.total += cost
        used = info.get("parameters", params.tolist())
        result = Round(step=len(self.rounds), parameters=tuple(float(x) for x in used), reward=float(reward),
                       outcome=dict(info.get("outcome", {})), agent_episodes=cost, total_agent_episodes=self.total)
        self.rounds.append(result)
        if self._writer is not None and self._fh is not None:
            row: dict[str, Any] = {"step": result.step, "agent_episodes": cost, "total_agent_episodes": self.total,
                                   "reward": result.reward}
            row.update({f"param/{n}": v for n, v in zip(self.names, result.parameters)})
            row.update({k: v for k, v in result.outcome.items() if k in CSV_OUTCOME_COLUMNS})
            self._writer.writerow(row)
            self._fh.flush()
        return result

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def parameter_names(env: gymnasium.Env[Any, Any]) -> tuple[str, ...]:
    """The env's parameter names (``parameter_names`` of a designer env), else ``p0``, ``p1``, ..."""
    n = int(np.prod(env.action_space.shape or (1,)))
    names = getattr(env.unwrapped, "parameter_names", None)
    return tuple(names) if names is not None and len(names) == n else tuple(f"p{i}" for i in range(n))


def run_principal(env: gymnasium.Env[Any, Any], principal: Principal, budget: int, *, seed: int = 0,
                  csv_path: str | Path | None = None) -> list[Round]:
    """Run ``principal`` on ``env`` for at most ``budget`` agent episodes; the rounds played, in order.

    Args:
        env: a designer environment (:class:`~designer.principal.env.DesignerEnv`, or any env with a bounded
            1-d Box action space whose ``info`` may give ``agent_episodes`` and ``outcome``; a round without
            ``agent_episodes`` counts as one episode).
        principal: the principal; reset here with ``env.action_space`` and ``seed``.
        budget: agent episodes the run may consume; the loop stops before a round that would exceed it (the
            cost of a round is the env's ``episodes_per_step`` when it has one, else that of the last round).
        seed: seeds the env's reset and the principal.
        csv_path: where to write one row per round (None: no file). The file is rewritten from the start.

    Raises:
        ValueError: ``budget`` is smaller than one round.
    """
    cost = int(getattr(env.unwrapped, "episodes_per_step", 1))
    if budget < cost:
        raise ValueError(f"budget {budget} agent episodes is less than one round ({cost} episodes)")
    env.reset(seed=seed)
    principal.reset(env.action_space, seed)
    space = principal.space
    assert space is not None  # set by reset
    log = RoundLog(parameter_names(env), csv_path)
    try:
        truncated = terminated = False
        while log.total + cost <= budget and not (truncated or terminated):
            params = np.asarray(principal.propose(), dtype=np.float64)
            _, reward, terminated, truncated, info = env.step(params.astype(space.dtype))
            result = log.record(params, float(reward), info)
            cost = result.agent_episodes
            principal.observe(result)
    finally:
        log.close()
    return log.rounds
