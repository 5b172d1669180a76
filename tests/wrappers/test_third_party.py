"""The incentive wrapper over envs we did not write: PettingZoo classic (turn-based AEC with action masks),
PettingZoo sisl (parallel), PettingZoo classic rps (parallelizable AEC) and Gymnasium CartPole.

Every stock PettingZoo env imports pygame, so those tests need ``pygame`` (not a dependency of the package).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

from wrappers import (
    ADDED_INFO_KEYS,
    AECIncentiveWrapper,
    AgentValues,
    GymIncentiveWrapper,
    IncentiveWrapper,
    StepContext,
    incentive,
)


def _make(kind: str, env_id: str, **kwargs: Any) -> Any:
    pytest.importorskip("pygame", reason="PettingZoo's stock envs import pygame")
    import pettingzoo

    return pettingzoo.make(kind, env_id, **kwargs)


def _warnings_of(check: Callable[[], Any]) -> set[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check()
    return {str(w.message) for w in caught}


def first_mover_bonus(ctx: StepContext) -> dict[str, float]:
    """Pay 0.1 * (action index + 1) to player_1 and nothing to the others."""
    return {a: 0.1 * (int(ctx.actions[a]) + 1) for a in ctx.agents if a == "player_1"}


def _play_masked(env: Any, seed: int) -> list[tuple[str, float, dict[str, Any], int | None]]:
    """Play legal random moves; record (agent, cumulative reward, info, action taken) at every ``last()``."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trace = []
    for agent in env.agent_iter():
        obs, cumulative, term, trunc, info = env.last()
        action = None if term or trunc else int(rng.choice(np.flatnonzero(obs["action_mask"])))
        trace.append((agent, cumulative, dict(info), action))
        env.step(action)
    return trace


@pytest.mark.parametrize("env_id", ["classic/tictactoe-v3", "classic/connect_four-v3"])
def test_turn_based_classic_game_passes_checkers(env_id: str) -> None:
    wrapped = _warnings_of(lambda: api_test(incentive(_make("aec", env_id), first_mover_bonus), num_cycles=200))
    bare = _warnings_of(lambda: api_test(_make("aec", env_id), num_cycles=200))
    assert wrapped <= bare  # the wrapper adds no warning of its own (the bare game warns about zero boards)
    assert not _warnings_of(lambda: seed_test(lambda: incentive(_make("aec", env_id), first_mover_bonus)))


@pytest.mark.parametrize("seed", range(5))
def test_turn_based_rewards_add_payments_exactly_once(seed: int) -> None:
    env_id = "classic/tictactoe-v3"
    wrapped = incentive(_make("aec", env_id), first_mover_bonus)
    assert isinstance(wrapped, AECIncentiveWrapper)
    shaped, bare = _play_masked(wrapped, seed), _play_masked(_make("aec", env_id), seed)
    assert [t[::3] for t in shaped] == [t[::3] for t in bare]  # payments do not change the game
    last_payment = {"player_1": 0.0, "player_2": 0.0}  # payment for each agent's previous move
    for (agent, cumulative, info, action), (_, bare_cumulative, bare_info, _) in zip(shaped, bare):
        # what an agent sees = the env's reward since its previous move + the payment for that move, once
        assert cumulative == pytest.approx(bare_cumulative + last_payment[agent], abs=1e-12)
        assert {k: v for k, v in info.items() if k not in ADDED_INFO_KEYS} == bare_info
        if action is not None:
            last_payment[agent] = 0.1 * (action + 1) if agent == "player_1" else 0.0
    for agent, info in wrapped.infos.items():
        assert wrapped.rewards[agent] == info["env_reward"] + info["incentive"]
    n_moves = sum(1 for a, _, _, act in shaped if a == "player_1" and act is not None)
    assert wrapped.episode_incentives["player_1"] == pytest.approx(
        sum(0.1 * (act + 1) for a, _, _, act in shaped if a == "player_1" and act is not None)
    )
    assert wrapped.episode_stats()["steps"] == sum(1 for *_, act in shaped if act is not None) >= n_moves


def test_turn_based_guards() -> None:
    env = incentive(_make("aec", "classic/tictactoe-v3"), first_mover_bonus)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="player_1: action 9 is outside Discrete"):
        env.step(9)
    with pytest.raises(KeyError, match="did not act"):
        bad = incentive(_make("aec", "classic/tictactoe-v3"), lambda ctx: {"player_2": 1.0})
        bad.reset(seed=0)
        bad.step(0)  # player_1 moves, player_2 is paid
    with pytest.raises(ValueError, match="budget_balanced"):
        incentive(_make("aec", "classic/tictactoe-v3"), first_mover_bonus, budget_balanced=True)


def test_parallelizable_aec_game_goes_through_the_parallel_wrapper() -> None:
    def pay_rock(ctx: StepContext) -> dict[str, float]:
        return {a: 1.0 for a in ctx.agents if int(ctx.actions[a]) == 0}

    env = incentive(_make("aec", "classic/rps-v2", max_cycles=5), pay_rock)
    assert isinstance(env.unwrapped, type(_make("aec", "classic/rps-v2").unwrapped))
    wrapped = _warnings_of(lambda: api_test(incentive(_make("aec", "classic/rps-v2"), pay_rock), num_cycles=30))
    assert wrapped <= _warnings_of(lambda: api_test(_make("aec", "classic/rps-v2"), num_cycles=30))
    env.reset(seed=0)
    env.step(0)  # player_0 rock
    env.step(1)  # player_1 paper wins
    assert env.infos["player_0"]["env_reward"] == -1 and env.infos["player_0"]["incentive"] == 1.0
    assert env.rewards == {"player_0": 0.0, "player_1": 1.0}


def test_sisl_pursuit_parallel_env() -> None:
    def make() -> IncentiveWrapper:
        return incentive(_make("parallel", "sisl/pursuit-v5", max_cycles=20), AgentValues({"pursuer_0": 0.5}))

    assert not _warnings_of(lambda: parallel_api_test(make(), num_cycles=20))
    assert not _warnings_of(lambda: parallel_seed_test(make))
    env = make()
    env.reset(seed=0)
    for _ in range(3):
        _, rew, _, _, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
        for agent, info in infos.items():
            assert rew[agent] == info["env_reward"] + info["incentive"]
            assert info["incentive"] == (0.5 if agent == "pursuer_0" else 0.0)
    assert env.last_context is not None and env.last_context.designer_obs.shape == env.state_space.shape


def _cartpole(fn: Any = lambda ctx: {"agent": -0.25}, **rules: Any) -> GymIncentiveWrapper:
    return incentive(gymnasium.make("CartPole-v1").unwrapped, fn, **rules)


def test_gymnasium_cartpole() -> None:
    env = _cartpole()
    assert isinstance(env, GymIncentiveWrapper)
    caught = _warnings_of(lambda: check_env(env, skip_render_check=True))
    # Only CartPole's own infinite-bound notes and the note that check_env was given a wrapper remain.
    assert all("infinity" in m or "is different from the unwrapped" in m for m in caught), caught
    seen: list[StepContext] = []
    env = _cartpole(lambda ctx: seen.append(ctx) or {"agent": 0.5 * int(ctx.actions["agent"])})
    obs, _ = env.reset(seed=1)
    steps = 0
    while True:
        obs_before = obs
        obs, reward, term, trunc, info = env.step(steps % 2)
        assert info["env_reward"] == 1.0 and info["incentive"] == 0.5 * (steps % 2)
        assert reward == info["env_reward"] + info["incentive"]
        assert np.array_equal(seen[-1].designer_obs, obs_before)
        steps += 1
        if term or trunc:
            break
    assert env.episode_stats() == {
        "welfare": float(steps),
        "incentives_paid": 0.5 * (steps // 2),
        "designer_net": steps - 0.5 * (steps // 2),
        "steps": float(steps),
    }
    with pytest.raises(RuntimeError, match="after the episode finished"):
        env.step(0)


def test_gymnasium_guards() -> None:
    env = _cartpole()
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="agent: action 2 is outside Discrete"):
        env.step(2)
    with pytest.raises(ValueError, match="budget_balanced"):
        _cartpole(budget_balanced=True)
    with pytest.raises(ValueError, match=r"exceeds budget_per_step=0\.1"):
        env2 = _cartpole(lambda ctx: {"agent": 1.0}, budget_per_step=0.1)
        env2.reset(seed=0)
        env2.step(0)
    scaled = _cartpole(lambda ctx: {"agent": 1.0}, budget_per_episode=1.5, on_budget="scale")
    scaled.reset(seed=0)
    paid = [scaled.step(0)[4]["incentive"] for _ in range(3)]
    assert paid == [1.0, 0.5, 0.0] and scaled.episode_cost == 1.5
