"""The Cleanup designer task: action types, the designer's inputs, and payments that match what was paid."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from designer import TrainConfig, Trainer
from designer.algorithms import MetaGradDesigner
from designer.tasks import make_task
from designer.tasks.cleanup import cleanup_action_types, cleanup_agent_action_types
from incentive_envs.cleanup import APPLE, CLEAN, OTHER
from wrappers import StepContext


def _ctx(cleaned: dict[str, bool], rewards: dict[str, float]) -> StepContext:
    agents = tuple(rewards)
    infos = {a: {"cleaned": cleaned[a], "apple": rewards[a] > 0} for a in agents}
    return StepContext(designer_obs=None, actions=dict.fromkeys(agents, 0), env_rewards=rewards, infos=infos,
                       agents=agents, possible_agents=agents, action_spaces={}, step=0)


def test_action_types_follow_the_paper():
    """Clean beats apple beats other: a cleaner that also ate an apple is paid as a cleaner."""
    ctx = _ctx({"a": True, "b": False, "c": False, "d": True}, {"a": 0.0, "b": 1.0, "c": 0.0, "d": 1.0})
    assert cleanup_action_types(ctx) == {"a": CLEAN, "b": APPLE, "c": OTHER, "d": CLEAN}
    assert cleanup_agent_action_types(ctx) == {"a": CLEAN, "b": 3 + APPLE, "c": 6 + OTHER, "d": 9 + CLEAN}


def test_per_agent_action_type_designer_pays_each_agent_its_own_slot():
    """``output="agent_action_type"``: six outputs on the 2-agent map, agent i's type k paid from slot 3i + k,
    and the differentiable recomputation still equals what was paid."""
    task = make_task("cleanup", max_steps=10)
    designer = replace(task.designer, output="agent_action_type")
    t = Trainer(TrainConfig(task="cleanup", episodes=2, seed=1, task_kwargs={"max_steps": 10}), designer=designer,
                task=task)
    batch, _ = t.collect(t.learner.params)
    assert t.designer.payments(batch).shape == batch.paid.shape
    torch.testing.assert_close(t.designer.payments(batch).detach(), batch.paid, rtol=1e-5, atol=1e-6)
    valid = batch.mask > 0
    agent_index = torch.arange(2).expand_as(batch.slots)
    assert torch.all(batch.slots[valid] // 3 == agent_index[valid])
    assert int(batch.slots.max()) <= 5


def test_cleanup_payments_recomputed_from_logs_equal_the_paid_ones():
    """Through the real env and wrapper: each agent was paid 2*sigmoid(f(map, flags))[type], and the designer's
    differentiable recomputation from the logged inputs gives the same numbers."""
    t = Trainer(TrainConfig(task="cleanup", episodes=2, seed=0, task_kwargs={"max_steps": 20}))
    designer = t.designer
    assert isinstance(designer, MetaGradDesigner)
    batch, stats = t.collect(t.learner.params)
    assert batch.features.shape[-1] == 9 * 9 * 3 + 2 * 2
    recomputed = designer.payments(batch)
    torch.testing.assert_close(recomputed.detach(), batch.paid, rtol=1e-5, atol=1e-6)
    assert recomputed.requires_grad
    assert float(batch.paid.max()) < 2.0 and float(batch.paid[batch.mask > 0].min()) > 0.0
    assert abs(float(batch.paid.sum()) - sum(s.incentives for s in stats)) < 1e-3
    # the slots are the action types: cleaning actions (5) are paid from slot CLEAN
    cleaned = (batch.actions == 5) & (batch.mask > 0)
    assert torch.all(batch.slots[cleaned] == CLEAN)


def test_independent_image_policies_do_not_share_parameters():
    """``shared=False`` on image observations: one conv trunk and head per agent, so agent 0's logits do not
    depend on agent 1's parameters or observation, and a batch of agents runs in one call."""
    from designer.networks import AgentNet

    torch.manual_seed(0)
    net = AgentNet(2, (9, 9, 3), 6, (16,), conv_channels=(4,), kernel=3)
    obs = torch.rand(5, 2, 9, 9, 3, requires_grad=True)
    logits = net(obs)
    assert logits.shape == (5, 2, 6)
    logits[:, 0].sum().backward()
    assert float(obs.grad[:, 1].abs().sum()) == 0.0 and float(obs.grad[:, 0].abs().sum()) > 0.0
    trunks = list(net.trunk)
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0.0 for p in trunks[1].parameters())
    assert all(float(p.grad.abs().sum()) > 0.0 for p in trunks[0].parameters())
    with pytest.raises(ValueError, match="3 agents"):
        net(torch.rand(5, 3, 9, 9, 3))
