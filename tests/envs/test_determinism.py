"""Whole-episode determinism (PettingZoo's parallel seed test compares only the first step) and pickling."""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

from incentive_envs import EnvEntry
from incentive_envs.escape_room import EscapeRoomEnv
from tests.envs.test_conformance import entries, module_of, sample_action


def rollout(env: Any, seed: int, episodes: int = 3, action_seed: int = 0) -> list[Any]:
    """Everything a parallel env returns over ``episodes`` episodes (reset seeded once, then unseeded resets)."""
    rng = np.random.default_rng(action_seed)
    trace: list[Any] = [env.reset(seed=seed)]
    for _ in range(episodes):
        while env.agents:
            actions = {a: sample_action(a, env.action_space(a), rng) for a in env.agents}
            trace.append((actions, env.step(actions), env.state() if hasattr(env, "state_space") else None))
        trace.append(env.reset())
    return trace


def first_difference(a: list[Any], b: list[Any]) -> str | None:
    if len(a) != len(b):
        return f"lengths differ: {len(a)} vs {len(b)}"
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        if not data_equivalence(x, y, exact=True):
            return f"first difference at record {t}: {x!r} vs {y!r}"
    return None


@entries
def test_same_seed_same_multi_episode_trajectory(entry: EnvEntry) -> None:
    """Two fresh envs, same seeds: every observation, reward, flag, info and state is bit-identical."""
    mod = module_of(entry)
    diff = first_difference(rollout(mod.parallel_env(), seed=7), rollout(mod.parallel_env(), seed=7))
    assert diff is None, diff


@entries
def test_aec_whole_episode_determinism(entry: EnvEntry) -> None:
    """The AEC view is deterministic over whole episodes too (``last()`` at every turn)."""

    def aec_trace(seed: int) -> list[Any]:
        env = module_of(entry).env()
        env.reset(seed=seed)
        rng = np.random.default_rng(1)
        trace = []
        for agent in env.agent_iter(max_iter=400):
            obs, rew, term, trunc, info = env.last()
            trace.append((agent, obs, rew, term, trunc, info))
            env.step(None if term or trunc else sample_action(agent, env.action_space(agent), rng))
        return trace

    diff = first_difference(aec_trace(3), aec_trace(3))
    assert diff is None, diff


@entries
@pytest.mark.parametrize("view", ["", "SingleAgent"])
def test_gymnasium_views_are_deterministic(entry: EnvEntry, view: str) -> None:
    """The Gymnasium views replay identically from the same seed (including the SingleAgent's random others)."""

    def trace() -> list[Any]:
        env = gymnasium.make(f"incentive_envs/{entry.gym_name}{view}-v0")
        env.action_space.seed(5)
        out: list[Any] = [env.reset(seed=11)]
        for _ in range(60):
            out.append(step := env.step(env.action_space.sample()))
            if step[2] or step[3]:
                out.append(env.reset())
        return out

    diff = first_difference(trace(), trace())
    assert diff is None, diff


def test_escape_room_randomized_starts_differ_across_seeds_and_repeat_within() -> None:
    """``randomize=True``: different seeds give different starts; unseeded resets continue the seeded RNG."""
    starts = set()
    for seed in range(20):
        obs, _ = EscapeRoomEnv(randomize=True).reset(seed=seed)
        starts.add(obs["agent_0"].tobytes())
    assert len(starts) > 5
    a, b = EscapeRoomEnv(randomize=True), EscapeRoomEnv(randomize=True)
    assert first_difference(rollout(a, seed=1, episodes=4), rollout(b, seed=1, episodes=4)) is None
    c = EscapeRoomEnv(randomize=True)
    assert first_difference(rollout(a, seed=1), rollout(c, seed=2)) is not None


@entries
def test_pickle_round_trip_replays_identically(entry: EnvEntry) -> None:
    """``pickle.loads(pickle.dumps(env))`` replays exactly like the original (PettingZoo's pickle test, but over
    several episodes with ``exact=True``).

    Pickling follows ``EzPickle``: the clone is rebuilt from the constructor arguments, so a mid-episode clone
    starts un-reset (stepping it raises) rather than silently continuing from a half-copied state.
    """
    mod = module_of(entry)
    env = mod.parallel_env()
    clone = pickle.loads(pickle.dumps(env))
    assert first_difference(rollout(env, seed=4), rollout(clone, seed=4)) is None

    env.reset(seed=9)
    mid = pickle.loads(pickle.dumps(env))
    rng = np.random.default_rng(0)
    with pytest.raises(RuntimeError, match="reset"):
        mid.step({a: sample_action(a, env.action_space(a), rng) for a in env.possible_agents})


@entries
def test_aec_env_pickles(entry: EnvEntry) -> None:
    """The AEC env (wrappers included) survives pickling and replays identically."""
    env = module_of(entry).env()
    clone = pickle.loads(pickle.dumps(env))
    for e in (env, clone):
        e.reset(seed=2)
    rng1, rng2 = np.random.default_rng(0), np.random.default_rng(0)
    for a1, a2 in zip(env.agent_iter(max_iter=50), clone.agent_iter(max_iter=50), strict=True):
        assert a1 == a2 and data_equivalence(env.last(), clone.last(), exact=True)
        done = env.terminations[a1] or env.truncations[a1]
        env.step(None if done else sample_action(a1, env.action_space(a1), rng1))
        clone.step(None if done else sample_action(a2, clone.action_space(a2), rng2))
