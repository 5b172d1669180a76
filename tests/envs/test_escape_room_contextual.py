"""Contextual Escape Room (``n_levers=L >= 2``): the lever's place is drawn per episode and shown to agents and
designer; ``n_levers=1`` is the original game. Conformance, seeding, the gym view and the native batch."""

from __future__ import annotations

import functools
import itertools

import gymnasium
import numpy as np
import pettingzoo
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test, state_test

import incentive_envs
from incentive_envs import escape_room as er
from incentive_envs.escape_room import EscapeRoomEnv
from tests.envs.test_batched import play_against_singles
from tests.envs.test_conformance import max_cycles_check, no_warnings

L = 3


def contextual(**kwargs: object) -> EscapeRoomEnv:
    return EscapeRoomEnv(n_levers=L, **kwargs)  # type: ignore[arg-type]


def test_registered_three_ways_with_three_lever_places_by_default() -> None:
    """PettingZoo parallel and AEC ids, the Gymnasium joint-action and single-agent views, and ``make_batched``."""
    par = pettingzoo.make("parallel", "incentive_envs/escape_room_contextual-v0")
    assert isinstance(par, EscapeRoomEnv) and par.n_levers == er.CONTEXTUAL_LEVERS == 3
    assert pettingzoo.make("aec", "incentive_envs/escape_room_contextual-v0", n_levers=4).unwrapped.n_levers == 4
    joint = gymnasium.make("incentive_envs/EscapeRoomContextual-v0", n_agents=2, min_at_lever=1)
    assert joint.unwrapped.parallel.n_levers == 3
    single = gymnasium.make("incentive_envs/EscapeRoomContextualSingleAgent-v0")
    assert single.action_space == gymnasium.spaces.Discrete(5)
    batch = incentive_envs.make_batched("escape_room_contextual", 2)
    assert isinstance(batch, er.BatchedEscapeRoom) and batch.n_levers == 3
    assert incentive_envs.make_parallel("escape_room_contextual").n_levers == 3
    assert "escape_room_contextual" not in {e.name for e in incentive_envs.ENVS}  # its own suite: this file


def test_spaces_hold_positions_then_the_lever_place() -> None:
    env = contextual(n_agents=2, min_at_lever=1)
    dim = (L + 2) * 2 + L
    assert env.action_space("agent_0") == gymnasium.spaces.Discrete(L + 2)
    assert env.observation_space("agent_0").shape == env.state_space.shape == (dim,)
    obs, infos = env.reset(seed=4)
    lever = infos["agent_0"]["lever"]
    assert env.lever == lever and 0 <= lever < L
    want_context = np.eye(L, dtype=np.float32)[lever]
    start = np.eye(L + 2, dtype=np.float32)[L]
    for a in env.possible_agents:
        np.testing.assert_array_equal(obs[a], np.concatenate([start, start, want_context]))
    np.testing.assert_array_equal(env.state(), np.concatenate([start, start, want_context]))


def test_the_lever_place_is_drawn_per_episode_from_all_places_and_fixed_within() -> None:
    env = contextual(n_agents=2, min_at_lever=1, max_steps=3)
    seen = []
    env.reset(seed=0)
    for _ in range(60):
        _, infos = env.reset()
        lever = infos["agent_0"]["lever"]
        seen.append(lever)
        while env.agents:
            _, _, _, _, infos = env.step({a: env.start for a in env.agents})
            assert all(info["lever"] == lever for info in infos.values())
    counts = np.bincount(seen, minlength=L)
    assert counts.min() >= 10, counts  # each place ~20 of 60


@pytest.mark.parametrize("lever", range(L))
def test_only_agents_at_the_lever_place_open_the_door(lever: int) -> None:
    """Every joint action of ER(2, 1) with the lever at ``lever``, against the rules restated independently."""
    env = contextual(n_agents=2, min_at_lever=1)
    seed = next(s for s in range(100) if env.reset(seed=s)[1]["agent_0"]["lever"] == lever)
    door = L + 1
    for acts in itertools.product(range(L + 2), repeat=2):
        env.reset(seed=seed)
        _, rewards, terms, _, infos = env.step(dict(zip(env.possible_agents, acts, strict=True)))
        door_open = lever in acts
        want = [10.0 if door_open and a == door else (0.0 if a == L else -1.0) for a in acts]
        assert list(rewards.values()) == want, acts
        assert infos["agent_0"]["door_open"] == door_open
        assert terms["agent_0"] == (door_open and door in acts)


def test_one_lever_place_is_the_original_game() -> None:
    """``n_levers=1`` plays the original ER exactly (same spaces, observations, rewards, infos, no draw)."""
    rng = np.random.default_rng(0)
    a, b = EscapeRoomEnv(randomize=True, n_levers=1), EscapeRoomEnv(randomize=True)
    assert a.observation_space("agent_0") == b.observation_space("agent_0")
    for seed in (1, 2, 3):
        assert repr(a.reset(seed=seed)) == repr(b.reset(seed=seed))
        while b.agents:
            acts = {x: int(rng.integers(3)) for x in b.agents}
            assert repr(a.step(acts)) == repr(b.step(acts))
            assert (a.state() == b.state()).all()


def test_pettingzoo_conformance_without_warnings() -> None:
    with no_warnings():
        parallel_api_test(er.contextual_parallel_env(), num_cycles=200)
        api_test(er.contextual_env(), num_cycles=200, verbose_progress=False)
        seed_test(er.contextual_env, num_cycles=100)
        parallel_seed_test(er.contextual_parallel_env, num_cycles=100)
        state_test(er.contextual_env(), er.contextual_parallel_env(), num_cycles=20)


@pytest.mark.parametrize("max_cycles", [1, 4])
def test_max_cycles_truncates_when_nobody_goes_to_any_lever_place(max_cycles: int) -> None:
    class Module:
        parallel_env = staticmethod(er.contextual_parallel_env)
        env = staticmethod(er.contextual_env)

    def start_or_door(agent: str, space: gymnasium.spaces.Space, rng: np.random.Generator) -> int:  # type: ignore[type-arg]
        return int(rng.integers(L, L + 2))

    with no_warnings():
        max_cycles_check(Module, start_or_door, max_cycles=max_cycles)  # type: ignore[arg-type]


def test_multi_step_seed_determinism_and_seeds_differ() -> None:
    """Same seed: same levers and episodes over several resets; other seeds give other lever sequences."""

    def levers(seed: int) -> list[int]:
        env = contextual(randomize=True)
        out = [env.reset(seed=seed)[1]["agent_0"]["lever"]]
        out += [env.reset()[1]["agent_0"]["lever"] for _ in range(11)]
        return out

    assert levers(5) == levers(5)
    assert len({tuple(levers(s)) for s in range(4)}) == 4


def test_gym_view_passes_check_env() -> None:
    with no_warnings():
        check_env(gymnasium.make("incentive_envs/EscapeRoomContextual-v0").unwrapped, skip_render_check=True)
        check_env(gymnasium.make("incentive_envs/EscapeRoomContextualSingleAgent-v0").unwrapped,
                  skip_render_check=True)


@pytest.mark.parametrize("kwargs", [{}, {"n_agents": 3, "min_at_lever": 1, "max_steps": 8, "randomize": True}])
def test_native_batch_equals_single_envs(kwargs: dict[str, object]) -> None:
    """Copy b reset with seed s plays as the single env reset with seed s + b (levers included)."""
    batch = er.contextual_batched_env(3, **kwargs)
    play_against_singles(batch, functools.partial(er.contextual_parallel_env, **kwargs))
    assert set(batch.reset(seed=0)[1]) == {"position", "door_open", "lever"}


def test_ansi_render_names_the_lever_place() -> None:
    env = contextual(n_agents=2, min_at_lever=1, render_mode="ansi")
    _, infos = env.reset(seed=0)
    lever = infos["agent_0"]["lever"]
    other = (lever + 1) % L
    env.step({"agent_0": lever, "agent_1": other})
    assert env.render() == f"step 1: agent_0@lever, agent_1@place{other}; door open"


def test_invalid_lever_count_raises() -> None:
    with pytest.raises(ValueError, match="n_levers"):
        EscapeRoomEnv(n_levers=0)
