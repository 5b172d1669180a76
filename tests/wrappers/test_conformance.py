"""Every game of ours, wrapped by the incentive and tax wrappers, passes PettingZoo's checkers with no warnings."""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test
from pettingzoo.utils import parallel_to_aec

import incentive_envs
from wrappers import TAX_INFO_KEYS, IncentiveWrapper, StepContext, TaxWrapper


def _importable(entry: incentive_envs.EnvEntry) -> bool:
    try:
        importlib.import_module(entry.module)
    except ImportError:
        return False
    return True


ENTRIES = [pytest.param(e, id=e.name) for e in incentive_envs.ENVS if _importable(e)]


def demo_incentive(ctx: StepContext) -> dict[str, float]:
    """A non-trivial, deterministic payment: depends on the action (Discrete) or on the agent's index."""
    pay = {}
    for agent in ctx.agents:
        space = ctx.action_spaces[agent]
        action = int(ctx.actions[agent]) if isinstance(space, spaces.Discrete) else 1
        pay[agent] = 0.25 * action - 0.1 * ctx.possible_agents.index(agent)
    return pay


def _wrappers(entry: incentive_envs.EnvEntry) -> dict[str, Callable[[], ParallelEnv]]:
    module = entry.load()
    return {
        "incentive": lambda: IncentiveWrapper(module.parallel_env(), demo_incentive),
        "incentive_scaled": lambda: IncentiveWrapper(
            module.parallel_env(), demo_incentive, budget_per_step=0.3, on_budget="scale"
        ),
        "tax": lambda: TaxWrapper(module.parallel_env(), rates=[0.3] * 7, period=3),
    }


@functools.cache
def _has_own_tax(entry: incentive_envs.EnvEntry) -> bool:
    """Whether the game reports tax keys itself (Gather-Trade-Build taxes inside the env)."""
    env = entry.load().parallel_env()
    env.reset(seed=0)
    _, _, _, _, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
    return any(key in info for info in infos.values() for key in TAX_INFO_KEYS)


def _skip_or_check_own_tax(entry: incentive_envs.EnvEntry, kind: str) -> None:
    """A game with its own tax must make TaxWrapper refuse to overwrite its infos, loudly."""
    if kind != "tax" or not _has_own_tax(entry):
        return
    env = _wrappers(entry)["tax"]()
    with pytest.raises(ValueError, match="already has"):  # at reset when the game's reset infos have tax keys
        env.reset(seed=0)
        env.step({a: env.action_space(a).sample() for a in env.agents})
    pytest.skip(f"{entry.name} taxes inside the env; TaxWrapper refuses to stack (checked)")


def _no_warnings(check: Callable[[], Any]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check()
    assert not caught, [str(w.message) for w in caught]


def _rollout(env: ParallelEnv, seed: int, steps: int) -> list[Any]:
    """Observations, rewards, dones and infos of a seeded episode with seeded random actions."""
    obs, infos = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trace: list[Any] = [obs, infos]
    for _ in range(steps):
        if not env.agents:
            break
        actions = {}
        for agent in env.agents:
            space = env.action_space(agent)
            space.seed(int(rng.integers(2**31)))
            actions[agent] = space.sample()
        trace.append(env.step(actions))
    return trace


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("kind", ["incentive", "incentive_scaled", "tax"])
def test_parallel_checkers(entry: incentive_envs.EnvEntry, kind: str) -> None:
    _skip_or_check_own_tax(entry, kind)
    make = _wrappers(entry)[kind]
    _no_warnings(lambda: parallel_api_test(make(), num_cycles=40))
    _no_warnings(lambda: parallel_seed_test(make))


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("kind", ["incentive", "tax"])
def test_aec_checkers(entry: incentive_envs.EnvEntry, kind: str) -> None:
    _skip_or_check_own_tax(entry, kind)
    make = _wrappers(entry)[kind]
    _no_warnings(lambda: api_test(parallel_to_aec(make()), num_cycles=40))
    _no_warnings(lambda: seed_test(lambda: parallel_to_aec(make()), num_cycles=40))


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("kind", ["incentive", "tax"])
def test_multi_step_determinism(entry: incentive_envs.EnvEntry, kind: str) -> None:
    """``parallel_seed_test`` only compares one step; compare whole episodes, wrapper outputs included."""
    from gymnasium.utils.env_checker import data_equivalence

    _skip_or_check_own_tax(entry, kind)

    make = _wrappers(entry)[kind]
    first, second = _rollout(make(), 7, 40), _rollout(make(), 7, 40)
    assert len(first) == len(second)
    for step, (a, b) in enumerate(zip(first, second)):
        assert data_equivalence(a, b, exact=True), f"trajectories differ at item {step}"
