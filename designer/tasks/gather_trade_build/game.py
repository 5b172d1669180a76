"""The Gather-Trade-Build game as the tax designers see it: their options and the :class:`GTBTask`.

Everything game-specific comes from the env module: the observation and state layout
(:attr:`GatherTradeBuildEnv.schema <incentive_envs.gather_trade_build.GatherTradeBuildEnv.schema>`), the step
infos (:data:`incentive_envs.gtb.STEP_INFO_KEYS`) and the reward rules (:mod:`incentive_envs.gtb.rewards`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from torch import nn

from designer.config import DesignerConfig
from designer.learners import NetFactory
from designer.registry import DesignerFactory
from designer.task import Output, Task
from designer.tasks.gather_trade_build.networks import AGENT_CONV, StateCritic, agent_net_factory
from designer.tasks.gather_trade_build.records import StepFeatures
from incentive_envs.gather_trade_build import batched_env, parallel_env
from incentive_envs.gtb.tax_models import annealed_rate_cap
from wrappers import BatchedStepContext, StepContext

__all__ = ["R_SCALAR", "TAX_MODELS", "GTBTask", "GTBTaxOptions", "as_gtb_task"]

TAX_MODELS: Final = ("free_market", "us_federal", "saez")
R_SCALAR: Final = 0.01
"""The MetaGrad designer's reward is ``R_SCALAR * productivity * equality`` after each step (method.md §2.5)."""


@dataclass(frozen=True)
class GTBTaxOptions:
    """Tax-designer settings that are not in :class:`DesignerConfig` (task keyword arguments).

    Attributes:
        tax_model: the fixed model used by ``algorithm="none"``: ``free_market``, ``us_federal`` or ``saez``.
        anneal_cap: anneal the US federal / fixed rates' cap (method.md §3.3.7).
        initial_max_tax_rate, n_episodes_reach_max_rate: the cap rises linearly from the first to 1 over the
            second (completed training episodes); used by the dual-RL planner and, with ``anneal_cap``, by
            the fixed schedules.
        planner_epsilon_start, planner_epsilon_end, planner_epsilon_iters: the dual-RL planner's exploration.
        planner_critic_lr, planner_grad_clip: its critic learning rate and gradient-norm clip.
        rate_step, n_levels: the planner's levels: 0 keeps the rate, ``k`` sets ``(k - 1) * rate_step``.
        agent_net: the agents' network: ``"paper"`` (two 6@5x5 conv layers on the 11x11 view) or ``"cpu"``
            (no conv: the view flattened into the dense layer; several times cheaper on a CPU, not the paper's).
    """

    tax_model: str = "free_market"
    anneal_cap: bool = False
    initial_max_tax_rate: float = 0.1
    n_episodes_reach_max_rate: int = 8000
    planner_epsilon_start: float = 0.5
    planner_epsilon_end: float = 0.05
    planner_epsilon_iters: int = 5000
    planner_critic_lr: float = 2.0762e-4
    planner_grad_clip: float = 10.0
    rate_step: float = 0.05
    n_levels: int = 22
    agent_net: str = "paper"

    def __post_init__(self) -> None:
        if self.agent_net not in AGENT_CONV:
            raise ValueError(f"agent_net must be one of {sorted(AGENT_CONV)}, got {self.agent_net!r}")
        if self.tax_model not in TAX_MODELS:
            raise ValueError(f"tax_model must be one of {TAX_MODELS}, got {self.tax_model!r}")
        if self.n_episodes_reach_max_rate < 1 or self.planner_epsilon_iters < 1:
            raise ValueError("n_episodes_reach_max_rate and planner_epsilon_iters must be >= 1")
        if not 0 <= self.initial_max_tax_rate <= 1:
            raise ValueError(f"initial_max_tax_rate must be in [0, 1], got {self.initial_max_tax_rate}")
        if self.n_levels < 2 or not math.isclose((self.n_levels - 2) * self.rate_step, 1.0):
            raise ValueError(f"levels must reach rate 1: (n_levels - 2) * rate_step = 1, got {self.n_levels}, "
                             f"{self.rate_step}")

    def cap(self, completed_episodes: int) -> float:
        return annealed_rate_cap(completed_episodes, self.initial_max_tax_rate, self.n_episodes_reach_max_rate)


class GTBTask(Task):
    """Shared PPO agents over the flat observation (masked actions), the planner's state as the designer's
    observation, and the tax designers of :mod:`designer.tasks.gather_trade_build.designers`. Its batched env is
    the native :class:`incentive_envs.gtb.vector.BatchedGTBEnv`."""

    def __init__(self, options: GTBTaxOptions, env_kwargs: Mapping[str, Any],
                 designers: Mapping[str, DesignerFactory], **configs: Any) -> None:
        make_env = functools.partial(parallel_env, **env_kwargs)
        super().__init__("gather_trade_build", make_env, env_kwargs=env_kwargs,
                         make_batched=functools.partial(batched_env, **env_kwargs), **configs)
        self.designers = dict(designers)
        env = make_env()
        self.schema = env.schema
        env.close()
        self.options = options
        self.step_features = StepFeatures(self.schema)

    @property
    def outputs(self) -> Mapping[str, Output]:
        return {}  # the designers set tax rates; none pays an incentive

    @property
    def feature_dim(self) -> int:
        return self.step_features.size

    def features(self, ctx: StepContext) -> np.ndarray:
        return self.step_features(ctx)

    def designer_reward(self, ctx: StepContext) -> float:
        info = ctx.infos[ctx.possible_agents[0]]
        return R_SCALAR * float(info["productivity"]) * float(info["equality"])

    def action_mask(self, agent: str, obs: Any, info: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(info["action_mask"], dtype=np.float32)

    # the batched rollout's counterparts of the three rules above, vectorized over the copies
    def batched_features(self, ctx: BatchedStepContext) -> NDArray[np.float32]:
        return self.step_features.batched(ctx)

    def batched_designer_reward(self, ctx: BatchedStepContext) -> NDArray[np.float64]:
        infos = ctx.infos
        return R_SCALAR * np.asarray(infos["productivity"][:, 0], dtype=np.float64) * np.asarray(
            infos["equality"][:, 0], dtype=np.float64)

    def batched_action_mask(self, obs: NDArray[Any], infos: Mapping[str, NDArray[Any]]) -> NDArray[np.float32]:
        return np.asarray(infos["action_mask"], dtype=np.float32)

    def agent_nets(self) -> NetFactory:
        return agent_net_factory(self.schema, self.options.agent_net)

    def state_critic(self, config: DesignerConfig) -> nn.Module:
        return StateCritic(self.schema, config.critic_hidden)


def as_gtb_task(task: Task) -> GTBTask:
    """``task`` as the Gather-Trade-Build task; ``TypeError`` for any other (the tax designers need its schema)."""
    if not isinstance(task, GTBTask):
        raise TypeError(f"the tax designers act on the gather_trade_build task, got {task.name!r}")
    return task
