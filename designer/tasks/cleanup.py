"""Cleanup for the designer: an image-based designer paying by action type (method.md §2.4, §3.2.6, §5.2).

The action types (clean / collected an apple / other) are the env's own (:func:`incentive_envs.cleanup.action_type`).
The designer pays ``2 * sigmoid`` per type both in the env and in its model of the agents' update (the original
paid the raw sigmoid in the env: bug §7.1.1), and both updates use means over agent-steps (§7.1.2). Its outer
weights are GAE advantages from a critic on the global map.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from torch import nn

from designer.config import DesignerConfig
from designer.learners import LearnerConfig
from designer.networks import ImageIncentiveNet
from designer.registry import register_task
from designer.task import Output, Task, agent_slots, batched_agent_slots, lift_features, vectorizes
from incentive_envs import make_batched
from incentive_envs.cleanup import ACTION_TYPES, APPLE, CLEAN, OTHER, action_type, parallel_env
from wrappers import BatchedStepContext, StepContext

__all__ = [
    "CleanupTask",
    "batched_cleanup_action_types",
    "batched_cleanup_agent_action_types",
    "cleanup_action_types",
    "cleanup_agent_action_types",
    "cleanup_task",
]


def cleanup_action_types(ctx: StepContext) -> dict[str, int]:
    """Each acting agent's action type this step (the env's :data:`~incentive_envs.cleanup.ACTION_TYPES` index)."""
    return {a: action_type(ctx.infos[a]) for a in ctx.agents}


def cleanup_agent_action_types(ctx: StepContext) -> dict[str, int]:
    """One slot per (agent, action type): agent ``i`` of type ``k`` is paid slot ``K i + k``, so the designer can
    pay one agent for cleaning and another for harvesting (the paper's output is symmetric across agents)."""
    k = len(ACTION_TYPES)
    return {a: k * ctx.possible_agents.index(a) + t for a, t in cleanup_action_types(ctx).items()}


def batched_cleanup_action_types(ctx: BatchedStepContext) -> NDArray[np.int64]:
    """:func:`cleanup_action_types` of every copy ``[B, N]``: :func:`~incentive_envs.cleanup.action_type`
    vectorized (clean beats apple beats other; 0 where an agent did not act)."""
    types = np.where(ctx.infos["cleaned"].astype(bool), CLEAN, np.where(ctx.infos["apple"].astype(bool), APPLE, OTHER))
    return np.where(ctx.active, types, 0)


def batched_cleanup_agent_action_types(ctx: BatchedStepContext) -> NDArray[np.int64]:
    """:func:`cleanup_agent_action_types` of every copy ``[B, N]``: slot ``K i + type``."""
    slots = len(ACTION_TYPES) * np.arange(ctx.shape[1]) + batched_cleanup_action_types(ctx)
    return np.where(ctx.active, slots, 0)


class CleanupTask(Task):
    """The designer sees the global RGB map (flattened, raw 0..255) and a one-hot "fired the cleaning beam this
    step" flag pair per agent (the paper's ``obs_cleaned_1hot``), through the paper's ``incentive_ssd`` network."""

    info_metrics = ("cleaned", "waste_cleared")

    @property
    def outputs(self) -> Mapping[str, Output]:
        n, k = len(self.agents), len(ACTION_TYPES)
        return {"action_type": Output(k, cleanup_action_types, batched_cleanup_action_types),
                "agent_action_type": Output(k * n, cleanup_agent_action_types, batched_cleanup_agent_action_types),
                "agent": Output(n, agent_slots, batched_agent_slots)}

    @property
    def feature_dim(self) -> int:
        return int(np.prod(self.state_shape)) + 2 * len(self.agents)

    def features(self, ctx: StepContext) -> np.ndarray:
        image = np.asarray(ctx.designer_obs, dtype=np.float32).reshape(-1)
        flags = np.zeros((len(ctx.possible_agents), 2), dtype=np.float32)
        for i, a in enumerate(ctx.possible_agents):
            cleaned = a in ctx.agents and bool(ctx.infos[a].get("cleaned", False))
            flags[i, int(cleaned)] = 1.0
        return np.concatenate([image, flags.reshape(-1)])

    @vectorizes("features", lift_features)
    def batched_features(self, ctx: BatchedStepContext) -> NDArray[np.float32]:
        """:meth:`features` of every copy ``[B, F]``: the map images and the cleaned flags, vectorized."""
        n_envs, n_agents = ctx.shape
        image = np.asarray(ctx.designer_obs, dtype=np.float32).reshape(n_envs, -1)
        cleaned = (ctx.active & ctx.infos["cleaned"].astype(bool)).astype(np.int64)
        flags = np.zeros((n_envs, n_agents, 2), dtype=np.float32)
        np.put_along_axis(flags, cleaned[..., None], 1.0, axis=2)
        return np.concatenate([image, flags.reshape(n_envs, -1)], axis=1)

    def incentive_net(self, output: str, hidden: tuple[int, ...]) -> nn.Module:
        return ImageIncentiveNet(self.state_shape, 2 * len(self.agents), self.output(output).n_slots,
                                 hidden=hidden[0] if hidden else 64)


@register_task("cleanup")
def cleanup_task(map_name: str = "small", **env_kwargs: Any) -> CleanupTask:
    """Cleanup with the paper's shared CNN actor-critic agents and image-based designer."""
    kwargs = {"map_name": map_name, **env_kwargs}
    return CleanupTask(
        "cleanup",
        functools.partial(parallel_env, **kwargs),
        learner=LearnerConfig(
            kind="actor_critic", optimizer="sgd", lr=6.73e-4, gamma=0.99, entropy_coef=0.129, reduction="mean",
            epsilon_start=1.0, epsilon_end=0.05, epsilon_iters=100, shared=True, hidden=(64, 64),
            conv_channels=(6,), kernel=3, critic_lr=5.54e-4, critic_hidden=(64, 64), target_tau=7.93e-3,
            obs_scale=1.0 / 256.0,
        ),
        designer=DesignerConfig(
            output="action_type", hidden=(64,), scale=2.0, lr=1.24e-5, cost="none", outer_reduction="mean",
            use_critic=True, critic_lr=2.4e-5, critic_tau=0.114, gae_lambda=0.99, dual_values=(0.0, 1.0, 2.0),
            dual_lr=1.15e-5, dual_entropy=0.230,
        ),
        env_kwargs=kwargs,
        make_batched=functools.partial(make_batched, "cleanup", **kwargs),
    )
