"""A principal whose policy is any Python function from a JSON summary of past rounds to parameters.

This is the hook an LLM policymaker plugs into: the function receives :func:`history_json` (the parameter
names and bounds, the objective, and every past round's parameters, reward, outcome and cost) and returns the
next parameters, e.g. by prompting a model with the JSON and parsing its answer. The function may return a
sequence of floats in parameter order, a mapping from parameter name to value, or a JSON string of either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from designer.principal.base import Principal, Round

__all__ = ["CallablePrincipal", "PolicyFn", "hill_climb", "history_json"]

PolicyFn = Callable[[str], "Sequence[float] | Mapping[str, float] | str"]
"""``(history JSON) -> parameters``: a list in parameter order, ``{name: value}``, or a JSON string of either."""


def history_json(names: Sequence[str], low: Sequence[float], high: Sequence[float], rounds: Sequence[Round],
                 objective: str = "reward", last: int | None = None) -> str:
    """The JSON a :class:`CallablePrincipal`'s function receives.

    Keys: ``parameters`` (``[{"name", "low", "high"}]`` in order), ``objective`` (what the reward measures),
    ``rounds`` (each :meth:`Round.summary`, oldest first; only the ``last`` ones when given) and
    ``rounds_so_far`` (all rounds, also those left out).
    """
    shown = list(rounds) if last is None else list(rounds)[-last:] if last > 0 else []
    return json.dumps({
        "parameters": [{"name": n, "low": float(lo), "high": float(hi)} for n, lo, hi in zip(names, low, high)],
        "objective": objective,
        "rounds_so_far": len(rounds),
        "rounds": [r.summary() for r in shown],
    }, sort_keys=True)


class CallablePrincipal(Principal):
    """Parameters from ``policy(history_json)`` each round.

    Args:
        policy: the function (:data:`PolicyFn`).
        parameter_names: names of the parameters (default ``p0 .. p{n-1}``; a designer env's
            ``parameter_names`` keeps them meaningful to a language model).
        objective: what the reward measures, for the summary (e.g. ``"net: welfare minus incentives paid"``).
        last: show only the last this many rounds (None: all), to bound a prompt's length.
        clip: clip parameters outside the bounds into them instead of raising.
        name: the label in logs and tables.

    Raises (from :meth:`propose`):
        ValueError: the function's answer is not parseable, has the wrong names or length, is not finite, or (without
            ``clip``) lies outside the bounds; the message quotes the answer.
    """

    def __init__(self, policy: PolicyFn, parameter_names: Sequence[str] | None = None, objective: str = "reward",
                 last: int | None = None, clip: bool = False, name: str = "callable") -> None:
        super().__init__()
        self.policy = policy
        self.parameter_names = None if parameter_names is None else tuple(parameter_names)
        self.objective, self.last, self.clip, self.name = objective, last, clip, name

    def names(self) -> tuple[str, ...]:
        """The parameter names the function sees."""
        n = self._space().shape[0]
        names = self.parameter_names or tuple(f"p{i}" for i in range(n))
        if len(names) != n:
            raise ValueError(f"{len(names)} parameter names for {n} parameters: {names}")
        return names

    def summary(self) -> str:
        """The JSON the function receives this round (:func:`history_json`)."""
        box = self._space()
        return history_json(self.names(), box.low.tolist(), box.high.tolist(), self.history, self.objective,
                            self.last)

    def propose(self) -> NDArray[np.float64]:
        answer = self.policy(self.summary())
        values = self._parse(answer)
        box = self._space()
        if self.clip:
            return np.clip(values, box.low.astype(np.float64), box.high.astype(np.float64))
        if np.any(values < box.low) or np.any(values > box.high):
            raise ValueError(f"the policy's parameters {values.tolist()} are outside [{box.low.tolist()}, "
                             f"{box.high.tolist()}] (answer: {answer!r}); pass clip=True to clip them")
        return values

    def _parse(self, answer: Any) -> NDArray[np.float64]:
        names = self.names()
        raw = answer
        try:
            if isinstance(raw, str):
                raw = json.loads(raw)
            if isinstance(raw, Mapping):
                if set(raw) != set(names):
                    raise ValueError(f"expected the names {list(names)}")
                raw = [raw[n] for n in names]
            values = np.asarray(raw, dtype=np.float64).reshape(-1)
        except (ValueError, TypeError) as err:
            raise ValueError(f"cannot read parameters from the policy's answer {answer!r}: {err}") from err
        if values.shape != (len(names),) or not np.all(np.isfinite(values)):
            raise ValueError(f"the policy must give {len(names)} finite parameters {list(names)}, got {answer!r}")
        return values


def hill_climb(summary: str) -> list[float]:
    """A scripted stand-in for an LLM policymaker (a :data:`PolicyFn`): from the JSON history, raise every
    parameter by a quarter of its range while the reward improves, else go back to the best parameters seen
    (the first round plays the lower bounds)."""
    data = json.loads(summary)
    lows = np.array([p["low"] for p in data["parameters"]])
    highs = np.array([p["high"] for p in data["parameters"]])
    rounds = data["rounds"]
    if not rounds:
        return [float(x) for x in lows]
    best = max(rounds, key=lambda r: r["reward"])
    last = np.array(rounds[-1]["parameters"])
    if rounds[-1] is best:
        return [float(x) for x in np.minimum(last + (highs - lows) / 4, highs)]
    return [float(x) for x in best["parameters"]]
