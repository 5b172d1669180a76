"""Runtime checks shared by every env in this package and by the wrappers and designer built on it.

All checks ``raise`` (never ``assert``) so that they survive ``python -O``: a bad action that slips
through silently corrupts a learning signal, which is worse than a crash.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = [
    "check_agent_set",
    "check_joint_action",
    "check_positive_int",
    "check_probability",
    "coerce_discrete",
    "coerce_joint_discrete",
    "finite_vector",
    "require_started",
]


def require_started(started: bool, agents: Collection[str]) -> None:
    """Raise ``RuntimeError`` when ``step`` is called before ``reset`` or after the episode ended."""
    if not started:
        raise RuntimeError("step() called before reset(); call reset() first")
    if not agents:
        raise RuntimeError("step() called after the episode finished; call reset() first")


def coerce_discrete(agent: str, action: Any, space: spaces.Discrete) -> int:
    """Return ``action`` as a Python ``int`` if it is a valid element of ``space``, else raise ``ValueError``.

    Accepts Python/NumPy integers and 0-d integer arrays; rejects floats, bools, arrays of other shapes and
    out-of-range values, naming the agent and the value.
    """
    if isinstance(action, np.ndarray):
        if action.shape != () or not np.issubdtype(action.dtype, np.integer):
            raise ValueError(
                f"{agent}: action {action!r} (shape {action.shape}, dtype {action.dtype}) is not a scalar "
                f"integer in {space}"
            )
        action = action.item()
    if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
        raise ValueError(
            f"{agent}: action {action!r} of type {type(action).__name__} is not an integer in {space}"
        )
    value = int(action)
    if not space.start <= value < space.start + space.n:
        raise ValueError(f"{agent}: action {value} is outside {space}")
    return value


def check_agent_set(actions: Mapping[str, Any], agents: Collection[str]) -> None:
    """Raise ``TypeError`` unless ``actions`` is a mapping and ``KeyError`` unless its keys are ``agents``.

    The ``KeyError`` lists the missing agents and the unexpected (dead or unknown) ones.
    """
    if not isinstance(actions, Mapping):
        raise TypeError(f"actions must be a dict keyed by agent, got {type(actions).__name__}")
    if len(actions) == len(agents) and all(a in actions for a in agents):
        return
    live = set(agents)
    given = set(actions)
    missing = sorted(live - given)
    unexpected = sorted(given - live, key=str)
    raise KeyError(
        f"joint action must name exactly the live agents; missing {missing}, unexpected {unexpected}"
    )


def coerce_joint_discrete(
    actions: Mapping[str, Any], agents: Sequence[str], action_spaces: Sequence[spaces.Discrete]
) -> list[int]:
    """Check a joint action over ``Discrete`` spaces and return it as ``int``s in ``agents`` order.

    The one-pass fast path for games whose agents all act in ``Discrete`` spaces: the agent-set check of
    :func:`check_agent_set`, then :func:`coerce_discrete` on every action; ``action_spaces[i]`` belongs to
    ``agents[i]``.
    """
    check_agent_set(actions, agents)
    return [coerce_discrete(a, actions[a], s) for a, s in zip(agents, action_spaces, strict=True)]


def check_joint_action(
    actions: Mapping[str, Any],
    agents: Collection[str],
    action_space: Any,
) -> None:
    """Check that ``actions`` names exactly the live ``agents`` and that each action lies in its space.

    Args:
        actions: the joint action passed to ``step``.
        agents: the live agents.
        action_space: ``env.action_space`` (a callable agent -> space).

    Raises:
        TypeError: ``actions`` is not a mapping.
        KeyError: agents are missing or unexpected (dead or unknown); both lists are named.
        ValueError: an action is outside its agent's space (agent, value and space are named).
    """
    check_agent_set(actions, agents)
    for agent in agents:
        space = action_space(agent)
        action = actions[agent]
        if isinstance(space, spaces.Discrete):
            coerce_discrete(agent, action, space)
            continue
        if isinstance(space, spaces.Box):
            arr = np.asarray(action)
            if arr.shape != space.shape:
                raise ValueError(f"{agent}: action shape {arr.shape} does not match {space}")
            if not np.all(np.isfinite(arr.astype(np.float64))):
                raise ValueError(f"{agent}: action {action!r} is not finite")
        if not space.contains(
            np.asarray(action, dtype=space.dtype) if isinstance(space, spaces.Box) else action
        ):
            raise ValueError(f"{agent}: action {action!r} is outside {space}")


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as ``int`` if it is an integer ``>= minimum``, else raise ``ValueError``.

    Bools and non-integers (``3.0`` included) are rejected, so a flag or a float never passes as a count.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_seed(seed: Any) -> int | None:
    """Return ``seed`` as ``int`` (or None) if it is None or an integer ``>= 0``, else raise ``ValueError``."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
    return int(seed)


def finite_vector(name: str, values: Any) -> np.ndarray:
    """``values`` as a non-empty 1-D float64 array; ``ValueError`` on its shape, ``FloatingPointError`` on NaN/inf.

    Both errors name ``name``; the second also lists the values.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise FloatingPointError(f"{name} must be finite, got {arr.tolist()}")
    return arr


def check_probability(name: str, value: Any) -> float:
    """Return ``value`` as ``float`` if it is a finite number in [0, 1], else raise ``ValueError``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v
