"""What the designer knows about a game, reached only through the incentive wrapper and the env module.

A :class:`Task` is built on a PettingZoo parallel env factory. The base class covers any game whose agents share
a Box observation space and a Discrete action space (Escape Room and the matrix dilemmas use it as is): the
incentive network sees the designer's observation plus the one-hot joint action and pays per action or per
agent. A game with special designer inputs or its own designers subclasses it in its own module of
:mod:`designer.tasks` and overrides the methods that differ; the registry of tasks is :mod:`designer.registry`.

Batched counterparts (the batched rollout, :mod:`designer.batched_rollout`): every per-step rule has one taking a
:class:`~wrappers.vector.BatchedStepContext` of B copies and returning rows ``[B, ...]`` equal to the per-step
rule of each copy (zeros for copies whose episode is over): ``batched_features``, ``batched_designer_reward``,
``batched_state``, each :class:`Output`'s ``batched_rule``, and ``batched_obs`` / ``batched_action_mask`` for the
agents' inputs. The generic task's are vectorized; a subclass that overrides a per-step rule without its batched
counterpart gets the rule lifted copy by copy (correct for any task, one Python call per copy).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray
from pettingzoo import AECEnv, ParallelEnv
from torch import nn

from designer.config import DesignerConfig
from designer.learners import LearnerConfig, NetFactory
from designer.networks import IncentiveMLP, ValueMLP
from incentive_envs.vector import BatchedParallelEnv, batch_of
from wrappers import BatchedStepContext, StepContext, batched_joint_action_features, joint_action_features
from wrappers.core import has_state

if TYPE_CHECKING:
    from designer.registry import DesignerFactory

__all__ = [
    "BatchedSlotRule",
    "CannotBatch",
    "Output",
    "PerCopySlots",
    "SlotRule",
    "Task",
    "action_slots",
    "agent_slots",
    "batched_action_slots",
    "batched_agent_slots",
    "batched_social_welfare",
    "check_game",
    "lift_features",
    "per_copy",
    "social_welfare",
    "sum_over_agents",
    "vectorizes",
]


class CannotBatch(ValueError):
    """This task, designer or env has no batched path (the message says why); use the sequential rollout."""


SlotRule = Callable[[StepContext], dict[str, int]]
"""``(ctx) -> {agent: slot}``: which incentive output pays each acting agent this step."""
BatchedSlotRule = Callable[[BatchedStepContext], NDArray[np.int64]]
"""``(ctx) -> [B, N]``: which incentive output pays each agent of each copy (0 where the agent did not act)."""


def social_welfare(ctx: StepContext) -> float:
    """The designer's default reward: the sum of the agents' env rewards this step."""
    return float(sum(ctx.env_rewards.values()))


def action_slots(ctx: StepContext) -> dict[str, int]:
    """Pay each agent the designer's value for the action it took (the paper's ``output_type='action'``)."""
    return {a: int(ctx.actions[a]) for a in ctx.agents}


def agent_slots(ctx: StepContext) -> dict[str, int]:
    """Pay each agent the designer's value at its own index (``output_type='agent'``)."""
    return {a: ctx.possible_agents.index(a) for a in ctx.agents}


def sum_over_agents(values: NDArray[Any], active: NDArray[np.bool_]) -> NDArray[np.float64]:
    """``[B]``: each copy's sum of ``values[b, i]`` over its acting agents, added in agent order like Python's
    ``sum`` over one step's dict, so that each row equals the per-step sum bit for bit."""
    total = np.zeros(values.shape[0])
    for i in range(values.shape[1]):
        total = total + np.where(active[:, i], values[:, i], 0.0)
    return total


def batched_social_welfare(ctx: BatchedStepContext) -> NDArray[np.float64]:
    """:func:`social_welfare` of every copy ``[B]`` (0 for copies whose episode is over)."""
    return sum_over_agents(ctx.env_rewards, ctx.active)


def batched_action_slots(ctx: BatchedStepContext) -> NDArray[np.int64]:
    """:func:`action_slots` of every copy ``[B, N]``."""
    return np.where(ctx.active, ctx.actions - int(ctx.action_space.start), 0)


def batched_agent_slots(ctx: BatchedStepContext) -> NDArray[np.int64]:
    """:func:`agent_slots` of every copy ``[B, N]``."""
    return np.where(ctx.active, np.arange(ctx.shape[1]), 0)


def per_copy(ctx: BatchedStepContext, fn: Callable[[StepContext], Any], shape: tuple[int, ...],
             dtype: Any = np.float32) -> NDArray[Any]:
    """``[B, *shape]``: ``fn`` of each live copy's :class:`StepContext` (zeros for copies whose episode is over).

    The lift of any per-step rule to the batch: one Python call per live copy.
    """
    out = np.zeros((ctx.shape[0], *shape), dtype=dtype)
    for b in np.flatnonzero(ctx.active.any(axis=1)):
        out[b] = fn(ctx.copy_context(int(b)))
    return out


class PerCopySlots:
    """A per-step :data:`SlotRule` lifted to the batch copy by copy (a :data:`BatchedSlotRule`)."""

    def __init__(self, rule: SlotRule) -> None:
        self.rule = rule

    def __call__(self, ctx: BatchedStepContext) -> NDArray[np.int64]:
        out = np.zeros(ctx.shape, dtype=np.int64)
        index = {a: i for i, a in enumerate(ctx.possible_agents)}
        for b in np.flatnonzero(ctx.active.any(axis=1)):
            for agent, slot in self.rule(ctx.copy_context(int(b))).items():
                out[b, index[agent]] = slot
        return out

    def __repr__(self) -> str:
        return f"PerCopySlots({self.rule!r})"


@dataclass(frozen=True)
class Output:
    """One kind of incentive output (``DesignerConfig.output``): how many values, and which pays whom.

    ``batched`` is the vectorized counterpart of ``rule`` (None: ``rule`` lifted copy by copy).
    """

    n_slots: int
    rule: SlotRule
    batched: BatchedSlotRule | None = None

    @property
    def batched_rule(self) -> BatchedSlotRule:
        """The slot rule for the batched rollout: ``batched``, else ``rule`` lifted with :class:`PerCopySlots`."""
        return self.batched if self.batched is not None else PerCopySlots(self.rule)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _defined_below(cls: type, per_step: str, batched: str) -> bool:
    """Whether ``cls`` takes ``per_step`` from a class below the one it takes ``batched`` from (a subclass
    changed the per-step rule without giving its batched counterpart)."""
    mro = cls.__mro__
    owner = {name: next(i for i, c in enumerate(mro) if name in vars(c)) for name in (per_step, batched)}
    return owner[per_step] < owner[batched]


def vectorizes(per_step: str, lift: Callable[..., Any]) -> Callable[[_Method], _Method]:
    """Mark a batched method as the vectorized counterpart of the per-step method ``per_step``: in a subclass
    that overrides ``per_step`` but not this method, ``lift(self, *args)`` runs instead (the per-step rule copy
    by copy)."""

    def wrap(fn: _Method) -> _Method:
        @functools.wraps(fn)
        def method(self: Task, *args: Any) -> Any:
            if _defined_below(type(self), per_step, fn.__name__):
                return lift(self, *args)
            return fn(self, *args)

        return method  # type: ignore[return-value]

    return wrap


def lift_features(task: Task, ctx: BatchedStepContext) -> NDArray[np.float32]:
    """``task.features`` of every live copy ``[B, F]``, one call per copy."""
    return per_copy(ctx, lambda c: np.asarray(task.features(c), dtype=np.float32), (task.feature_dim,))


def _lift_reward(task: Task, ctx: BatchedStepContext) -> NDArray[np.float64]:
    return per_copy(ctx, task.designer_reward, (), np.float64)


def _lift_state(task: Task, ctx: BatchedStepContext) -> NDArray[np.float32]:
    size = int(np.prod(task.state_shape))
    return per_copy(ctx, lambda c: np.asarray(task.state(c), dtype=np.float32).reshape(-1), (size,))


def _lift_obs(task: Task, obs: NDArray[Any]) -> NDArray[Any]:
    return np.stack([np.stack([task.obs_row(o) for o in row]) for row in obs])


def _lift_action_mask(task: Task, obs: NDArray[Any], infos: Mapping[str, NDArray[Any]]) -> NDArray[np.float32] | None:
    """Each agent's mask from the per-step rule (all ones where it gives none; None when no agent has one)."""
    masks = [[task.action_mask(a, obs[b, i], {k: _scalar(v[b, i]) for k, v in infos.items()})
              for i, a in enumerate(task.agents)] for b in range(obs.shape[0])]
    if all(m is None for row in masks for m in row):
        return None
    ones = np.ones(task.n_actions, dtype=np.float32)
    return np.asarray([[ones if m is None else m for m in row] for row in masks], dtype=np.float32)


def _scalar(value: Any) -> Any:
    """A stacked info entry as the single env reports it: a Python scalar, or an array."""
    arr = np.asarray(value)
    return arr.item() if arr.ndim == 0 and arr.dtype != object else value


_CHECK_STEPS = 25
"""Steps of each probe episode :func:`check_game` plays (enough for short games, cheap for long ones)."""


def _action_names(env: Any, n_actions: int) -> tuple[str, ...] | None:
    """The env's ``action_names`` (or its matrix game's), when it names each of its ``n_actions`` actions."""
    for holder in (env.unwrapped, getattr(env.unwrapped, "game", None)):
        names = getattr(holder, "action_names", None)
        if names is not None and len(names) == n_actions and all(isinstance(x, str) for x in names):
            return tuple(names)
    return None


def check_game(env: Any, make_env: Callable[[], Any], name: str) -> None:
    """Check that a game can be a designer task, before any training; errors say what to add.

    Checked on ``env`` (a fresh env of the game) and on fresh ones from ``make_env``: it is a PettingZoo
    ``ParallelEnv`` with a non-empty, duplicate-free ``possible_agents``; every agent has the same Box
    observation space and Discrete action space; it has a ``render_mode`` attribute (SuperSuit and the SB3
    transfer read it); ``state()`` and ``state_space`` come together and agree on the shape; ``reset`` and
    ``step`` report exactly the live agents; two envs reset with the same seed play the same episode; and a
    game that draws random numbers does so from ``self.np_random`` (a NumPy ``Generator``), the one generator a
    checkpoint saves and restores.

    Raises:
        TypeError: not a ParallelEnv, or spaces of the wrong kind.
        ValueError: anything else (the message names the agent, attribute or step).
    """
    where = f"game {name!r} ({type(env).__name__})"
    if not isinstance(env, ParallelEnv):
        hint = (" (an AEC env: convert it with pettingzoo.utils.conversions.aec_to_parallel)"
                if isinstance(env, AECEnv) else "")
        raise TypeError(f"{where}: a task needs a PettingZoo ParallelEnv, got {type(env).__name__}{hint}")
    agents = list(getattr(env, "possible_agents", None) or [])
    if not agents or len(set(agents)) != len(agents):
        raise ValueError(f"{where}: possible_agents must be a non-empty list of distinct agent names, got "
                         f"{getattr(env, 'possible_agents', None)!r}; set self.possible_agents in __init__")
    _check_spaces(env, agents, where)
    if not hasattr(env, "render_mode"):
        raise ValueError(f"{where} has no render_mode attribute: take a render_mode=None argument and set "
                         "self.render_mode = render_mode in __init__ (SuperSuit and the SB3 transfer read it)")
    first = _play(env, agents, where, seed=123)
    _check_state(env, where)
    again = _play(make_env(), agents, where, seed=123)
    if not _same(first, again):
        raise ValueError(f"{where}: two envs reset with seed=123 and given the same actions played different "
                         "episodes; draw every random number from self.np_random, seeded in reset "
                         "(self.np_random, _ = gymnasium.utils.seeding.np_random(seed))")
    rng = getattr(env.unwrapped, "np_random", None)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ValueError(f"{where}: np_random must be a numpy.random.Generator (checkpoints save its "
                         f"bit_generator state), got {type(rng).__name__}; use gymnasium.utils.seeding.np_random")
    if rng is None and not _same(first, _play(env, agents, where, seed=None)):
        raise ValueError(f"{where}: a second episode without a seed differed from the first, but the env has no "
                         "np_random: draw random numbers from self.np_random (self.np_random, _ = "
                         "gymnasium.utils.seeding.np_random(seed) in reset) so checkpoints can save and restore "
                         "them")


def _check_spaces(env: Any, agents: list[str], where: str) -> None:
    obs_space, act_space = env.observation_space(agents[0]), env.action_space(agents[0])
    if not isinstance(obs_space, spaces.Box):
        raise TypeError(f"{where}: agents need Box observations, {agents[0]} has {obs_space}; flatten them into "
                        "one float vector (gymnasium.spaces.flatten_space / flatten) or subclass Task")
    if not isinstance(act_space, spaces.Discrete):
        raise TypeError(f"{where}: agents need Discrete actions, {agents[0]} has {act_space}")
    for a in agents[1:]:
        if env.action_space(a) != act_space or env.observation_space(a).shape != obs_space.shape:
            raise ValueError(f"{where}: agent {a} has spaces {env.observation_space(a)}, {env.action_space(a)}; "
                             f"{agents[0]} has {obs_space}, {act_space}; a task needs equal spaces for all agents")


def _check_state(env: Any, where: str) -> None:
    """``state()`` and ``state_space`` must come together (the wrapper shows ``state()`` only with the space)."""
    declared = getattr(env, "state_space", None)
    try:
        state = np.asarray(env.state())
    except (AttributeError, NotImplementedError):
        state = None
    if state is not None and declared is None:
        raise ValueError(f"{where} defines state() but no state_space: add self.state_space = "
                         f"gymnasium.spaces.Box(low, high, shape={state.shape}, dtype=np.float32) in __init__ (the "
                         "designer sees state() only when state_space declares it), or remove state()")
    if declared is not None and state is None:
        raise ValueError(f"{where} declares state_space but state() is not implemented: implement state() or "
                         "remove state_space")
    if declared is not None and state is not None and tuple(declared.shape) != state.shape:
        raise ValueError(f"{where}: state() has shape {state.shape} but state_space has {declared.shape}")


def _play(env: Any, agents: list[str], where: str, seed: int | None) -> list[Any]:
    """One probe episode (at most ``_CHECK_STEPS`` steps, fixed actions), checking the agent sets; its record."""
    obs, infos = env.reset(seed=seed)
    if list(env.agents) != agents:
        raise ValueError(f"{where}: after reset env.agents must be possible_agents {agents}, got {env.agents}")
    for what, value in (("observations", obs), ("infos", infos)):
        if not isinstance(value, Mapping) or set(value) != set(agents):
            keys = sorted(value) if isinstance(value, Mapping) else value
            raise ValueError(f"{where}: reset must return {what} for exactly the agents {agents}, got {keys}")
    n_actions = int(env.action_space(agents[0]).n)
    record: list[Any] = [{a: np.asarray(o) for a, o in obs.items()}]
    for t in range(_CHECK_STEPS):
        live = list(env.agents)
        if not live:
            break
        actions = {a: (t + i) % n_actions for i, a in enumerate(live)}
        out = env.step(actions)
        for what, value in zip(("observations", "rewards", "terminations", "truncations", "infos"), out):
            if not isinstance(value, Mapping) or not set(live) <= set(value) <= set(agents):
                keys = sorted(value) if isinstance(value, Mapping) else value
                raise ValueError(f"{where}: step {t} must return {what} for the acting agents {sorted(live)}, "
                                 f"got {keys}")
        record.append(({a: np.asarray(o) for a, o in out[0].items()}, dict(out[1])))
    return record


def _same(a: Any, b: Any) -> bool:
    """Exact equality of two probe records (dicts, tuples and arrays)."""
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same, a, b))
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


class Task:
    """Everything the trainer and designers need to know about one game.

    Args:
        name: the task's registered name.
        make_env: builds the (unwrapped) PettingZoo parallel env.
        learner, designer: the paper's agent and designer hyperparameters for this game.
        optimum: best achievable social welfare per episode, when known (for "percent of optimum" reports).
        env_kwargs: the keyword arguments the env is built with (recorded in checkpoints and reports).
        make_batched: builds ``n`` copies of the game as one :class:`~incentive_envs.vector.BatchedParallelEnv`
            equal to ``make_env`` copy by copy (e.g. ``functools.partial(incentive_envs.make_batched, name,
            **env_kwargs)``); default: :func:`~incentive_envs.vector.batch_of` over ``make_env``.

    Attributes probed from one env: ``agents`` (the order on dim N of every tensor), ``obs_shape`` and
    ``n_actions`` (shared by all agents), ``action_names`` (the env's ``action_names``, when it names its
    actions: log columns use them), ``state_shape`` (the designer's observation before flattening:
    ``env.state()`` when the game declares a ``state_space``, else the agents' observations concatenated).

    Raises:
        TypeError, ValueError: the game does not fit (:func:`check_game`; the message says what to add).
    """

    info_metrics: tuple[str, ...] = ()
    """Numeric ``infos`` keys summed per episode and reported in evaluations (``info/<key>``)."""
    designers: Mapping[str, DesignerFactory] | None = None
    """The task's own implementation of registered algorithms (None: the registry's designers)."""
    preset: str = "task"
    """The settings preset its ``learner`` and ``designer`` come from (:func:`designer.presets.apply_preset`)."""

    def __init__(
        self,
        name: str,
        make_env: Callable[[], ParallelEnv],
        *,
        learner: LearnerConfig | None = None,
        designer: DesignerConfig | None = None,
        optimum: float | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        make_batched: Callable[[int], BatchedParallelEnv] | None = None,
    ) -> None:
        self.name = name
        self._make_env = make_env
        self._make_batched = make_batched
        self.learner = learner or LearnerConfig()
        self.designer = designer or DesignerConfig()
        self.optimum = optimum
        self.env_kwargs = dict(env_kwargs or {})
        env = make_env()
        check_game(env, make_env, name)
        self.agents = tuple(env.possible_agents)
        obs_space = env.observation_space(self.agents[0])
        self.obs_shape = tuple(int(s) for s in obs_space.shape)
        self.n_actions = int(env.action_space(self.agents[0]).n)
        self.action_names: tuple[str, ...] | None = _action_names(env, self.n_actions)
        env.reset(seed=0)
        # the wrapper's rule (wrappers.core.has_state): the designer sees state() only where state_space says so
        if has_state(env):
            self.state_shape = tuple(np.asarray(env.state(), dtype=np.float32).shape)
        else:
            self.state_shape = (len(self.agents) * int(np.prod(self.obs_shape)),)
        env.close()

    # ------------------------------------------------------------------ the game
    def make_env(self) -> ParallelEnv:
        """A fresh (unwrapped) env of the game."""
        return self._make_env()

    def make_batched_env(self, n_envs: int) -> BatchedParallelEnv:
        """``n_envs`` fresh copies of the game stepped together (the game's native batch when the task has one).

        Raises:
            CannotBatch: the game cannot be batched (the reason is given).
        """
        try:
            if self._make_batched is not None:
                return self._make_batched(n_envs)
            return batch_of(self._make_env, n_envs)
        except TypeError as err:  # incentive_envs' refusal of a game it cannot batch
            raise CannotBatch(str(err)) from err

    def obs_row(self, obs: Any) -> np.ndarray:
        """One agent's observation as the array row the agents' networks read."""
        return np.asarray(obs)

    def action_mask(self, agent: str, obs: Any, info: Mapping[str, Any]) -> np.ndarray | None:
        """The 0/1 mask of allowed actions (None: every action is always allowed)."""
        return None

    @vectorizes("obs_row", _lift_obs)
    def batched_obs(self, obs: NDArray[Any]) -> NDArray[Any]:
        """:meth:`obs_row` of every agent of every copy: ``[B, N, *obs]`` -> ``[B, N, *obs_shape]``."""
        return obs

    @vectorizes("action_mask", _lift_action_mask)
    def batched_action_mask(self, obs: NDArray[Any], infos: Mapping[str, NDArray[Any]]) -> NDArray[np.float32] | None:
        """:meth:`action_mask` of every agent of every copy ``[B, N, A]`` (ones where an agent has none) from the
        batched observations and infos; None when no agent has a mask."""
        return None

    # ---------------------------------------------------------------- the designer
    @property
    def outputs(self) -> Mapping[str, Output]:
        """The incentive outputs the designer may use (``DesignerConfig.output``)."""
        return {"action": Output(self.n_actions, action_slots, batched_action_slots),
                "agent": Output(len(self.agents), agent_slots, batched_agent_slots)}

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

    @vectorizes("features", lift_features)
    def batched_features(self, ctx: BatchedStepContext) -> NDArray[np.float32]:
        """:meth:`features` of every copy ``[B, F]`` (one vectorized call: observation plus one-hot joint action)."""
        return batched_joint_action_features(ctx)

    @vectorizes("designer_reward", _lift_reward)
    def batched_designer_reward(self, ctx: BatchedStepContext) -> NDArray[np.float64]:
        """:meth:`designer_reward` of every copy ``[B]`` (0 for copies whose episode is over)."""
        return batched_social_welfare(ctx)

    @vectorizes("state", _lift_state)
    def batched_state(self, ctx: BatchedStepContext) -> NDArray[np.float32]:
        """:meth:`state` of every copy ``[B, S]`` (the observations of all agents when the game has no state: they
        equal the per-step rule's while every agent plays)."""
        return np.asarray(ctx.designer_obs, dtype=np.float32).reshape(ctx.shape[0], -1)

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
