"""The incentive wrapper in the MARL ecosystem (issue #17): RLlib, TorchRL and a CleanRL-style loop train on it.

RLlib and TorchRL come with the ``interop`` extra (``pip install "incentive-design[interop]"``, not part of
``test``). Their tests are skipped, with the reason, when the extra is not installed. The CleanRL-style loop needs
only torch, so it always runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from incentive_envs.escape_room import LEVER
from incentive_envs.escape_room import env as er_aec
from incentive_envs.escape_room import parallel_env as er_parallel
from incentive_envs.ipd import parallel_env as ipd_parallel
from wrappers import ADDED_INFO_KEYS, TAX_INFO_KEYS, ActionTable, IncentiveWrapper, TaxWrapper, incentive

EXTRA = 'the interop extra: pip install "incentive-design[interop]"'
PAY_LEVER = ActionTable([0.5, 0.0, 0.0])
"""Pay 0.5 for pulling the lever (action 0): a small, deterministic incentive every framework sees."""


def _wrapped_er() -> IncentiveWrapper:
    return incentive(er_parallel(n_agents=3, min_at_lever=1, max_steps=5), PAY_LEVER)


# ------------------------------------------------------------------------------------------------------------
# RLlib (new API stack)


@pytest.fixture
def ray_cluster() -> Iterator[Any]:
    """A one-CPU local Ray instance for the test, shut down after it; the test is skipped without RLlib.

    ``ray[tune]`` (the ``ray`` extra) imports without RLlib's own dependencies (dm-tree, lz4, ...), so the
    check imports the RLlib module the test uses.
    """
    pytest.importorskip("ray.rllib.algorithms.ppo", reason=f"RLlib is not installed; {EXTRA}")
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_rllib_ppo_trains_one_iteration_on_the_wrapped_env(ray_cluster: Any) -> None:
    """PPO on the new API stack, env runner and learner in this process, one shared policy, one iteration."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import register_env

    register_env("incentive_er", lambda _config: ParallelPettingZooEnv(_wrapped_er()))
    config = (
        PPOConfig()
        .environment("incentive_er")
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, episode, **kwargs: "shared")
        .env_runners(num_env_runners=0, rollout_fragment_length=16)
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=32, minibatch_size=16, num_epochs=1)
        .rl_module(model_config={"fcnet_hiddens": [8]})
        .debugging(seed=0)
    )
    assert config.enable_rl_module_and_learner and config.enable_env_runner_and_connector_v2  # new API stack
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 32
    assert math.isfinite(result["learners"]["shared"]["total_loss"])


# ------------------------------------------------------------------------------------------------------------
# TorchRL


def _torchrl_env(make: Callable[[], Any], **kwargs: Any) -> Any:
    module = pytest.importorskip("torchrl.envs.libs.pettingzoo", reason=f"TorchRL is not installed; {EXTRA}")
    return module.PettingZooWrapper(make(), categorical_actions=True, seed=0, **kwargs)


@pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested:UserWarning")
def test_torchrl_rollout_reads_the_wrapper_infos() -> None:
    """The wrapper's info keys become TorchRL info entries; the reward is env reward plus incentive."""
    env = _torchrl_env(_wrapped_er, use_mask=False, return_state=True)
    from torchrl.envs.utils import check_env_specs

    check_env_specs(env)
    td = env.rollout(4, break_when_any_done=False)
    info = td["next", "agent", "info"]
    assert {*ADDED_INFO_KEYS, "position", "door_open"} <= set(info.keys())
    reward = td["next", "agent", "reward"].squeeze(-1)
    torch.testing.assert_close(reward, info["env_reward"] + info["incentive"])
    pulled = td["agent", "action"] == LEVER
    torch.testing.assert_close(info["incentive"], pulled.float() * 0.5)


@pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested:UserWarning")
@pytest.mark.filterwarnings("ignore:Creating .* which inherits from WeightUpdaterBase:DeprecationWarning")
def test_torchrl_collector_steps_the_wrapped_env() -> None:
    env = _torchrl_env(_wrapped_er, use_mask=False)
    from torchrl.collectors import Collector

    collector = Collector(env, policy=None, frames_per_batch=8, total_frames=8)
    try:
        batches = list(collector)
    finally:
        collector.shutdown()
    assert len(batches) == 1 and batches[0].numel() == 8
    assert torch.isfinite(batches[0]["next", "agent", "info", "incentive"]).all()


@pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested:UserWarning")
def test_torchrl_rolls_out_the_aec_view_and_the_tax_wrapper() -> None:
    """The AEC path (one TorchRL group per agent) and the tax wrapper's rate vector (a fixed-shape info entry)."""
    aec = _torchrl_env(lambda: incentive(er_aec(n_agents=3, min_at_lever=1), PAY_LEVER), use_mask=True)
    td = aec.rollout(6)
    assert set(ADDED_INFO_KEYS) <= set(td["next", "agent_0", "info"].keys())
    tax = _torchrl_env(lambda: TaxWrapper(ipd_parallel(), rates=[0.1, 0.2], cutoffs=[0.0, 1.0], period=2))
    info = tax.rollout(4)["next", "player", "info"]
    assert set(TAX_INFO_KEYS) <= set(info.keys()) and info["marginal_rates"].shape == (4, 2, 2)
    torch.testing.assert_close(info["marginal_rates"][0], torch.tensor([[0.1, 0.2], [0.1, 0.2]]))


# ------------------------------------------------------------------------------------------------------------
# A CleanRL-style loop: plain torch, parameter sharing, GAE and the clipped PPO objective


def _collect(
    env: IncentiveWrapper, actor: nn.Module, critic: nn.Module, n_steps: int, seed: int
) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    """``n_steps`` joint steps (resetting at episode ends) as ``[T, N]`` tensors, and each finished episode's
    ``episode_stats()`` checked against the infos."""
    agents = env.possible_agents
    obs, infos = env.reset(seed=seed)
    reset_keys = {a: set(i) for a, i in infos.items()}
    rows: dict[str, list[Any]] = {k: [] for k in ("obs", "action", "logp", "value", "reward", "done")}
    stats, paid, earned = [], 0.0, 0.0
    for _ in range(n_steps):
        x = torch.as_tensor(np.stack([obs[a] for a in agents]))
        with torch.no_grad():
            dist = torch.distributions.Categorical(logits=actor(x))
            action = dist.sample()
        obs, rewards, _, _, infos = env.step(dict(zip(agents, action.tolist())))
        for a in agents:
            assert set(infos[a]) == reset_keys[a]
            assert rewards[a] == infos[a]["env_reward"] + infos[a]["incentive"]
        paid += sum(i["incentive"] for i in infos.values())
        earned += sum(i["env_reward"] for i in infos.values())
        done = not env.agents
        for key, value in (("obs", x), ("action", action), ("logp", dist.log_prob(action)),
                           ("value", critic(x).squeeze(-1).detach()), ("done", float(done)),
                           ("reward", torch.tensor([rewards[a] for a in agents]))):
            rows[key].append(value)
        if done:
            episode = env.episode_stats()
            assert episode["incentives_paid"] == pytest.approx(paid) and episode["welfare"] == pytest.approx(earned)
            stats.append(episode)
            obs, _ = env.reset()
            paid = earned = 0.0
    batch = {k: torch.stack(v) if k != "done" else torch.tensor(v) for k, v in rows.items()}
    return batch, stats


def _advantages(batch: dict[str, torch.Tensor], gamma: float = 0.99, lam: float = 0.95) -> torch.Tensor:
    """GAE over ``[T, N]`` with episode ends cutting the bootstrap (the last step bootstraps zero)."""
    rewards, values, done = batch["reward"], batch["value"], batch["done"]
    adv = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[1])
    for t in reversed(range(len(rewards))):
        live = 1.0 - done[t]
        next_value = values[t + 1] if t + 1 < len(rewards) else torch.zeros_like(values[t])
        delta = rewards[t] + gamma * next_value * live - values[t]
        running = delta + gamma * lam * live * running
        adv[t] = running
    return adv


def test_cleanrl_style_ppo_loop_trains_on_the_wrapped_parallel_env() -> None:
    torch.manual_seed(0)
    env = _wrapped_er()
    obs_dim = env.observation_space("agent_0").shape[0]
    n_actions = int(env.action_space("agent_0").n)
    actor = nn.Sequential(nn.Linear(obs_dim, 16), nn.Tanh(), nn.Linear(16, n_actions))
    critic = nn.Sequential(nn.Linear(obs_dim, 16), nn.Tanh(), nn.Linear(16, 1))
    optimizer = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=3e-3)
    before = [p.detach().clone() for p in actor.parameters()]
    episodes = []
    for iteration in range(3):
        batch, stats = _collect(env, actor, critic, n_steps=32, seed=iteration)
        episodes += stats
        adv = _advantages(batch)
        returns = (adv + batch["value"]).flatten()
        adv = ((adv - adv.mean()) / (adv.std() + 1e-8)).flatten()
        obs, actions, old_logp = batch["obs"].flatten(0, 1), batch["action"].flatten(), batch["logp"].flatten()
        for _ in range(2):
            logp = torch.distributions.Categorical(logits=actor(obs)).log_prob(actions)
            ratio = (logp - old_logp).exp()
            policy_loss = -torch.min(ratio * adv, ratio.clamp(0.8, 1.2) * adv).mean()
            value_loss = (critic(obs).squeeze(-1) - returns).pow(2).mean()
            loss = policy_loss + 0.5 * value_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, actor.parameters()))
    assert len(episodes) >= 3 and all(e["steps"] <= 5 for e in episodes)
