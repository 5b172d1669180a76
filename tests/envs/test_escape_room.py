"""Escape Room rules, checked exactly against an independent restatement of the spec (method.md §3.1)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from incentive_envs import escape_room as er
from incentive_envs.escape_room import DOOR, LEVER, START, EscapeRoomEnv, optimal_welfare

Positions = tuple[int, ...]


def reference_step(pre: Sequence[int], acts: Sequence[int], m: int) -> tuple[list[float], bool]:
    """The spec, written independently of the env: rewards from pre-move positions, and termination."""
    door_open = sum(a == LEVER for a in acts) >= m
    rewards = [
        10.0 if door_open and a == DOOR else (0.0 if a == p else -1.0) for p, a in zip(pre, acts, strict=True)
    ]
    return rewards, door_open and DOOR in acts


@functools.cache
def _seed_for(n: int, m: int, positions: Positions) -> int:
    """A seed whose randomized reset puts the agents at ``positions`` (found through the public API only)."""
    env = EscapeRoomEnv(n_agents=n, min_at_lever=m, randomize=True)
    for seed in range(10_000):
        _, infos = env.reset(seed=seed)
        if tuple(infos[a]["position"] for a in env.possible_agents) == positions:
            return seed
    raise AssertionError(f"no seed reaches {positions}")


def env_at(positions: Positions, m: int = 1, max_steps: int = 5) -> EscapeRoomEnv:
    env = EscapeRoomEnv(n_agents=len(positions), min_at_lever=m, max_steps=max_steps, randomize=True)
    env.reset(seed=_seed_for(len(positions), m, positions))
    return env


def joint(env: EscapeRoomEnv, acts: Sequence[int]) -> dict[str, int]:
    return dict(zip(env.possible_agents, acts, strict=True))


# (case, pre-move positions, actions, M, rewards): agent 0 is the agent the case is about.
REWARD_CASES = [
    ("closed, stays at start", (START, START, START), (START, START, START), 1, [0.0, 0.0, 0.0]),
    ("closed, moves to door", (START, START, START), (DOOR, START, START), 1, [-1.0, 0.0, 0.0]),
    ("closed, already at door, stays", (DOOR, START, START), (DOOR, START, START), 1, [0.0, 0.0, 0.0]),
    ("closed, already at door, leaves", (DOOR, START, START), (START, START, START), 1, [-1.0, 0.0, 0.0]),
    ("closed, one at lever but M=2", (START, LEVER, START), (DOOR, LEVER, START), 2, [-1.0, 0.0, 0.0]),
    ("open, moves to door", (START, START, START), (DOOR, LEVER, START), 1, [10.0, -1.0, 0.0]),
    ("open, already at door, stays", (DOOR, LEVER, START), (DOOR, LEVER, START), 1, [10.0, 0.0, 0.0]),
    ("open, already at door, leaves", (DOOR, LEVER, START), (START, LEVER, DOOR), 1, [-1.0, 0.0, 10.0]),
    ("open, moves to lever", (START, LEVER, START), (LEVER, LEVER, START), 2, [-1.0, 0.0, 0.0]),
    ("open, nobody goes to the door", (START, LEVER, START), (LEVER, LEVER, START), 1, [-1.0, 0.0, 0.0]),
]


@pytest.mark.parametrize(
    ("pre", "acts", "m", "rewards"), [c[1:] for c in REWARD_CASES], ids=[c[0] for c in REWARD_CASES]
)
def test_reward_cases(pre: Positions, acts: Positions, m: int, rewards: list[float]) -> None:
    """Each reward case of the spec: +10 for the open door (even if already there), else 0 stay / -1 move."""
    env = env_at(pre, m)
    _, got, terms, _, infos = env.step(joint(env, acts))
    assert list(got.values()) == rewards
    assert all(type(r) is float for r in got.values())
    assert [infos[a]["position"] for a in env.possible_agents] == list(acts)
    assert reference_step(pre, acts, m) == (rewards, all(terms.values()))


@pytest.mark.parametrize("m", [1, 2])
def test_every_state_and_joint_action_matches_the_spec(m: int) -> None:
    """ER(3, M): all 27 pre-move positions x 27 joint actions give the spec's rewards, ends and positions."""
    for pre in itertools.product(range(3), repeat=3):
        for acts in itertools.product(range(3), repeat=3):
            env = env_at(pre, m, max_steps=2)
            _, rewards, terms, truncs, infos = env.step(joint(env, acts))
            want_rewards, want_term = reference_step(pre, acts, m)
            assert list(rewards.values()) == want_rewards, (pre, acts)
            assert set(terms.values()) == {want_term} and set(truncs.values()) == {False}, (pre, acts)
            assert infos["agent_0"]["door_open"] == (sum(a == LEVER for a in acts) >= m)
            assert env.agents == ([] if want_term else env.possible_agents)


def test_termination_needs_open_door_and_someone_at_door() -> None:
    """Open door without anyone reaching it does not end the episode; reaching it ends it for everyone."""
    env = EscapeRoomEnv(n_agents=3, min_at_lever=1)
    env.reset(seed=0)
    _, _, terms, truncs, _ = env.step(joint(env, (LEVER, START, START)))
    assert not any(terms.values()) and not any(truncs.values()) and env.agents
    _, _, terms, truncs, _ = env.step(joint(env, (LEVER, DOOR, START)))
    assert all(terms.values()) and not any(truncs.values()) and env.agents == []


@pytest.mark.parametrize("max_steps", [1, 3, 5])
def test_truncation_after_max_steps_and_termination_wins_ties(max_steps: int) -> None:
    """Without escape the episode truncates at exactly ``max_steps``; escaping on that step terminates it."""
    env = EscapeRoomEnv(n_agents=2, min_at_lever=1, max_steps=max_steps)
    for escape_last in (False, True):
        env.reset(seed=0)
        for t in range(1, max_steps + 1):
            acts = (LEVER, DOOR) if escape_last and t == max_steps else (START, START)
            _, _, terms, truncs, _ = env.step(joint(env, acts))
            if t < max_steps:
                assert not any(terms.values()) and not any(truncs.values())
        assert set(terms.values()) == {escape_last} and set(truncs.values()) == {not escape_last}
        assert env.agents == []


def test_random_play_ends_within_max_cycles() -> None:
    """With random actions (why ER opts out of max_cycles_test) every episode still ends by ``max_cycles``."""
    rng = np.random.default_rng(0)
    env = er.parallel_env(max_cycles=4)
    lengths = []
    for seed in range(50):
        env.reset(seed=seed)
        t = 0
        while env.agents:
            env.step({a: int(rng.integers(3)) for a in env.agents})
            t += 1
        lengths.append(t)
    assert max(lengths) <= 4 and min(lengths) < 4  # some episodes do end early: the opt-out is real


def test_observation_order_own_position_first_then_others_by_index() -> None:
    """Agent i sees its own one-hot position, then each other agent's in increasing index order."""
    env = env_at((LEVER, START, DOOR), m=2)
    obs, _ = env.reset(seed=_seed_for(3, 2, (LEVER, START, DOOR)))
    onehot = {p: np.eye(3, dtype=np.float32)[p] for p in range(3)}
    expected = {
        "agent_0": (LEVER, START, DOOR),
        "agent_1": (START, LEVER, DOOR),
        "agent_2": (DOOR, LEVER, START),
    }
    for agent, order in expected.items():
        want = np.concatenate([onehot[p] for p in order])
        assert obs[agent].dtype == np.float32 and np.array_equal(obs[agent], want), agent
    np.testing.assert_array_equal(env.state(), np.concatenate([onehot[p] for p in (LEVER, START, DOOR)]))


def test_state_tracks_post_move_positions() -> None:
    """``state()`` is every agent's position after the step, one-hot, in agent index order."""
    env = EscapeRoomEnv(n_agents=3, min_at_lever=2)
    env.reset(seed=0)
    np.testing.assert_array_equal(env.state(), np.tile(np.eye(3, dtype=np.float32)[START], 3))
    obs, *_ = env.step(joint(env, (DOOR, LEVER, START)))
    want = np.concatenate([np.eye(3, dtype=np.float32)[p] for p in (DOOR, LEVER, START)])
    np.testing.assert_array_equal(env.state(), want)
    assert env.state().dtype == np.float32 and env.state_space.contains(env.state())
    np.testing.assert_array_equal(obs["agent_0"], want)


def test_deterministic_start_is_the_start_position() -> None:
    """``randomize=False`` starts everyone at the start, whatever the seed."""
    env = EscapeRoomEnv(n_agents=4, min_at_lever=2)
    for seed in range(5):
        _, infos = env.reset(seed=seed)
        assert {i["position"] for i in infos.values()} == {START}


def _dp_optimum(n: int, m: int, horizon: int) -> float:
    """Best undiscounted welfare by dynamic programming over (positions, steps left), from the spec alone."""
    joint_actions = list(itertools.product(range(3), repeat=n))

    @functools.cache
    def value(pos: Positions, left: int) -> float:
        if left == 0:
            return 0.0
        best = -np.inf
        for acts in joint_actions:
            rewards, terminated = reference_step(pos, acts, m)
            best = max(best, sum(rewards) + (0.0 if terminated else value(acts, left - 1)))
        return best

    return value((START,) * n, horizon)


@pytest.mark.parametrize(("n", "m"), [(n, m) for n in range(2, 5) for m in range(1, n)])
def test_optimal_welfare_matches_exhaustive_search(n: int, m: int) -> None:
    """``optimal_welfare(N, M)`` equals the DP optimum over all joint action sequences (5 steps), and the env
    pays exactly that for the one-step optimum (M to the lever, the rest to the door)."""
    assert optimal_welfare(n, m) == _dp_optimum(n, m, horizon=5)
    env = EscapeRoomEnv(n_agents=n, min_at_lever=m)
    env.reset(seed=0)
    _, rewards, terms, *_ = env.step(joint(env, [LEVER] * m + [DOOR] * (n - m)))
    assert sum(rewards.values()) == optimal_welfare(n, m) and all(terms.values())


def test_optimal_welfare_known_values() -> None:
    """The values quoted in method.md §3.1."""
    assert [optimal_welfare(5, 2), optimal_welfare(2, 1), optimal_welfare(3, 2), optimal_welfare(5, 3)] == [
        28,
        9,
        8,
        17,
    ]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_agents": 1}, "n_agents"),
        ({"n_agents": 2.0}, "n_agents"),
        ({"n_agents": True}, "n_agents"),
        ({"n_agents": "5"}, "n_agents"),
        ({"min_at_lever": 0}, "min_at_lever"),
        ({"n_agents": 3, "min_at_lever": 3}, "min_at_lever must be < n_agents"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_cycles": -1}, "max_steps"),
        ({"randomize": 1}, "randomize"),
        ({"render_mode": "rgb_array"}, "render_mode"),
    ],
)
def test_invalid_constructor_arguments_raise(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EscapeRoomEnv(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("n", "m"), [(1, 1), (3, 0), (3, 3), (2.5, 1)])
def test_optimal_welfare_rejects_invalid_games(n: object, m: object) -> None:
    with pytest.raises(ValueError):
        optimal_welfare(n, m)  # type: ignore[arg-type]


def test_max_cycles_alias_sets_the_horizon() -> None:
    """``max_cycles`` (PettingZoo's registry name) overrides ``max_steps``."""
    assert EscapeRoomEnv(max_steps=5, max_cycles=2).max_steps == 2


def test_ansi_render_names_positions_and_door() -> None:
    env = EscapeRoomEnv(n_agents=2, min_at_lever=1, render_mode="ansi")
    env.reset(seed=0)
    assert env.render() == "step 0: agent_0@start, agent_1@start; door closed"
    env.step(joint(env, (LEVER, DOOR)))
    assert env.render() == "step 1: agent_0@lever, agent_1@door; door open"
    assert EscapeRoomEnv().render() is None
