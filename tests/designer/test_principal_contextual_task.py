"""The contextual Escape Room designer task: its designer sees the lever's place, and ``action_type`` pays by role
(the lever's place this episode, start, door, another place) on the sequential and the batched rollout alike."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from designer.config import DesignerConfig, TrainConfig
from designer.experiments.trainer import Trainer
from designer.tasks import make_task
from designer.tasks.escape_room import ROLES, ContextualEscapeRoomTask, lever_roles
from wrappers import IncentiveWrapper, StepContext

ER21 = {"n_agents": 2, "min_at_lever": 1}
L = 3


def _record(seen: list[StepContext], ctx: StepContext) -> dict[str, float]:
    """An incentive function paying nothing that keeps each step's context."""
    seen.append(ctx)
    return {}


def test_task_is_registered_with_the_context_in_the_designers_features() -> None:
    task = make_task("escape_room_contextual", **ER21)
    assert isinstance(task, ContextualEscapeRoomTask) and task.env_kwargs["n_levers"] == L
    assert task.optimum == 9.0 and task.n_actions == L + 2
    assert task.state_shape == ((L + 2) * 2 + L,)
    assert task.output("action_type").n_slots == len(ROLES) == 4
    contexts = []
    for seed in range(12):
        seen: list[StepContext] = []
        env = IncentiveWrapper(task.make_env(), functools.partial(_record, seen))
        _, infos = env.reset(seed=seed)
        env.step({a: L for a in env.agents})  # everyone stays at the start: only the lever place differs
        features = task.features(seen[0])
        assert features.shape == (task.feature_dim,)
        lever = infos["agent_0"]["lever"]
        np.testing.assert_array_equal(features[(L + 2) * 2:(L + 2) * 2 + L], np.eye(L)[lever])
        contexts.append((lever, features.tobytes()))
    by_lever = {lever: f for lever, f in contexts}
    assert len(by_lever) == L and len(set(by_lever.values())) == L  # the features tell the places apart


@pytest.mark.parametrize(("lever", "actions", "roles"), [
    (0, (0, 1), (0, 3)),  # at the lever; at another lever place
    (2, (0, 2), (3, 0)),
    (1, (3, 4), (1, 2)),  # start (L), door (L + 1)
])
def test_lever_roles_by_hand(lever: int, actions: tuple[int, int], roles: tuple[int, int]) -> None:
    task = make_task("escape_room_contextual", **ER21)
    seed = next(s for s in range(100) if task.make_env().reset(seed=s)[1]["agent_0"]["lever"] == lever)
    seen: list[StepContext] = []
    env = IncentiveWrapper(task.make_env(), functools.partial(_record, seen))
    env.reset(seed=seed)
    env.step(dict(zip(env.possible_agents, actions, strict=True)))
    assert lever_roles(seen[0]) == dict(zip(env.possible_agents, roles, strict=True))


@pytest.mark.parametrize("vectorized", [False, True], ids=["sequential", "batched"])
def test_a_fixed_table_on_roles_pays_exactly_the_agents_at_the_lever(vectorized: bool) -> None:
    cfg = TrainConfig(task="escape_room_contextual", task_kwargs=ER21, batch_episodes=16, seed=0,
                      vectorized=vectorized)
    trainer = Trainer(cfg, designer=DesignerConfig(algorithm="fixed", output="action_type",
                                                   fixed_values=(1.0, 0.0, 0.0, 0.0)))
    batch, _ = trainer.collect(trainer.learner.params)
    lever = batch.obs[:, :, 0, -L:].argmax(-1)  # [B, T]: the lever place each agent saw
    pulled = (batch.actions == lever.unsqueeze(-1)) & (batch.mask > 0)
    assert pulled.any() and (~pulled & (batch.mask > 0)).any()
    torch.testing.assert_close(batch.paid, pulled.to(batch.paid.dtype))
