"""What the designer knows about a game, reached only through the incentive wrapper and the env module.

A :class:`Task` is built on a PettingZoo parallel env factory. The base class covers any game whose agents share
a Box observation space and a Discrete action space (Escape Room and the matrix dilemmas use it as is): the
incentive network sees the designer's observation plus the one-hot joint action and pays per action or per
agent. A game with special designer inputs or its own designers subclasses it in its own module of
:mod:`designer.tasks` and overrides the methods that differ; the registry of tasks is :mod:`designer.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from torch import nn

from designer.config import DesignerConfig
from designer.learners import LearnerConfig, NetFactory
from designer.networks import IncentiveMLP, ValueMLP
from wrappers import StepContext, joint_action_features

if TYPE_CHECKING:
    from designer.registry import DesignerFactory

__all__ = ["Output", "SlotRule", "Task", "action_slots", "agent_slots", "social_welfare"]

SlotRule = Callable[[StepContext], dict[str, int]]
"""``(ctx) -> {agent: slot}``: which incentive output pays each acting agent this step."""


def social_welfare(ctx: StepContext) -> float:
    """The designer's default reward: the sum of the agents' env rewards this step."""
    return float(sum(ctx.env_rewards.values()))


def action_slots(ctx: StepContext) -> dict[str, int]:
    """Pay each agent the designer's value for the action it took (the paper's ``output_type='action'``)."""
    return {a: int(ctx.actions[a]) for a in ctx.agents}


def agent_slots(ctx: StepContext) -> dict[str, int]:
    """Pay each agent the designer's value at its own index (``output_type='agent'``)."""
    return {a: ctx.possible_agents.index(a) for a in ctx.agents}


@dataclass(frozen=True)
class Output:
    """One kind of incentive output (``DesignerConfig.output``): how many values, and which pays whom."""

    n_slots: int
    rule: SlotRule


class Task:
    """Everything the trainer and designers need to know about one game.

    Args:
        name: the task's registered name.
        make_env: builds the (unwrapped) PettingZoo parallel env.
        learner, designer: the paper's agent and designer hyperparameters for this game.
        optimum: best achievable social welfare per episode, when known (for "percent of optimum" reports).
        env_kwargs: the keyword arguments the env is built with (recorded in checkpoints and reports).

    Attributes probed from one env: ``agents`` (the order on dim N of every tensor), ``obs_shape`` and
    ``n_actions`` (shared by all agents), ``state_shape`` (the designer's observation before flattening:
    ``env.state()`` when the game has one, else the agents' observations concatenated).
    """

    info_metrics: tuple[str, ...] = ()
    """Numeric ``infos`` keys summed per episode and reported in evaluations (``info/<key>``)."""
    designers: Mapping[str, DesignerFactory] | None = None
    """The task's own implementation of registered algorithms (None: the registry's designers)."""

    def __init__(
        self,
        name: str,
        make_env: Callable[[], ParallelEnv],
        *,
        learner: LearnerConfig | None = None,
        designer: DesignerConfig | None = None,
        optimum: float | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self._make_env = make_env
        self.learner = learner or LearnerConfig()
        self.designer = designer or DesignerConfig()
        self.optimum = optimum
        self.env_kwargs = dict(env_kwargs or {})
        env = make_env()
        self.agents = tuple(env.possible_agents)
        obs_space = env.observation_space(self.agents[0])
        act_space = env.action_space(self.agents[0])
        if not isinstance(act_space, spaces.Discrete) or not isinstance(obs_space, spaces.Box):
            raise TypeError(f"task {name!r} needs Box observations and Discrete actions, got {obs_space} and "
                            f"{act_space}")
        for a in self.agents:
            if env.action_space(a) != act_space or env.observation_space(a).shape != obs_space.shape:
                raise ValueError(f"agent {a} has different spaces from {self.agents[0]}; a task needs equal spaces")
        self.obs_shape = tuple(int(s) for s in obs_space.shape)
        self.n_actions = int(act_space.n)
        env.reset(seed=0)
        try:
            self.state_shape = tuple(np.asarray(env.state(), dtype=np.float32).shape)
        except (AttributeError, NotImplementedError):
            self.state_shape = (len(self.agents) * int(np.prod(self.obs_shape)),)
        env.close()

    # ------------------------------------------------------------------ the game
    def make_env(self) -> ParallelEnv:
        """A fresh (unwrapped) env of the game."""
        return self._make_env()

    def obs_row(self, obs: Any) -> np.ndarray:
        """One agent's observation as the array row the agents' networks read."""
        return np.asarray(obs)

    def action_mask(self, agent: str, obs: Any, info: Mapping[str, Any]) -> np.ndarray | None:
        """The 0/1 mask of allowed actions (None: every action is always allowed)."""
        return None

    # ---------------------------------------------------------------- the designer
    @property
    def outputs(self) -> Mapping[str, Output]:
        """The incentive outputs the designer may use (``DesignerConfig.output``)."""
        return {"action": Output(self.n_actions, action_slots), "agent": Output(len(self.agents), agent_slots)}

    def output(self, name: str) -> Output:
        """The output ``name``; ``ValueError`` listing the task's outputs otherwise."""
        outputs = self.outputs
        if name not in outputs:
            raise ValueError(f"task {self.name!r} has no slot rule for output {name!r}; its outputs are "
                             f"{sorted(outputs)}")
        return outputs[name]

    @property
    def feature_dim(self) -> int:
        """Length of the incentive network's input vector."""
        return int(np.prod(self.state_shape)) + len(self.agents) * self.n_actions

    def features(self, ctx: StepContext) -> np.ndarray:
        """The incentive network's input for a step: the designer's observation and the one-hot joint action."""
        return joint_action_features(ctx)

    def designer_reward(self, ctx: StepContext) -> float:
        """The designer's per-step reward (social welfare)."""
        return social_welfare(ctx)

    def state(self, ctx: StepContext) -> np.ndarray:
        """The designer's observation, flat (dicts of observations concatenated in agent order)."""
        obs = ctx.designer_obs
        if isinstance(obs, Mapping):
            return np.concatenate([np.asarray(obs[a], dtype=np.float32).reshape(-1) for a in ctx.possible_agents
                                   if a in obs])
        return np.asarray(obs, dtype=np.float32).reshape(-1)

    # ------------------------------------------------------------------ networks
    def incentive_net(self, output: str, hidden: tuple[int, ...]) -> nn.Module:
        """A fresh incentive network for the given output (the paper's ``incentive_mlp``)."""
        return IncentiveMLP(self.feature_dim, self.output(output).n_slots, hidden)

    def agent_nets(self) -> NetFactory | None:
        """The agents' actor/critic factory (None: :class:`~designer.networks.AgentNet` from the learner config)."""
        return None

    def state_critic(self, config: DesignerConfig) -> nn.Module:
        """The designer critic over flat designer observations ``[..., S] -> [...]`` (images: a conv trunk)."""
        shape = self.state_shape
        if len(shape) == 3:
            return _FlatImageCritic(shape, config.critic_hidden)
        return ValueMLP((int(np.prod(shape)) if shape else 1,), config.critic_hidden)


class _FlatImageCritic(ValueMLP):
    """A conv critic that takes the flattened image the rollout logs."""

    def __init__(self, shape: tuple[int, ...], hidden: tuple[int, ...]) -> None:
        super().__init__(shape, hidden, conv_channels=(6,), obs_scale=1.0 / 256.0)

    def forward(self, obs: Any) -> Any:
        return super().forward(obs.reshape(*obs.shape[:-1], *self.obs_shape))
