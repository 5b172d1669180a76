"""Tasks: what the designer needs to know about a game, reached only through the incentive wrapper.

A :class:`Task` bundles the env factory, the agents' observation/action shapes, what the incentive network sees
(``features``), which output each agent is paid from (``slots``), the designer's reward, and the paper's default
hyperparameters for that game. :func:`generic_task` covers any PettingZoo game with Box observations and
Discrete actions (Escape Room and the matrix dilemmas use it); tasks with special designer inputs (Cleanup's
image plus cleaning flags) add their own builders to :data:`TASKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from torch import nn

from designer.config import DesignerConfig
from designer.learners import LearnerConfig, NetFactory
from designer.networks import IncentiveMLP
from designer.rollout import obs_array
from wrappers import StepContext, joint_action_features

__all__ = ["TASKS", "Task", "generic_task", "make_task", "social_welfare"]

SlotRule = Callable[[StepContext], dict[str, int]]


def social_welfare(ctx: StepContext) -> float:
    """The designer's default reward: the sum of the agents' env rewards this step."""
    return float(sum(ctx.env_rewards.values()))


def flat_designer_obs(ctx: StepContext) -> np.ndarray:
    """The designer's observation flattened (dicts of observations concatenated in agent order)."""
    obs = ctx.designer_obs
    if isinstance(obs, Mapping):
        return np.concatenate([np.asarray(obs[a], dtype=np.float32).reshape(-1) for a in ctx.possible_agents
                               if a in obs])
    return np.asarray(obs, dtype=np.float32).reshape(-1)


def action_slots(ctx: StepContext) -> dict[str, int]:
    """Pay each agent the designer's value for the action it took (the paper's ``output_type='action'``)."""
    return {a: int(ctx.actions[a]) for a in ctx.agents}


def agent_slots(ctx: StepContext) -> dict[str, int]:
    """Pay each agent the designer's value at its own index (``output_type='agent'``)."""
    return {a: ctx.possible_agents.index(a) for a in ctx.agents}


@dataclass(frozen=True)
class Task:
    """Everything the trainer needs to run a designer on one game.

    Attributes:
        name: task name.
        make_env: builds the (unwrapped) PettingZoo parallel env.
        agents: agent order used on dim N of every tensor.
        obs_shape, n_actions: each agent's observation shape and number of actions (shared by all agents).
        feature_dim: length of the incentive network's input vector.
        features: the incentive network's input for a step.
        slot_rules: per ``DesignerConfig.output``, which output slot each agent is paid from.
        n_slots: per ``DesignerConfig.output``, the number of incentive outputs.
        designer_reward: the designer's per-step reward.
        state_of: the designer's observation (flat) for a designer critic.
        state_shape: shape of the designer's observation before flattening (images get a CNN critic).
        learner: the paper's agent hyperparameters for this game.
        designer: the paper's designer hyperparameters for this game.
        optimum: best achievable social welfare per episode, when known (for "percent of optimum" reports).
        make_incentive_net: builds the incentive network from ``(task, n_slots, hidden)``.
        env_kwargs: the keyword arguments the env was built with.
        info_metrics: numeric ``infos`` keys summed per episode and reported in evaluations (``info/<key>``).
        obs_of: turns one agent's observation into the array row the agents' networks read (e.g. flattens a
            Dict observation).
        action_mask_of: ``(agent, obs, info) -> 0/1 mask`` of allowed actions, for games with masks.
        make_agent_net: builds the agents' actor and critic networks (default: :class:`AgentNet`).
        make_designer: ``(task, config, generator) -> Designer | None``: the task's own designer for a config
            (e.g. tax designers acting through a tax-rate control point); None (or returning None): the generic
            designer named by ``config.algorithm``.
        make_state_critic: ``(task, config) -> module`` mapping flat designer observations ``[..., S]`` to values
            ``[...]``, for a designer critic that needs the task's structure (default: MLP or conv critic).
    """

    name: str
    make_env: Callable[[], ParallelEnv]
    agents: tuple[str, ...]
    obs_shape: tuple[int, ...]
    n_actions: int
    feature_dim: int
    features: Callable[[StepContext], np.ndarray]
    slot_rules: Mapping[str, SlotRule]
    n_slots: Mapping[str, int]
    designer_reward: Callable[[StepContext], float] = social_welfare
    state_of: Callable[[StepContext], np.ndarray] = flat_designer_obs
    state_shape: tuple[int, ...] = ()
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    designer: DesignerConfig = field(default_factory=DesignerConfig)
    optimum: float | None = None
    make_incentive_net: Callable[[Task, int, tuple[int, ...]], nn.Module] | None = None
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    obs_of: Callable[[Any], np.ndarray] = obs_array
    info_metrics: tuple[str, ...] = ()
    action_mask_of: Callable[[str, Any, dict[str, Any]], np.ndarray] | None = None
    make_agent_net: NetFactory | None = None
    make_designer: Callable[[Task, DesignerConfig, Any], Any] | None = None
    make_state_critic: Callable[[Task, DesignerConfig], nn.Module] | None = None

    def incentive_net(self, output: str, hidden: tuple[int, ...]) -> nn.Module:
        """A fresh incentive network for the given output type."""
        if output not in self.n_slots:
            raise ValueError(f"task {self.name!r} supports outputs {sorted(self.n_slots)}, got {output!r}")
        if self.make_incentive_net is not None:
            return self.make_incentive_net(self, self.n_slots[output], hidden)
        return IncentiveMLP(self.feature_dim, self.n_slots[output], hidden)

    def with_defaults(self, learner: LearnerConfig | None = None, designer: DesignerConfig | None = None) -> Task:
        return replace(self, learner=learner or self.learner, designer=designer or self.designer)


def generic_task(
    name: str,
    make_env: Callable[[], ParallelEnv],
    *,
    learner: LearnerConfig | None = None,
    designer: DesignerConfig | None = None,
    optimum: float | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> Task:
    """A task for any PettingZoo game whose agents share a Box observation space and a Discrete action space.

    The incentive network sees the designer's observation (``env.state()`` when the game has one) plus the
    one-hot joint action, and pays per action (``"action"``) or per agent (``"agent"``).
    """
    env = make_env()
    agents = tuple(env.possible_agents)
    obs_space = env.observation_space(agents[0])
    act_space = env.action_space(agents[0])
    if not isinstance(act_space, spaces.Discrete) or not isinstance(obs_space, spaces.Box):
        raise TypeError(f"generic_task needs Box observations and Discrete actions, got {obs_space} and {act_space}")
    for a in agents:
        if env.action_space(a) != act_space or env.observation_space(a).shape != obs_space.shape:
            raise ValueError(f"agent {a} has different spaces from {agents[0]}; generic_task needs equal spaces")
    env.reset(seed=0)
    try:
        state = np.asarray(env.state(), dtype=np.float32)
        state_dim = state.size
        state_shape = tuple(state.shape)
    except (AttributeError, NotImplementedError):
        state_dim = len(agents) * int(np.prod(obs_space.shape))
        state_shape = (state_dim,)
    env.close()
    n_actions = int(act_space.n)
    return Task(
        name=name,
        make_env=make_env,
        agents=agents,
        obs_shape=tuple(int(s) for s in obs_space.shape),
        n_actions=n_actions,
        feature_dim=state_dim + len(agents) * n_actions,
        features=joint_action_features,
        slot_rules={"action": action_slots, "agent": agent_slots},
        n_slots={"action": n_actions, "agent": len(agents)},
        state_shape=state_shape,
        learner=learner or LearnerConfig(),
        designer=designer or DesignerConfig(),
        optimum=optimum,
        env_kwargs=dict(env_kwargs or {}),
    )


def escape_room_task(n_agents: int = 5, min_at_lever: int = 2, max_steps: int = 5, randomize: bool = False) -> Task:
    """ER(N, M) with the paper's REINFORCE agents and MetaGrad designer (method.md §2.3, §5.1)."""
    from incentive_envs.escape_room import EscapeRoomEnv, optimal_welfare

    kwargs = {"n_agents": n_agents, "min_at_lever": min_at_lever, "max_steps": max_steps, "randomize": randomize}
    return generic_task(
        "escape_room",
        lambda: EscapeRoomEnv(**kwargs),
        optimum=optimal_welfare(n_agents, min_at_lever),
        env_kwargs=kwargs,
    )


def matrix_task(game: str = "ipd", **env_kwargs: Any) -> Task:
    """A matrix dilemma (``ipd``, ``stag_hunt``, ``chicken``) with fast-learning defaults.

    One round per episode by default (the one-shot game of Baumann et al. 2018; pass ``max_cycles`` for the
    iterated game). The agents are small REINFORCE learners with Adam (the paper has no matrix-game
    hyperparameters); the designer pays per action with ``scale`` 4, enough to make cooperation dominant in
    the PD (defecting gains at most T - R = 2).
    """
    import importlib

    module = importlib.import_module(f"incentive_envs.{game}")
    kwargs = {"max_cycles": 1, **env_kwargs}
    return generic_task(
        game,
        lambda: module.parallel_env(**kwargs),
        optimum=_best_stage_welfare(module.parallel_env(**kwargs)) * kwargs["max_cycles"],
        learner=LearnerConfig(optimizer="adam", lr=1e-2, entropy_coef=0.01, hidden=(16,)),
        designer=DesignerConfig(scale=4.0, lr=3e-2, cost_lr=1e-3),
        env_kwargs=kwargs,
    )


CLEAN, APPLE, OTHER = 0, 1, 2
"""Cleanup's action types: the designer pays one value per type (method.md §3.2.6)."""


def cleanup_action_types(ctx: StepContext) -> dict[str, int]:
    """Each agent's action type this step: clean if it fired the cleaning beam, else apple if it collected
    one (env reward > 0), else other."""
    types = {}
    for a in ctx.agents:
        if ctx.infos[a].get("cleaned", False):
            types[a] = CLEAN
        elif ctx.env_rewards[a] > 0:
            types[a] = APPLE
        else:
            types[a] = OTHER
    return types


def cleanup_agent_action_types(ctx: StepContext) -> dict[str, int]:
    """One slot per (agent, action type): agent ``i`` of type ``k`` is paid slot ``3 i + k``, so the designer can
    pay one agent for cleaning and another for harvesting (the paper's output is symmetric across agents)."""
    return {a: 3 * ctx.possible_agents.index(a) + k for a, k in cleanup_action_types(ctx).items()}


class CleanupFeatures:
    """The Cleanup designer's input: the global RGB map (flattened, raw 0..255) and a one-hot "fired the
    cleaning beam this step" flag pair per agent (the paper's ``obs_cleaned_1hot``)."""

    def __call__(self, ctx: StepContext) -> np.ndarray:
        image = np.asarray(ctx.designer_obs, dtype=np.float32).reshape(-1)
        flags = np.zeros((len(ctx.possible_agents), 2), dtype=np.float32)
        for i, a in enumerate(ctx.possible_agents):
            cleaned = a in ctx.agents and bool(ctx.infos[a].get("cleaned", False))
            flags[i, int(cleaned)] = 1.0
        return np.concatenate([image, flags.reshape(-1)])


def cleanup_task(map_name: str = "small", **env_kwargs: Any) -> Task:
    """Cleanup with the paper's shared CNN actor-critic agents and image-based designer (method.md §2.4, §5.2).

    The designer pays ``2 * sigmoid`` by action type (clean / collected an apple / other) both in the env and in
    its model of the agents' update (the original paid the raw sigmoid in the env: bug §7.1.1), and both updates
    use means over agent-steps (§7.1.2). Its outer weights are GAE advantages from a critic on the global map.
    """
    from designer.networks import ImageIncentiveNet
    from incentive_envs.cleanup import parallel_env

    kwargs = {"map_name": map_name, **env_kwargs}
    env = parallel_env(**kwargs)
    agents = tuple(env.possible_agents)
    obs_shape = tuple(int(s) for s in env.observation_space(agents[0]).shape)
    state_shape = tuple(int(s) for s in env.state_space.shape)
    n_actions = int(env.action_space(agents[0]).n)
    env.close()
    image_dim = int(np.prod(state_shape))

    def make_net(task: Task, n_slots: int, hidden: tuple[int, ...]) -> nn.Module:
        return ImageIncentiveNet(state_shape, 2 * len(agents), n_slots, hidden=hidden[0] if hidden else 64)

    return Task(
        name="cleanup",
        make_env=lambda: parallel_env(**kwargs),
        agents=agents,
        obs_shape=obs_shape,
        n_actions=n_actions,
        feature_dim=image_dim + 2 * len(agents),
        features=CleanupFeatures(),
        slot_rules={"action_type": cleanup_action_types, "agent_action_type": cleanup_agent_action_types,
                    "agent": agent_slots},
        n_slots={"action_type": 3, "agent_action_type": 3 * len(agents), "agent": len(agents)},
        state_shape=state_shape,
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
        make_incentive_net=make_net,
        env_kwargs=kwargs,
        info_metrics=("cleaned", "waste_cleared"),
    )


def _best_stage_welfare(env: ParallelEnv) -> float:
    """The best one-round social welfare of a matrix game, by trying every joint action."""
    import itertools

    agents = list(env.possible_agents)
    best = -np.inf
    for joint in itertools.product(*(range(int(env.action_space(a).n)) for a in agents)):
        env.reset(seed=0)
        _, rewards, _, _, _ = env.step(dict(zip(agents, joint)))
        best = max(best, float(sum(rewards.values())))
    return best


TASKS: dict[str, Callable[..., Task]] = {
    "cleanup": cleanup_task,
    "escape_room": escape_room_task,
    "ipd": lambda **kw: matrix_task("ipd", **kw),
    "stag_hunt": lambda **kw: matrix_task("stag_hunt", **kw),
    "chicken": lambda **kw: matrix_task("chicken", **kw),
    "gather_trade_build": lambda **kw: __import__("designer.gtb", fromlist=["gtb_task"]).gtb_task(**kw),
}


def make_task(name: str, **kwargs: Any) -> Task:
    """Build a registered task by name; unknown names raise ``KeyError`` listing the known ones."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name](**kwargs)
