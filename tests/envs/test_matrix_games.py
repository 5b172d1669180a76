"""Iterated matrix games: payoff tables, episode boundaries, observation encoding and table validation."""

from __future__ import annotations

import dataclasses
import itertools
from types import ModuleType

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from incentive_envs import chicken, ipd, stag_hunt
from incentive_envs.matrix_game import MatrixGame, MatrixGameEnv

# Game module -> {(a0, a1): (r0, r1)}, written out from each module's documented table.
TWO_PLAYER_TABLES: dict[ModuleType, dict[tuple[int, int], tuple[float, float]]] = {
    ipd: {(0, 0): (3, 3), (0, 1): (0, 5), (1, 0): (5, 0), (1, 1): (1, 1)},
    stag_hunt: {(0, 0): (4, 4), (0, 1): (0, 3), (1, 0): (3, 0), (1, 1): (2, 2)},
    chicken: {(0, 0): (0, 0), (0, 1): (-1, 1), (1, 0): (1, -1), (1, 1): (-10, -10)},
}
GAMES = pytest.mark.parametrize("mod", list(TWO_PLAYER_TABLES), ids=lambda m: m.__name__.rsplit(".", 1)[-1])


def play(env: MatrixGameEnv, acts: tuple[int, ...]) -> tuple:
    return env.step(dict(zip(env.possible_agents, acts, strict=True)))


@GAMES
def test_every_joint_action_pays_the_documented_table(mod: ModuleType) -> None:
    """Each of the four joint actions pays exactly the documented (r0, r1), as Python floats."""
    env = mod.parallel_env(max_cycles=10)
    env.reset(seed=0)
    for acts, want in TWO_PLAYER_TABLES[mod].items():
        _, rewards, *_ = play(env, acts)
        assert (rewards["player_0"], rewards["player_1"]) == want, acts
        assert all(type(r) is float for r in rewards.values())


def test_dilemma_orderings() -> None:
    """The tables have the orderings their docstrings claim (PD: T>R>P>S, 2R>T+S; SH: R>T>P>S; chicken: T>R>S>P)."""
    r, s, t, p = ipd.PAYOFFS
    assert t > r > p > s and 2 * r > t + s
    r, s, t, p = stag_hunt.PAYOFFS
    assert r > t > p > s and p - s > r - t
    r, s, t, p = chicken.PAYOFFS
    assert t > r > s > p


@GAMES
def test_spaces_names_and_agents(mod: ModuleType) -> None:
    env = mod.parallel_env()
    assert env.possible_agents == ["player_0", "player_1"]
    assert env.action_space("player_1") == spaces.Discrete(2)
    assert env.observation_space("player_0") == spaces.Box(0.0, 1.0, (6,), np.float32)
    assert env.metadata["name"] == f"{mod.__name__.rsplit('.', 1)[-1]}_v0"
    assert env.max_cycles == 100


@GAMES
@pytest.mark.parametrize("max_cycles", [1, 2, 5])
def test_last_round_truncates_and_nothing_terminates(mod: ModuleType, max_cycles: int) -> None:
    """Rounds 1..T-1 neither end; round T truncates every player; termination never happens; reset restarts."""
    env = mod.parallel_env(max_cycles=max_cycles)
    for _ in range(2):
        env.reset()
        for t in range(1, max_cycles + 1):
            _, _, terms, truncs, _ = play(env, (t % 2, 0))
            assert set(terms.values()) == {False}
            assert set(truncs.values()) == {t == max_cycles}
            assert env.agents == ([] if t == max_cycles else env.possible_agents)
        with pytest.raises(RuntimeError, match="finished"):
            play(env, (0, 0))
        assert env.step({}) == ({}, {}, {}, {}, {})  # PettingZoo's no-op convention for a finished env


def test_first_observation_is_no_previous_round_and_never_all_zeros() -> None:
    """Before round 1 every block has its "no previous round" slot (index k) set; the state agrees."""
    env = ipd.parallel_env()
    obs, infos = env.reset(seed=3)
    want = np.array([0, 0, 1, 0, 0, 1], dtype=np.float32)
    for agent in env.possible_agents:
        assert obs[agent].dtype == np.float32 and np.array_equal(obs[agent], want)
        assert infos[agent] == {}
    np.testing.assert_array_equal(env.state(), want)


@pytest.mark.parametrize(
    ("acts", "obs0", "obs1"),
    [
        ((0, 1), [1, 0, 0, 0, 1, 0], [0, 1, 0, 1, 0, 0]),
        ((1, 1), [0, 1, 0, 0, 1, 0], [0, 1, 0, 0, 1, 0]),
        ((1, 0), [0, 1, 0, 1, 0, 0], [1, 0, 0, 0, 1, 0]),
    ],
)
def test_observation_is_own_last_action_then_the_others(
    acts: tuple[int, int], obs0: list, obs1: list
) -> None:
    """After a round each player sees its own last action first, then the other's; state() is player 0's view."""
    env = ipd.parallel_env()
    env.reset()
    obs, *_ = play(env, acts)
    np.testing.assert_array_equal(obs["player_0"], np.array(obs0, dtype=np.float32))
    np.testing.assert_array_equal(obs["player_1"], np.array(obs1, dtype=np.float32))
    np.testing.assert_array_equal(env.state(), obs["player_0"])
    assert env.state_space.contains(env.state())


def test_asymmetric_action_counts_encoding() -> None:
    """Players with different numbers of actions: block sizes k_i + 1, ordered own block first."""
    table = np.arange(2 * 3 * 2, dtype=float).reshape(2, 3, 2)
    env = MatrixGameEnv(MatrixGame(table), max_cycles=3)
    assert [env.action_space(a).n for a in env.possible_agents] == [2, 3]
    obs, _ = env.reset()
    np.testing.assert_array_equal(obs["player_0"], [0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(obs["player_1"], [0, 0, 0, 1, 0, 0, 1])
    obs, rewards, *_ = play(env, (1, 2))
    assert (rewards["player_0"], rewards["player_1"]) == tuple(table[1, 2])
    np.testing.assert_array_equal(obs["player_0"], [0, 1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(obs["player_1"], [0, 0, 1, 0, 0, 1, 0])


def test_three_player_normal_form_and_observation_order() -> None:
    """A (2, 2, 2, 3) table: every joint action pays table[a0, a1, a2]; player 1 sees (own, p0, p2)."""
    table = np.random.default_rng(0).normal(size=(2, 2, 2, 3))
    env = MatrixGameEnv(MatrixGame(table), max_cycles=20)
    env.reset()
    for acts in itertools.product(range(2), repeat=3):
        obs, rewards, *_ = play(env, acts)
        assert list(rewards.values()) == table[acts].tolist()
        onehot = [np.eye(3, dtype=np.float32)[a] for a in acts]
        np.testing.assert_array_equal(obs["player_1"], np.concatenate([onehot[1], onehot[0], onehot[2]]))


@pytest.mark.parametrize("n", [2, 3, 5])
def test_public_goods_pays_the_formula_for_every_joint_action(n: int) -> None:
    """Contributors get m*C/N - 1, free riders m*C/N, with C the number of contributors (action 0)."""
    m = 1.5
    env = MatrixGameEnv(MatrixGame.public_goods(n, m), max_cycles=2**n)
    env.reset()
    for acts in itertools.product(range(2), repeat=n):
        _, rewards, *_ = play(env, acts)
        c = acts.count(0)
        want = [m * c / n - 1.0 if a == 0 else m * c / n for a in acts]
        np.testing.assert_allclose(list(rewards.values()), want, rtol=0, atol=1e-12)


def test_default_matrix_game_is_three_player_public_goods() -> None:
    env = MatrixGameEnv()
    assert env.possible_agents == ["player_0", "player_1", "player_2"]
    assert env.metadata["name"] == "public_goods_v0"
    env.reset()
    _, rewards, *_ = play(env, (0, 0, 1))  # two contributors: 1.5 * 2 / 3 = 1
    assert list(rewards.values()) == [0.0, 0.0, 1.0]


def test_symmetric_function_table_with_three_actions_matches_brute_force() -> None:
    """A 3-action symmetric game from a function: every joint action of 4 players pays fn(own, others' counts)."""

    def fn(own: int, counts: tuple[int, ...]) -> float:
        return 10.0 * own + 3.0 * counts[1] - 2.0 * counts[2] + 0.5 * counts[0] * own

    n = 4
    game = MatrixGame.from_symmetric_function(fn, n_agents=n, n_actions=3, action_names=("a", "b", "c"))
    assert game.payoffs.shape == (3, 4, 4) and game.n_actions == (3,) * n
    env = MatrixGameEnv(game, max_cycles=3**n)
    env.reset()
    for acts in itertools.product(range(3), repeat=n):
        _, rewards, *_ = play(env, acts)
        for i, a in enumerate(acts):
            others = acts[:i] + acts[i + 1 :]
            assert rewards[f"player_{i}"] == fn(a, tuple(others.count(j) for j in range(3))), (acts, i)


def test_symmetric_2x2_layout() -> None:
    """(R, S, T, P) lands as [C][C]=(R,R), [C][D]=(S,T), [D][C]=(T,S), [D][D]=(P,P)."""
    game = MatrixGame.symmetric_2x2(1.0, 2.0, 3.0, 4.0)
    np.testing.assert_array_equal(game.payoffs, [[[1, 1], [2, 3]], [[3, 2], [4, 4]]])
    assert game.rewards((0, 1)).tolist() == [2.0, 3.0]


def test_tables_are_read_only_copies() -> None:
    """The game copies the caller's table and freezes it, so later edits cannot change the game."""
    table = np.ones((2, 2, 2))
    game = MatrixGame(table)
    table[0, 0, 0] = 99.0
    assert game.payoffs[0, 0, 0] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        game.payoffs[0, 0, 0] = 5.0


def test_game_takes_nested_sequences_and_stays_a_frozen_dataclass() -> None:
    """Any array-like table and any sequence of names; the fields are normalised, frozen and ``replace``-able."""
    game = MatrixGame([[[3, 3], [0, 5]], [[5, 0], [1, 1]]], action_names=["C", "D"], name="pd")
    assert game.payoffs.dtype == np.float64 and game.action_names == ("C", "D")
    assert (game.symmetric, game.name, game.n_agents, game.n_actions) == (False, "pd", 2, (2, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        game.name = "other"  # type: ignore[misc]  # the frozen dataclass refuses it, as tested here
    renamed = dataclasses.replace(game, name="renamed")
    assert (renamed.name, renamed.action_names, renamed.n_actions) == ("renamed", ("C", "D"), (2, 2))
    np.testing.assert_array_equal(renamed.payoffs, game.payoffs)
    assert [f.name for f in dataclasses.fields(game)][:4] == ["payoffs", "symmetric", "action_names", "name"]


def test_ansi_render() -> None:
    env = ipd.parallel_env(max_cycles=3, render_mode="ansi")
    env.reset()
    assert env.render() == "round 0/3: no previous round"
    play(env, (0, 1))
    assert env.render() == "round 1/3: player_0=cooperate, player_1=defect; rewards 0, 5"
    assert ipd.parallel_env().render() is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"payoffs": [[[1, 2], [3, np.nan]], [[1, 2], [3, 4]]]}, "finite"),
        ({"payoffs": np.full((2, 2, 2), np.inf)}, "finite"),
        ({"payoffs": [[1, 2], [3, 4]]}, "normal-form"),
        ({"payoffs": np.zeros((2, 2, 3))}, "normal-form"),
        ({"payoffs": np.zeros((1, 2, 2))}, "normal-form"),
        ({"payoffs": [[[1, 2], [3]], [[1, 2], [3, 4]]]}, "numeric"),
        ({"payoffs": [["a", "b"], ["c", "d"]]}, "numeric"),
        ({"payoffs": np.zeros((2, 3)), "symmetric": True, "name": "x"}, None),
        ({"payoffs": np.zeros((3, 2)), "symmetric": True}, "symmetric"),
        ({"payoffs": np.zeros((3, 3, 4)), "symmetric": True}, "symmetric"),
        ({"payoffs": np.zeros((2, 1)), "symmetric": True}, "symmetric"),
        ({"payoffs": np.zeros(2), "symmetric": True}, "symmetric"),
        ({"payoffs": np.zeros((2, 2, 2)), "symmetric": "yes"}, "symmetric must be a bool"),
        ({"payoffs": np.zeros((2, 2, 2)), "action_names": ("a",)}, "action_names"),
        ({"payoffs": np.zeros((2, 2, 2)), "action_names": (1, 2)}, "action_names"),
        ({"payoffs": np.zeros((2, 3, 2)), "action_names": ("a", "b")}, "action_names"),
        ({"payoffs": np.zeros((2, 2, 2)), "name": "not an id"}, "name"),
    ],
)
def test_invalid_tables_raise(kwargs: dict, match: str | None) -> None:
    if match is None:  # a valid symmetric table, as a control for the invalid ones around it
        assert MatrixGame(**kwargs).n_agents == 3
        return
    with pytest.raises(ValueError, match=match):
        MatrixGame(**kwargs)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: MatrixGameEnv(np.zeros((2, 2, 2))), TypeError),
        (lambda: MatrixGameEnv(max_cycles=0), ValueError),
        (lambda: MatrixGameEnv(max_cycles=2.0), ValueError),
        (lambda: MatrixGameEnv(render_mode="rgb_array"), ValueError),
        (lambda: ipd.parallel_env(max_cycles=-3), ValueError),
        (lambda: MatrixGame.public_goods(1), ValueError),
        (lambda: MatrixGame.public_goods(3, float("nan")), ValueError),
        (lambda: MatrixGame.public_goods(3, -1.0), ValueError),
        (lambda: MatrixGame.from_symmetric_function(lambda a, c: 0.0, 3, 1), ValueError),
        (lambda: MatrixGame.from_symmetric_function(lambda a, c: float("inf"), 3, 2), ValueError),
    ],
)
def test_invalid_constructor_arguments_raise(call, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=3, max_dims=3, min_side=2, max_side=4).map(lambda s: (*s[:2], 2)),
        elements=st.floats(-1e6, 1e6),
    ),
    st.data(),
)
def test_any_finite_bimatrix_constructs_and_any_nan_is_rejected(
    table: np.ndarray, data: st.DataObject
) -> None:
    """Hypothesis: finite (k0, k1, 2) tables build a game that pays table[a0, a1]; one NaN anywhere raises."""
    env = MatrixGameEnv(MatrixGame(table), max_cycles=1)
    env.reset()
    a0 = data.draw(st.integers(0, table.shape[0] - 1))
    a1 = data.draw(st.integers(0, table.shape[1] - 1))
    _, rewards, *_ = play(env, (a0, a1))
    assert list(rewards.values()) == table[a0, a1].tolist()
    bad = table.copy()
    bad[tuple(data.draw(st.integers(0, d - 1)) for d in table.shape)] = data.draw(
        st.sampled_from([np.nan, np.inf, -np.inf])
    )
    with pytest.raises(ValueError, match="finite"):
        MatrixGame(bad)
