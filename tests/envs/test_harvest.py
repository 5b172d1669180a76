"""Harvest rules: regrowth probabilities, the penalty beam with time-outs, rotation, conformance, determinism."""

from __future__ import annotations

import math
import warnings

import gymnasium
import numpy as np
import pytest
from pettingzoo.test import api_test, max_cycles_test, parallel_api_test, parallel_seed_test, seed_test

import incentive_envs  # noqa: F401  (registers the Gymnasium ids)
from incentive_envs import harvest
from incentive_envs.ssd.engine import APPLE, EMPTY, BatchedSSD

STAY, CW, CCW, FIRE = 4, 5, 6, 7
YELLOW = (255, 255, 0)
SMALL = ("@@@@@@@@@", "@AAAAAAA@", "@AAAAAAA@", "@P  P  P@", "@@@@@@@@@")


def _batch(b: int = 1, seed: int = 0, **params: object) -> BatchedSSD:
    defaults: dict[str, object] = {"ascii_map": SMALL, "n_agents": 3, "view_radius": 2, "random_spawn": False}
    engine = harvest.make_batch(b, **{**defaults, **params})
    engine.reset(seed=seed)
    return engine


def _line_up(engine: BatchedSSD) -> None:
    """agent_0 at (3, 1) facing east, agent_1 at (3, 4), agent_2 at (3, 7), all on the bottom row."""
    engine.set_agent(0, 2, (1, 7))  # out of the way first (fixed spawns put agent_2 at (3, 1))
    engine.set_agent(0, 0, (3, 1), orientation=1)
    engine.set_agent(0, 1, (3, 4))
    engine.set_agent(0, 2, (3, 7))


def test_reset_fills_every_apple_cell_and_spaces() -> None:
    env = harvest.parallel_env()
    env.reset(seed=0)
    cells = env.engine.cell_grid()[0]
    chars = np.array([list(r) for r in harvest.make_batch(1).config.ascii_map])
    assert np.array_equal(cells == APPLE, chars == "A")
    assert env.action_space("agent_0").n == 8 and len(env.possible_agents) == 5
    assert env.observation_space("agent_0").shape == (15, 15, 3)
    assert env.state().shape == (18, 40, 3)
    pos = env.engine.positions()[0]
    assert all(chars[r, c] == "P" for r, c in pos) and len({tuple(p) for p in pos}) == 5


def test_regrowth_probabilities_are_exact() -> None:
    engine = _batch()
    apples = [(1, 1), (1, 2), (2, 1), (1, 6)]
    engine.set_cells(0, [(r, c) for r in (1, 2) for c in range(1, 8)], EMPTY)
    engine.set_cells(0, apples, APPLE)
    probs = engine.regrowth_probabilities()[0].reshape(2, 7)  # row-major apple cells (1..2, 1..7)
    table = [0.0, 0.005, 0.02, 0.05]

    def expected(r: int, c: int) -> float:
        # SSD counts apples at offsets with dr**2 + dc**2 <= 2, i.e. the 3x3 square (the cell included)
        k = sum(1 for ar, ac in apples if (ar - r) ** 2 + (ac - c) ** 2 <= 2)
        return table[min(k, 3)]

    for r in (1, 2):
        for c in range(1, 8):
            assert probs[r - 1, c - 1] == expected(r, c), (r, c)
    assert probs[1, 1] == 0.05  # (2, 2) sees 3 apples
    assert probs[0, 2] == 0.005  # (1, 3) sees only (1, 2); (1, 1) and (2, 1) are two columns away
    assert probs[0, 3] == 0.0  # (1, 4): the apple at (1, 2) is at distance 2, outside SSD's neighbourhood


def test_regrowth_rate_matches_probability() -> None:
    n = 20000
    engine = _batch(n, seed=3)
    cells = [(r, c) for r in (1, 2) for c in range(1, 8)]
    for b in range(n):
        engine.set_cells(b, cells, EMPTY)
        engine.set_cells(b, [(1, 1), (1, 2), (2, 1)], APPLE)
    engine.step(np.full((n, 3), STAY))
    grown = engine.cell_grid()[:, 2, 2] == APPLE
    assert abs(grown.mean() - 0.05) < 4 * math.sqrt(0.05 * 0.95 / n)
    assert not (engine.cell_grid()[:, 1, 5] == APPLE).any()  # no apple nearby: probability 0


def test_penalty_beam_costs_hits_and_times_out() -> None:
    engine = _batch(timeout_steps=3)
    _line_up(engine)
    _, rewards, _, info = engine.step(np.array([[FIRE, STAY, STAY]]))
    assert rewards.tolist() == [[-1.0, -50.0, 0.0]]  # agent_2 is behind agent_1: the lane stopped there
    assert info["fired"].tolist() == [[True, False, False]]
    assert info["tagged"].tolist() == [[False, True, False]]
    assert info["present"].tolist() == [[True, False, True]]
    beam = {(int(r) - 1, int(c) - 1) for r, c in zip(*np.nonzero(np.all(engine.state()[0] == YELLOW, axis=-1)))}
    assert {(3, 2), (3, 3), (3, 4)} <= beam and (3, 5) not in beam
    # side lanes start beside the agent: north from (2, 1) over the apples for 5 cells; south is the wall
    assert {(2, 1), (2, 2), (2, 5)} <= beam and (2, 6) not in beam and (4, 1) not in beam
    present = []
    for _ in range(3):
        _, rewards, _, info = engine.step(np.array([[FIRE, 0, STAY]]))  # agent_1's moves are ignored
        present.append(bool(info["present"][0, 1]))
        assert rewards[0, 1] == 0.0
    assert present == [False, False, True]  # removed for exactly 3 steps, then back on a spawn point
    assert tuple(engine.positions()[0, 1]) in {(3, 1), (3, 4), (3, 7)}


def test_without_timeout_hit_agents_stay_as_in_ssd() -> None:
    engine = _batch(timeout_steps=0)
    _line_up(engine)
    _, rewards, _, info = engine.step(np.array([[FIRE, STAY, STAY]]))
    assert rewards.tolist() == [[-1.0, -50.0, 0.0]]
    assert info["present"].all()


def test_turns_and_relative_moves() -> None:
    engine = _batch()
    engine.set_agent(0, 0, (3, 2), orientation=0)
    engine.step(np.array([[CCW, STAY, STAY]]))  # facing west
    assert engine.orient[0, 0] == 3
    engine.step(np.array([[1, STAY, STAY]]))  # "right" when facing west = north
    assert engine.positions()[0, 0].tolist() == [2, 2]


def test_apple_eaten_and_not_regrown_under_agent() -> None:
    engine = _batch(rotation=False, random_orientation=False, penalty_beam=False)
    assert engine.n_actions == 5
    engine.set_agent(0, 0, (3, 2))
    _, rewards, _, info = engine.step(np.array([[2, STAY, STAY]]))  # up onto the apple at (2, 2)
    assert rewards[0, 0] == 1.0 and info["apple"][0, 0]
    assert engine.cell_grid()[0][2, 2] == EMPTY


@pytest.mark.parametrize("params", [{"max_steps": 30}, {"ascii_map": SMALL, "n_agents": 3, "view_radius": 2}])
def test_pettingzoo_and_gymnasium_conformance(params: dict[str, object]) -> None:
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(harvest.parallel_env(**params), num_cycles=100)
        api_test(harvest.env(**params), num_cycles=100)
        seed_test(lambda: harvest.env(**params), num_cycles=40)
        parallel_seed_test(lambda: harvest.parallel_env(**params), num_cycles=40)
        check_env(gymnasium.make("incentive_envs/Harvest-v0", **params).unwrapped)
        check_env(gymnasium.make("incentive_envs/HarvestSingleAgent-v0", **params).unwrapped)
    assert [str(w.message) for w in caught] == []


def test_max_cycles() -> None:
    max_cycles_test(harvest)


def test_multi_step_determinism_with_timeouts() -> None:
    actions = np.random.default_rng(0).integers(0, 8, size=(80, 3))

    def rollout(seed: int) -> list[bytes]:
        env = harvest.parallel_env(ascii_map=SMALL, n_agents=3, view_radius=2, timeout_steps=4, max_steps=80)
        env.reset(seed=seed)
        out = []
        for a in actions:
            obs, rew, _, _, info = env.step({f"agent_{i}": int(x) for i, x in enumerate(a)})
            out.append(b"".join(o.tobytes() for o in obs.values()) + repr((rew, info)).encode())
        return out

    first = rollout(6)
    assert first == rollout(6) and first != rollout(7)
    assert any(b"'tagged': True" in step for step in first)  # the scenario exercised the time-out path


def test_bad_harvest_map_raises() -> None:
    with pytest.raises(ValueError, match="unknown character 'H'"):
        harvest.parallel_env(ascii_map=["@@@@", "@PH@", "@PA@", "@@@@"], n_agents=2)
