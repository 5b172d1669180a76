"""The designer environment: checkers, seeding, cost accounting, the payments it sets, continuing agents, the
registered ids, any task, and SB3 training it."""

from __future__ import annotations

import dataclasses
import re
import warnings
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from designer.config import DesignerConfig, TrainConfig
from designer.experiments.trainer import Trainer
from designer.principal import DesignerEnv, DesignerEnvConfig, designer_env_id
from designer.registry import register_task
from incentive_envs import ENVS, VARIANTS
from incentive_envs.ipd import parallel_env as ipd_env

ER21 = {"n_agents": 2, "min_at_lever": 1}

# Warnings the checkers give on purpose-built spaces: the action is in the wrapper's units ([0, scale], the
# issue's contract) rather than [-1, 1], and outcomes (welfare, incentives) have no bound in general.
EXPECTED_WARNINGS = ("symmetric and normalized", "minimum value is -infinity", "maximum value is infinity",
                     "not having a spec")


def tiny(**overrides: Any) -> DesignerEnv:
    config = DesignerEnvConfig(task="escape_room", task_kwargs=ER21, episodes_per_step=4, horizon=3)
    return DesignerEnv(dataclasses.replace(config, **overrides))


def _unexpected(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if not any(e in str(w.message) for e in EXPECTED_WARNINGS)]


def test_passes_gymnasium_and_sb3_check_env_with_only_the_documented_warnings() -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(tiny())
        sb3_check_env(tiny())
    assert not _unexpected(caught), _unexpected(caught)


def test_spaces_and_observation_names() -> None:
    env = tiny()
    assert env.action_space == gymnasium.spaces.Box(0.0, 2.0, (3,), np.float32)  # one payment per ER action
    assert env.observation_space.shape == (len(env.observation_names),)
    assert env.observation_names[:3] == ("param/pay_0", "param/pay_1", "param/pay_2")
    assert env.observation_names[3:8] == ("welfare", "incentives", "net", "designer_return", "episode_steps")
    assert env.observation_names[8:11] == ("freq/agent_0/0", "freq/agent_0/1", "freq/agent_0/2")
    assert env.observation_names[-1] == "time"
    obs, info = env.reset(seed=0)
    assert not obs.any() and info["total_agent_episodes"] == 0


def test_same_seed_same_rounds_other_seed_other_rounds() -> None:
    actions = [np.array([1.0, 0.0, 0.5], np.float32), np.array([2.0, 0.0, 0.0], np.float32)]

    def play(seed: int) -> list[Any]:
        env = tiny()
        out: list[Any] = [env.reset(seed=seed)]
        out += [env.step(a) for a in actions]
        return out

    a, b = play(3), play(3)
    assert repr(a) == repr(b)
    assert repr(play(4)) != repr(a)


def test_cost_per_step_truncation_and_misuse() -> None:
    env = tiny(episodes_per_step=5, batch_episodes=2, eval_episodes=3)
    assert env.episodes_per_step == 6 + 3  # 5 rounded up to whole batches of 2, plus the evaluation
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(np.zeros(3, np.float32))
    env.reset(seed=0)
    totals, truncs = [], []
    for _ in range(3):
        _, _, term, trunc, info = env.step(np.zeros(3, np.float32))
        assert not term and info["agent_episodes"] == 9
        totals.append(info["total_agent_episodes"])
        truncs.append(trunc)
    assert totals == [9, 18, 27] and truncs == [False, False, True]
    assert env.trainer is not None and env.trainer.progress.episodes == 18  # training episodes (eval apart)
    with pytest.raises(RuntimeError, match="horizon"):
        env.step(np.zeros(3, np.float32))
    env.reset(seed=0)
    for bad in (np.array([2.5, 0, 0], np.float32), np.array([np.nan, 0, 0], np.float32), np.zeros(2, np.float32)):
        with pytest.raises(ValueError):
            env.step(bad)


@pytest.mark.parametrize(("overrides", "match"), [({"episodes_per_step": 0}, "episodes_per_step"),
                                                  ({"objective": "profit"}, "objective"),
                                                  ({"scale": -1.0}, "scale"), ({"output": "nope"}, "output")])
def test_bad_configs_raise(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(**overrides)


def test_the_round_pays_exactly_the_parameters_and_reports_its_outcome() -> None:
    """Incentives paid per episode = sum over agents and actions of frequency x episode length x payment;
    net = welfare - incentives; the reward is the chosen objective."""
    for objective in ("net", "welfare", "designer"):
        env = tiny(objective=objective, episodes_per_step=8)
        env.reset(seed=1)
        pay = np.array([1.5, 0.0, 0.25], np.float32)
        obs, reward, _, _, info = env.step(pay)
        out = info["outcome"]
        freq = np.asarray(out["action_freq"])
        assert freq.shape == (2, 3) and np.allclose(freq.sum(1), 1.0)
        assert out["incentives"] == pytest.approx((freq * pay).sum() * out["episode_steps"], rel=1e-5)
        assert out["net"] == pytest.approx(out["welfare"] - out["incentives"], abs=1e-5)
        assert out["designer_return"] == pytest.approx(out["welfare"], abs=1e-5)  # ER's designer reward: welfare
        assert reward == pytest.approx(out[{"designer": "designer_return"}.get(objective, objective)], abs=1e-6)
        names = env.observation_names
        np.testing.assert_allclose(obs[:3], pay / 2.0)
        np.testing.assert_allclose(obs[names.index("welfare")], out["welfare"], rtol=1e-5)
        np.testing.assert_allclose(obs[names.index("freq/agent_1/2")], freq[1, 2], rtol=1e-5)
        assert obs[-1] == pytest.approx(1 / 3)


def test_rounds_continue_the_same_agents_as_one_fixed_designer_run() -> None:
    """Two rounds under the same parameters train the agents exactly as one Trainer run of the ``fixed``
    designer for the same episodes (same run seed): the designer env adds no reset, no lost batch, no RNG draw."""
    pay = (0.5, 0.0, 1.0)
    env = tiny(episodes_per_step=6)
    _, info = env.reset(seed=2)
    for _ in range(2):
        env.step(np.array(pay, np.float32))
    assert env.trainer is not None
    task = env.task
    cfg = TrainConfig(task="escape_room", task_kwargs=ER21, episodes=12, seed=info["run_seed"], eval_period=100,
                      eval_episodes=1)
    ref = Trainer(cfg, designer=dataclasses.replace(task.designer, algorithm="fixed", fixed_values=pay),
                  learner=task.learner, task=task)
    ref.train()
    assert ref.progress.episodes == env.trainer.progress.episodes == 12
    for k, v in ref.learner.params.items():
        torch.testing.assert_close(env.trainer.learner.params[k], v, rtol=0, atol=0)


def test_evaluation_outcome_comes_from_fresh_episodes_without_exploration() -> None:
    env = tiny(eval_episodes=5, episodes_per_step=4)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(3, np.float32))
    assert info["agent_episodes"] == 9
    assert env.trainer is not None and env.trainer.progress.episodes == 4  # evaluation does not train


@pytest.mark.parametrize("entry", [*ENVS, *VARIANTS], ids=lambda e: e.name)
def test_registered_for_every_shipped_game(entry: Any) -> None:
    env = gymnasium.make(designer_env_id(entry.gym_name), episodes_per_step=1)
    box = env.action_space
    assert isinstance(box, gymnasium.spaces.Box) and box.low.min() == 0.0
    if entry.name == "gather_trade_build":
        assert box.shape == (7,) and box.high.max() == 1.0  # one marginal rate per bracket
        assert env.unwrapped.parameter_names[0] == "rate_0"
    else:
        assert box.high.max() == env.unwrapped.task.designer.scale
    env.close()


def test_gather_trade_build_sets_the_marginal_rates() -> None:
    """A GTB round enacts the principal's rates through the task's fixed tax designer."""
    env = gymnasium.make(designer_env_id("GatherTradeBuild"), task_kwargs={"max_cycles": 25}, episodes_per_step=1,
                         objective="designer").unwrapped
    env.reset(seed=0)
    rates = np.linspace(0.1, 0.7, 7).astype(np.float32)
    env.step(rates)
    assert env.trainer is not None
    np.testing.assert_allclose(env.trainer.designer.model.rates, rates.astype(np.float64), rtol=1e-6)


def test_contextual_escape_room_pays_by_role_with_action_type() -> None:
    env = gymnasium.make(designer_env_id("EscapeRoomContextual"), task_kwargs=ER21, output="action_type",
                         episodes_per_step=4).unwrapped
    assert env.action_space.shape == (4,)  # lever, start, door, empty place
    assert env.parameter_names == ("pay_0", "pay_1", "pay_2", "pay_3")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1.0, 0.0, 0.0, 0.0], np.float32))
    assert info["outcome"]["incentives"] > 0


def test_works_for_a_user_task_registered_by_name() -> None:
    register_task("principal_test_ipd", lambda **kw: ipd_env(max_cycles=2, **kw))
    env = DesignerEnv(DesignerEnvConfig(task="principal_test_ipd", episodes_per_step=8, batch_episodes=8))
    assert env.task.preset == "small_game" and env.action_space.shape == (2,)  # cooperate, defect
    assert env.action_space.high.max() == 4.0  # the small_game preset pays up to 4
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([3.0, 0.0], np.float32))
    assert info["outcome"]["episode_steps"] == 2.0


def test_sb3_ppo_trains_the_designer_env() -> None:
    """PPO runs 8 rounds (2 updates of 4), consuming exactly 8 rounds of agent episodes; its policy moves; two
    runs with the same seed are identical."""
    from stable_baselines3 import PPO

    def train(seed: int) -> tuple[dict[str, torch.Tensor], int]:
        env = tiny(episodes_per_step=2, horizon=4)
        model = PPO("MlpPolicy", env, n_steps=4, batch_size=4, n_epochs=2, seed=seed, device="cpu")
        before = {k: v.clone() for k, v in model.policy.state_dict().items()}
        model.learn(total_timesteps=8)
        after = model.policy.state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in before)
        return after, model.num_timesteps * env.episodes_per_step

    params, episodes = train(0)
    again, _ = train(0)
    assert episodes == 16
    for k, v in params.items():
        torch.testing.assert_close(again[k], v, rtol=0, atol=0)


def test_module_prefix_id_imports_the_package() -> None:
    """``gymnasium.make("designer.principal:<id>")`` registers the ids on demand."""
    env = gymnasium.make("designer.principal:incentive_design/DesignerIPD-v0", episodes_per_step=1)
    assert re.match(r"DesignerEnv", type(env.unwrapped).__name__)
    assert isinstance(env.unwrapped.task.designer, DesignerConfig)
