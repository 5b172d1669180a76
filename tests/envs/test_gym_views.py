"""The Gymnasium views: exact rewards, spaces, episode-end mapping and pass-throughs of both adapters."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import ParallelEnv

from incentive_envs import JointActionEnv, SingleAgentEnv, ipd
from incentive_envs.escape_room import DOOR, LEVER, START, EscapeRoomEnv


def test_joint_view_spaces_and_welfare_reward() -> None:
    """IPD joint view: MultiDiscrete([2, 2]) in, concatenated per-agent observations and summed reward out."""
    env = gymnasium.make("incentive_envs/IPD-v0", max_cycles=3).unwrapped
    assert env.action_space == spaces.MultiDiscrete([2, 2])
    assert env.observation_space == spaces.Box(0.0, 1.0, (12,), np.float32)
    obs, info = env.reset(seed=0)
    assert set(info["agent_infos"]) == {"player_0", "player_1"}
    obs, reward, term, trunc, info = env.step(np.array([0, 1]))
    assert reward == 5.0 and info["rewards"] == {"player_0": 0.0, "player_1": 5.0}
    want = np.array(
        [1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0], dtype=np.float32
    )  # player_0's view, then player_1's
    assert obs.dtype == np.float32 and np.array_equal(obs, want)
    np.testing.assert_array_equal(env.state(), want[:6])
    assert (term, trunc) == (False, False)
    env.step([1, 1])
    _, reward, term, trunc, _ = env.step((0, 0))
    assert (reward, term, trunc) == (6.0, False, True)


def test_joint_view_reports_termination_as_terminated() -> None:
    """An Escape Room escape is a termination, not a truncation, in the joint view."""
    env = gymnasium.make("incentive_envs/EscapeRoom-v0", n_agents=3, min_at_lever=1).unwrapped
    env.reset(seed=0)
    _, reward, term, trunc, info = env.step([LEVER, DOOR, START])
    assert (reward, term, trunc) == (9.0, True, False)
    assert info["rewards"] == {"agent_0": -1.0, "agent_1": 10.0, "agent_2": 0.0}


def test_joint_view_render_and_rgb_array_request() -> None:
    """``render_mode`` reaches the game; SB3's automatic ``"rgb_array"`` request degrades to no rendering."""
    env = gymnasium.make("incentive_envs/IPD-v0", render_mode="ansi").unwrapped
    env.reset(seed=0)
    assert env.render() == "round 0/100: no previous round"
    quiet = JointActionEnv(ipd.parallel_env, render_mode="rgb_array")
    quiet.reset(seed=0)
    assert quiet.render_mode is None and quiet.render() is None


def test_single_agent_view_rewards_the_learner_against_fixed_policies() -> None:
    """IPD learner vs an always-defect partner: cooperating pays 0 (S), defecting pays 1 (P), each round."""
    env = SingleAgentEnv(ipd.parallel_env, policies={"player_1": lambda obs, rng: 1}, max_cycles=4)
    assert env.learner == "player_0" and env.action_space == spaces.Discrete(2)
    obs, info = env.reset(seed=0)
    assert obs.shape == (6,) and info == {"rewards": {"player_0": 0.0, "player_1": 0.0}}  # the step's keys
    rewards = []
    for act in (0, 1, 0, 1):
        obs, reward, term, trunc, info = env.step(act)
        rewards.append(reward)
        assert info["rewards"]["player_1"] == (5.0 if act == 0 else 1.0)
    assert rewards == [0.0, 1.0, 0.0, 1.0] and (term, trunc) == (False, True)
    np.testing.assert_array_equal(obs, [0, 1, 0, 0, 1, 0])  # own last action (defect), then the partner's


def test_single_agent_view_other_learner_and_policy_sees_its_observation() -> None:
    """``learner="player_1"``; the fixed policy of player_0 receives player_0's own last observation."""
    seen: list[np.ndarray] = []

    def tit_for_tat(obs: np.ndarray, rng: np.random.Generator) -> int:
        seen.append(obs.copy())
        return int(obs[4])  # copy the partner's last action; the "no previous round" slot means cooperate

    env = SingleAgentEnv(
        ipd.parallel_env, learner="player_1", policies={"player_0": tit_for_tat}, max_cycles=3
    )
    env.reset(seed=0)
    _, r1, *_ = env.step(1)  # player_0 cooperates first (no history), learner defects: T = 5
    _, r2, *_ = env.step(0)  # player_0 now defects (copies), learner cooperates: S = 0
    assert (r1, r2) == (5.0, 0.0)
    np.testing.assert_array_equal(seen[1], [1, 0, 0, 0, 1, 0])


def test_single_agent_random_others_are_seeded() -> None:
    """Uniform random others draw from the view's seeded RNG: same seed, same partner actions."""

    def partner_actions(seed: int) -> list[float]:
        env = SingleAgentEnv(EscapeRoomEnv, n_agents=3, min_at_lever=2, max_steps=5)
        env.reset(seed=seed)
        out = []
        while True:
            _, _, term, trunc, info = env.step(START)
            out.append(tuple(info["rewards"].values()))
            if term or trunc:
                return out

    assert partner_actions(1) == partner_actions(1)
    assert any(partner_actions(1) != partner_actions(s) for s in range(2, 8))


class _BoxActionGame(ParallelEnv):
    """A two-agent one-step game with Box actions: reward = the agent's action value (tests the Dict view)."""

    metadata = {"name": "box_game_v0", "render_modes": []}

    def __init__(self) -> None:
        self.possible_agents = ["a_0", "a_1"]
        self.agents: list[str] = []
        self._act = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._obs = spaces.Box(0.0, 1.0, (1,), np.float32)

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs

    def action_space(self, agent: str) -> spaces.Box:
        return self._act

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        self.agents = list(self.possible_agents)
        return {a: np.ones(1, np.float32) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        live, self.agents = self.agents, []
        obs = {a: np.ones(1, np.float32) for a in live}
        rew = {a: float(actions[a][0]) for a in live}
        return obs, rew, dict.fromkeys(live, True), dict.fromkeys(live, False), {a: {} for a in live}


def test_joint_view_uses_a_dict_action_for_non_discrete_games() -> None:
    env = JointActionEnv(_BoxActionGame)
    assert isinstance(env.action_space, spaces.Dict) and set(env.action_space) == {"a_0", "a_1"}
    env.reset(seed=0)
    with pytest.raises(KeyError, match=r"missing \['a_1'\]"):
        env.step({"a_0": np.zeros(1, np.float32)})
    with pytest.raises(ValueError, match="dict"):
        env.step(np.zeros(2))
    _, reward, term, trunc, info = env.step(
        {"a_0": np.full(1, 0.5, np.float32), "a_1": np.full(1, 0.25, np.float32)}
    )
    assert (reward, term, trunc, info["rewards"]) == (0.75, True, False, {"a_0": 0.5, "a_1": 0.25})
