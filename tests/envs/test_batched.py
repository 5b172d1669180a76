"""The batched multi-agent env interface (:mod:`incentive_envs.vector`).

For every registered game, its native batch (``make_batched``) and the generic adapter (``batch_of``) equal B
single envs seeded s, s + 1, ... step by step over whole episodes of random valid actions, including after a
``reset()`` without a seed; so does the adapter over third-party PettingZoo games. Done copies stay done and
ignore their actions; bad actions name the batch index and the agent; unbatchable games are refused at
construction with the reason.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv

import incentive_envs
from incentive_envs import escape_room, gather_trade_build, ipd, make_batched, matrix_game
from incentive_envs.matrix_game import MatrixGame, MatrixGameEnv
from incentive_envs.matrix_vector import BatchedMatrixGame
from incentive_envs.vector import BatchedParallelEnv, PettingZooBatch, batch_of

ROOT = Path(__file__).resolve().parents[2]
N_ENVS = 3
SEEDS = (11, None, None)  # a seeded reset, then two resets that continue each copy's generator

# Normal-form games with different action counts per player (only the native batch takes them).
BIMATRIX_2X3 = MatrixGame(np.arange(12.0).reshape(2, 3, 2) % 5, name="bimatrix")
THREE_PLAYERS = MatrixGame(np.random.default_rng(0).normal(size=(2, 3, 2, 3)), name="three_players")

# One case per registered game (the test below checks that none is missing), then more parameters.
GAMES: dict[str, dict[str, Any]] = {
    "escape_room": {"randomize": True},  # random starts come from each copy's generator
    "ipd": {"max_cycles": 6},
    "stag_hunt": {"max_cycles": 6},
    "chicken": {"max_cycles": 6},
    "matrix_game": {"max_cycles": 6},  # 3-player public goods (symmetric table)
    "gather_trade_build": {"max_cycles": 23},  # two tax enactments, then part of a period
    "cleanup": {"max_cycles": 30},
    "harvest": {"max_cycles": 20},
}
CASES: list[tuple[str, dict[str, Any]]] = [
    *GAMES.items(),
    ("escape_room", {}),
    ("escape_room", {"n_agents": 3, "min_at_lever": 1, "max_steps": 8, "randomize": True}),
    ("matrix_game", {"game": MatrixGame.from_symmetric_function(lambda a, c: 3 * a - c[1] + 2 * c[2], 4, 3),
                     "max_cycles": 4}),
    ("matrix_game", {"game": BIMATRIX_2X3, "max_cycles": 5}),
    ("matrix_game", {"game": THREE_PLAYERS, "max_cycles": 5}),
    ("cleanup", {"map_name": "large", "max_cycles": 15}),  # rotation, random spawns, penalty beam
    ("harvest", {"ascii_map": ("@@@@@@@", "@AAAAA@", "@AAAAA@", "@P P P@", "@@@@@@@"), "n_agents": 3,
                 "view_radius": 2, "timeout_steps": 3, "max_cycles": 25}),  # time-outs: absent agents
]
HETEROGENEOUS = (BIMATRIX_2X3, THREE_PLAYERS)


def _case_id(case: tuple[str, dict[str, Any]]) -> str:
    name, kwargs = case
    return name + "".join(f"-{k}={getattr(v, 'name', v)}" for k, v in kwargs.items() if k != "ascii_map")


def _single(name: str, kwargs: Mapping[str, Any]) -> Callable[[], ParallelEnv]:
    module = {e.name: e for e in incentive_envs.ENVS}[name].load()
    return functools.partial(module.parallel_env, **kwargs)


# --------------------------------------------------------------------------------------------- helpers
def _assert_rows(batch_values: np.ndarray, single_values: Sequence[Mapping[str, Any]], agents: Sequence[str],
                 what: str) -> None:
    """Row ``[b, i]`` holds what copy b's single env returned for agent i, zeros where it returned nothing."""
    for b, values in enumerate(single_values):
        for i, a in enumerate(agents):
            want = values.get(a, np.zeros_like(batch_values[b, i]))
            np.testing.assert_array_equal(batch_values[b, i], want, err_msg=f"{what}, batch index {b}, {a}")


def _assert_infos(batch_infos: Mapping[str, np.ndarray], single_infos: Sequence[Mapping[str, Mapping[str, Any]]],
                  agents: Sequence[str]) -> None:
    """Every numeric info value is stacked at ``[b, i]`` with its dtype kind; keys an agent lacks hold zeros
    (other values: objects, None where absent)."""
    for b, infos in enumerate(single_infos):
        for i, a in enumerate(agents):
            info = {k: v for k, v in infos.get(a, {}).items() if np.asarray(v).dtype.kind in "biuf"}
            assert info.keys() <= batch_infos.keys(), (b, a, set(info) - set(batch_infos))
            for key, arr in batch_infos.items():
                if arr.dtype == object:
                    assert arr[b, i] == infos.get(a, {}).get(key), (key, b, a)
                elif key in info:
                    assert arr.dtype.kind == np.asarray(info[key]).dtype.kind, (key, arr.dtype)
                    np.testing.assert_array_equal(arr[b, i], info[key], err_msg=f"{key}, batch index {b}, {a}")
                else:
                    assert not np.any(arr[b, i]), (key, b, a)


def _assert_same_now(batch: BatchedParallelEnv, singles: Sequence[ParallelEnv]) -> None:
    agents = batch.possible_agents
    assert batch.active.tolist() == [[a in env.agents for a in agents] for env in singles]
    assert batch.done.tolist() == [not env.agents for env in singles]
    if batch.state_space is not None:
        states = batch.state()
        assert states.shape == (batch.n_envs, *batch.state_space.shape)
        for b, env in enumerate(singles):
            np.testing.assert_array_equal(states[b], env.state(), err_msg=f"state, batch index {b}")


def _random_actions(batch: BatchedParallelEnv, rng: np.random.Generator) -> np.ndarray:
    """Valid random actions for the active agents; junk (ignored, not even range-checked) for the others."""
    acts = (rng.random((batch.n_envs, batch.n_agents)) * np.array(batch.action_counts)).astype(np.int64)
    acts[~batch.active] = -99
    return acts


def play_against_singles(batch: BatchedParallelEnv, make_single: Callable[[], ParallelEnv],
                         seeds: Sequence[int | None] = SEEDS, rng_seed: int = 0) -> list[list[int]]:
    """Play one episode per seed on the batch and on B single envs (copy b seeded ``seed + b``) with the same
    random actions, asserting equal observations, rewards, terminations, truncations, infos, states and active
    agents after every call. Returns each episode's finishing step of every copy."""
    rng = np.random.default_rng(rng_seed)
    agents = batch.possible_agents
    singles = [make_single() for _ in range(batch.n_envs)]
    finished = []
    for seed in seeds:
        obs, infos = batch.reset(seed=seed)
        pairs = [env.reset(seed=None if seed is None else seed + b) for b, env in enumerate(singles)]
        assert obs.shape == (batch.n_envs, batch.n_agents, *batch.observation_space.shape)
        assert obs.dtype == batch.observation_space.dtype
        _assert_rows(obs, [o for o, _ in pairs], agents, "reset observation")
        _assert_infos(infos, [i for _, i in pairs], agents)
        _assert_same_now(batch, singles)
        end = [0] * batch.n_envs
        t = 0
        while not batch.done.all():
            t += 1
            acts = _random_actions(batch, rng)
            obs, rew, term, trunc, infos = batch.step(acts)
            outs = [env.step({a: int(acts[b, i]) for i, a in enumerate(agents) if a in env.agents})
                    if env.agents else ({}, {}, {}, {}, {}) for b, env in enumerate(singles)]
            assert rew.dtype == np.float64 and term.dtype == trunc.dtype == np.bool_
            for k, what in enumerate(("observation", "reward", "termination", "truncation")):
                _assert_rows((obs, rew, term, trunc)[k], [out[k] for out in outs], agents, f"{what} at step {t}")
            _assert_infos(infos, [out[4] for out in outs], agents)
            _assert_same_now(batch, singles)
            end = [t if batch.done[b] and not end[b] else end[b] for b in range(batch.n_envs)]
        finished.append(end)
    return finished


# --------------------------------------------------------------------------------------------- equivalence
def test_every_registered_game_is_tested_and_batched_natively() -> None:
    assert set(GAMES) == {e.name for e in incentive_envs.ENVS}
    for entry in incentive_envs.ENVS:
        batch = make_batched(entry.name, 2, **GAMES[entry.name])
        assert not isinstance(batch, PettingZooBatch), entry.name
        assert hasattr(entry.load(), "batched_env")
        assert batch.metadata["autoreset_mode"] == "disabled" and batch.n_envs == 2
    assert isinstance(make_batched("incentive_envs/ipd-v0", 1), BatchedMatrixGame)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_native_batch_equals_single_envs_seeded_s_plus_b(case: tuple[str, dict[str, Any]]) -> None:
    name, kwargs = case
    play_against_singles(make_batched(name, N_ENVS, **kwargs), _single(name, kwargs))


@pytest.mark.parametrize("case", [c for c in CASES if c[1].get("game") not in HETEROGENEOUS], ids=_case_id)
def test_generic_adapter_equals_single_envs_seeded_s_plus_b(case: tuple[str, dict[str, Any]]) -> None:
    name, kwargs = case
    play_against_singles(batch_of(_single(name, kwargs), N_ENVS), _single(name, kwargs))


@pytest.mark.parametrize("make", [escape_room.batched_env, lambda b, **kw: batch_of(
    functools.partial(escape_room.parallel_env, **kw), b)], ids=["native", "generic"])
def test_escape_room_copies_finish_at_different_steps(make: Callable[..., BatchedParallelEnv]) -> None:
    single = functools.partial(escape_room.parallel_env, max_steps=6)
    finished = play_against_singles(make(6, max_steps=6), single, seeds=(0, None, 5))
    assert all(1 <= t <= 6 for ends in finished for t in ends)
    assert any(len(set(ends)) > 1 for ends in finished), finished


def test_third_party_pursuit_through_the_adapter() -> None:
    pytest.importorskip("pygame", reason="PettingZoo's stock envs import pygame")
    from pettingzoo.sisl import pursuit_v5

    make = functools.partial(pursuit_v5.parallel_env, max_cycles=12, n_evaders=6)
    batch = batch_of(make, N_ENVS)
    assert batch.state_space is not None and batch.observation_space.shape == (7, 7, 3)
    play_against_singles(batch, make, seeds=(3, None))


class Dwindling(ParallelEnv):
    """A third-party-style game whose agents leave one by one at random steps (the adapter's absent agents)."""

    metadata = {"name": "dwindling_v0"}

    def __init__(self, obs_space: Any = None, act_space: Any = None, n_agents: int = 3) -> None:
        self.possible_agents = [f"p{i}" for i in range(n_agents)]
        self._obs = obs_space if obs_space is not None else spaces.Box(-1.0, 9.0, (2,), np.float32)
        self._act = act_space if act_space is not None else spaces.Discrete(4)
        self.agents: list[str] = []
        self.rng = np.random.default_rng()

    def observation_space(self, agent: str) -> Any:
        return self._obs[agent] if isinstance(self._obs, dict) else self._obs

    def action_space(self, agent: str) -> Any:
        return self._act

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.leave = {a: int(self.rng.integers(1, 6)) for a in self.agents}
        self.t = 0
        return self._obs_of(), {a: {"left_at": self.leave[a], "tag": "x"} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        self.t += 1
        gone = {a: self.t >= self.leave[a] for a in self.agents}
        obs, rew = self._obs_of(), {a: float(actions[a]) - 0.5 for a in self.agents}
        infos = {a: {"t": self.t, "score": float(self.rng.random())} for a in self.agents}
        self.agents = [a for a in self.agents if not gone[a]]
        return obs, rew, gone, dict.fromkeys(gone, False), infos

    def _obs_of(self) -> dict:
        return {a: np.array([self.t, i], dtype=np.float32) for i, a in enumerate(self.agents)}


def test_adapter_with_agents_leaving_at_different_steps() -> None:
    batch = batch_of(Dwindling, 4)
    finished = play_against_singles(batch, Dwindling, seeds=(1, None, 2))
    assert any(len(set(ends)) > 1 for ends in finished)
    _, infos = batch.reset(seed=0)
    assert infos["tag"].dtype == object and infos["tag"][0, 0] == "x"  # non-numeric infos as objects


# --------------------------------------------------------------------------------------------- done copies
def test_a_done_copy_stays_done_and_ignores_actions() -> None:
    for batch in (escape_room.batched_env(8, max_steps=6),
                  batch_of(functools.partial(escape_room.parallel_env, max_steps=6), 8)):
        batch.reset(seed=0)
        rng = np.random.default_rng(1)
        while not batch.done.any():
            batch.step(_random_actions(batch, rng))
        done = batch.done
        assert not done.all()
        frozen = batch.state()[done]
        for junk in (-5, 7, 2, 0):
            acts = _random_actions(batch, rng)
            acts[done] = junk
            obs, rew, term, trunc, infos = batch.step(acts)
            assert not obs[done].any() and not rew[done].any() and not term[done].any() and not trunc[done].any()
            assert all(not v[done].any() for v in infos.values())
            assert batch.done[done].all() and not batch.active[done].any()
            np.testing.assert_array_equal(batch.state()[done], frozen)


@pytest.mark.parametrize("name", list(GAMES))
def test_after_the_episode_steps_are_no_ops_until_reset(name: str) -> None:
    batch = make_batched(name, 2, **GAMES[name])
    batch.reset(seed=4)
    rng = np.random.default_rng(0)
    while not batch.done.all():
        batch.step(_random_actions(batch, rng))
    state = batch.state()
    obs, rew, term, trunc, _ = batch.step(np.full((2, batch.n_agents), 10**6))
    assert not (obs.any() or rew.any() or term.any() or trunc.any()) and batch.done.all()
    np.testing.assert_array_equal(batch.state(), state)
    batch.reset()
    assert batch.active.all()


# --------------------------------------------------------------------------------------------- bad actions
def _pursuit() -> ParallelEnv:
    pytest.importorskip("pygame", reason="PettingZoo's stock envs import pygame")
    from pettingzoo.sisl import pursuit_v5

    return pursuit_v5.parallel_env(max_cycles=5)


BAD_ACTION_BATCHES: list[tuple[str, Callable[[], BatchedParallelEnv]]] = [
    *((name, functools.partial(make_batched, name, 3, **kw)) for name, kw in GAMES.items()),
    ("matrix_game bimatrix 2x3", functools.partial(matrix_game.batched_env, 3, game=BIMATRIX_2X3)),
    ("escape_room generic", lambda: batch_of(escape_room.parallel_env, 3)),
    ("pursuit generic", lambda: batch_of(_pursuit, 3)),
]


@pytest.mark.parametrize("make", [m for _, m in BAD_ACTION_BATCHES], ids=[n for n, _ in BAD_ACTION_BATCHES])
def test_bad_actions_name_the_batch_index_and_the_agent(make: Callable[[], BatchedParallelEnv]) -> None:
    batch = make()
    batch.reset(seed=0)
    agents, n = batch.possible_agents, batch.n_agents
    good = np.zeros((3, n), dtype=np.int64)
    state = batch.state() if batch.state_space is not None else None

    def refused(actions: Any, *words: str) -> None:
        with pytest.raises(ValueError) as err:
            batch.step(actions)
        for word in ("batch index", *words):
            assert word in str(err.value), (word, str(err.value))

    refused(np.zeros((3, n + 1), dtype=np.int64), agents[-1], f"column {n} is no agent")
    refused(np.zeros((3, n - 1), dtype=np.int64), f"no action for {agents[-1]}")
    refused(np.zeros((2, n), dtype=np.int64), "no actions for batch index 2")
    refused(np.zeros((4, n), dtype=np.int64), "batch index 3 does not exist")
    refused(np.zeros(3, dtype=np.int64), agents[0])
    refused(good.astype(bool), "batch index 0", agents[0], "not an integer", "bool")
    halves = good.astype(np.float64)
    halves[1, n - 1] = 0.5
    refused(halves, f"batch index 1, {agents[n - 1]}: action 0.5 is not an integer")
    refused(good.astype(np.float32), f"batch index 0, {agents[0]}", "float32")
    refused([[0] * (n - 1) + [None]] * 3, f"batch index 0, {agents[n - 1]}")
    too_big = good.copy()
    too_big[2, n - 1] = batch.action_counts[n - 1]
    refused(too_big, f"batch index 2, {agents[n - 1]}: action {batch.action_counts[n - 1]} is outside Discrete")
    negative = good.copy()
    negative[1, 0] = -1
    refused(negative, f"batch index 1, {agents[0]}: action -1 is outside Discrete")
    if state is not None:  # a refused step changes nothing
        np.testing.assert_array_equal(batch.state(), state)
    batch.step(good)


def test_step_before_reset_and_bad_seeds_and_sizes() -> None:
    for make in (lambda b: make_batched("escape_room", b), lambda b: batch_of(escape_room.parallel_env, b)):
        with pytest.raises(RuntimeError, match="before reset"):
            make(2).step(np.zeros((2, 5), dtype=np.int64))
        for seed in (-1, True, 1.5):
            with pytest.raises(ValueError, match="seed"):
                make(2).reset(seed=seed)
        for n_envs in (0, True, 2.0):
            with pytest.raises(ValueError, match="n_envs"):
                make(n_envs)


# --------------------------------------------------------------------------------------------- unbatchable
def test_unbatchable_games_are_refused_at_construction_with_the_reason() -> None:
    box = spaces.Box(0.0, 1.0, (2,), np.float32)
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: batch_of(lambda: Dwindling(obs_space=spaces.Discrete(5)), 2), "needs Box observations"),
        (lambda: batch_of(lambda: Dwindling(obs_space=spaces.Dict({"x": box})), 2), "needs Box observations"),
        (lambda: batch_of(lambda: Dwindling(act_space=spaces.Box(-1, 1, (2,))), 2), "Discrete actions"),
        (lambda: batch_of(lambda: Dwindling(act_space=spaces.Discrete(3, start=1)), 2), "must start at 0"),
        (lambda: batch_of(lambda: Dwindling(obs_space={"p0": box, "p1": box, "p2": spaces.Box(0, 1, (3,))}), 2),
         "copy 0, p2 has the spaces"),
        (lambda: PettingZooBatch([Dwindling, functools.partial(Dwindling, n_agents=2)]), "copy 1 has agents"),
        (lambda: PettingZooBatch([ipd.parallel_env, functools.partial(matrix_game.parallel_env, game=BIMATRIX_2X3)]),
         "copy 1, player_0 has the spaces"),
        (lambda: batch_of(functools.partial(matrix_game.parallel_env, game=BIMATRIX_2X3), 2),
         "every agent needs"),  # differing action spaces: only the native batch takes them
        (lambda: batch_of(functools.partial(gather_trade_build.parallel_env, observation_mode="dict"), 2),
         "needs Box observations"),
        (lambda: make_batched("gather_trade_build", 2, observation_mode="dict"), "observation_mode='dict'"),
        (lambda: BatchedMatrixGame(type("Tweaked", (MatrixGameEnv,), {})(), 2), "Tweaked cannot be batched"),
        (lambda: batch_of(lambda: object(), 2), "must build PettingZoo ParallelEnvs"),
    ]
    for build, reason in cases:
        with pytest.raises(TypeError, match=r"cannot be batched|must build") as err:
            build()
        assert reason in str(err.value), (reason, str(err.value))
    pytest.importorskip("pygame", reason="PettingZoo's stock envs import pygame")
    from pettingzoo.classic import rps_v2

    with pytest.raises(TypeError, match=r"cannot be batched: it needs Box observations .*Discrete\(4\)"):
        batch_of(rps_v2.parallel_env, 2)
    with pytest.raises(ValueError, match="unknown game 'tic_tac_toe'; registered games"):
        make_batched("tic_tac_toe", 2)


# --------------------------------------------------------------------------------------------- GTB taxes
def test_gtb_batched_tax_interface_equals_single_envs() -> None:
    """Per-world rates set at the start of each period give the single envs' rewards, taxes and states."""
    b_size, seed = 3, 8
    batch = gather_trade_build.batched_env(b_size, max_cycles=30)
    singles = [gather_trade_build.parallel_env(max_cycles=30) for _ in range(b_size)]
    rng = np.random.default_rng(2)
    batch.reset(seed=seed)
    for b, env in enumerate(singles):
        env.reset(seed=seed + b)
    enacted = 0
    while not batch.done.all():
        if batch.tax_cycle_position == 1:
            rates = rng.uniform(0, 0.6, size=(b_size, 7))
            batch.set_tax_rates(rates)
            for b, env in enumerate(singles):
                assert env.tax_cycle_position == 1
                env.set_tax_rates(rates[b])
        acts = _random_actions(batch, rng)
        _, rew, _, _, infos = batch.step(acts)
        outs = [env.step({a: int(acts[b, i]) for i, a in enumerate(env.possible_agents)}) for b, env in
                enumerate(singles)]
        _assert_rows(rew, [out[1] for out in outs], batch.possible_agents, "reward")
        _assert_infos(infos, [out[4] for out in outs], batch.possible_agents)
        enacted += int(infos["tax_enacted"].all())
        np.testing.assert_array_equal(batch.tax_rates, np.stack([env.tax_rates for env in singles]))
        np.testing.assert_array_equal(batch.state(), np.stack([env.state() for env in singles]))
    assert enacted == 3 and infos["tax_paid"].any()
    assert batch.state().shape == (b_size, batch.schema.state_size)
    assert infos["action_mask"].shape == (b_size, 4, 50) and infos["marginal_rates"].shape == (b_size, 4, 7)
    with pytest.raises(RuntimeError, match="after the episode"):
        batch.set_tax_rates(np.zeros((b_size, 7)))


# --------------------------------------------------------------------------------------------- benchmark
def test_benchmark_script_runs(tmp_path: Path) -> None:
    out_file = tmp_path / "speed.json"
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "benchmarks" / "batched_env_speed.py"), "--seconds", "0.05",
         "--batch-sizes", "1", "2", "--games", "escape_room", "ipd", "--output", str(out_file)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "native" in out.stdout and "batch_of" in out.stdout
    report = json.loads(out_file.read_text())
    assert {"machine", "results"} <= set(report) and len(report["results"]) == 4
