"""The designer's problem as a Gymnasium environment: a principal sets incentive parameters, learners respond.

One :meth:`DesignerEnv.step` is one round of a black-box principal (a bandit, Bayesian optimisation, SB3, an
LLM): it sets the incentive parameters, the library's learning agents train under them for
``episodes_per_step`` episodes (continuing the same agents from round to round), and the outcome comes back as
the observation and reward. Any task works (:func:`designer.tasks.make_task`, including your own
:func:`designer.registry.register_task` tasks); the shipped games are registered with ``gymnasium.make`` as
``incentive_design/Designer<Game>-v0`` when :mod:`designer.principal` is imported (or with the module prefix:
``gymnasium.make("designer.principal:incentive_design/DesignerEscapeRoom-v0")``).

| Property      | Value                                                                                          |
|---------------|------------------------------------------------------------------------------------------------|
| Action        | ``Box(0, scale, (n,), float32)``: the constant payment of each of the task's ``n`` incentive    |
|               | slots (``DesignerConfig.output``: per action, per agent, per action type, ...), the ``fixed``  |
|               | designer's table; Gather-Trade-Build: ``Box(0, 1, (K,))``, the marginal tax rate per bracket   |
| Observation   | ``Box(float32)``, named by :attr:`DesignerEnv.observation_names`: the last parameters over their |
|               | upper bound, then the round's mean welfare, incentives paid, net (welfare minus incentives),    |
|               | the task's designer return and episode length, each agent's action frequencies (``N*A``,      |
|               | share of its steps) and the elapsed fraction of the horizon; all zeros after ``reset``         |
| Reward        | the principal's objective over the round's episodes (``objective``): ``net`` by default,       |
|               | ``welfare``, or ``designer`` (the task's own per-step reward summed, e.g. GTB's                |
|               | productivity x equality)                                                                       |
| Episode end   | truncated after ``horizon`` rounds; never terminated. ``reset`` starts fresh agents             |
| Cost per step | ``episodes_per_step + eval_episodes`` agent episodes (``info["agent_episodes"]``; the running   |
|               | total is ``info["total_agent_episodes"]``); ``reset`` costs none                               |

The outcome of a round is the mean over the agents' training episodes of that round (they are the round's
cost); with ``eval_episodes > 0`` it is instead the mean over that many fresh evaluation episodes played after
training (actions sampled without exploration, as the trainer's evaluations), which are counted in the cost too.
Agents learn through :class:`designer.experiments.trainer.Trainer` with the ``fixed`` designer (the task's own
implementation of it, such as GTB's constant tax rates, where the task has one), so the learners, their
hyperparameters and batches are exactly those MetaGrad and the other designers train. Between rounds the
trainer's whole state (agents, optimizers, the pending batch, every RNG) carries over; the first agent update of
a round learns from the last batch of the previous one, paid under the previous parameters (the payments the
agents actually received).

Seeding: ``reset(seed=s)`` draws the run's seed from the env's ``np_random``, so the same ``s`` and the same
actions give the same observations, rewards and infos (CPU, bit for bit); ``reset()`` without a seed starts new
agents from the continuing stream.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from numpy.typing import NDArray

from designer.batch import Batch
from designer.config import DesignerConfig, TrainConfig, check_positive
from designer.experiments.trainer import Trainer
from designer.learners import LearnerConfig
from designer.presets import apply_preset
from designer.rollout import EpisodeStats
from designer.task import Task
from designer.tasks import make_task
from designer.tasks.gather_trade_build.game import GTBTask
from designer.validation import check_fields

__all__ = ["OBJECTIVES", "DesignerEnv", "DesignerEnvConfig", "Outcome", "parameter_bounds"]

OBJECTIVES: tuple[str, ...] = ("net", "welfare", "designer")
_OUTCOME_NAMES = ("welfare", "incentives", "net", "designer_return", "episode_steps")
_EVAL_SEED_OFFSET = 104_729
"""Evaluation envs of a round are seeded ``run seed * 1000 + this + episodes so far`` (apart from training envs)."""


@dataclass(frozen=True)
class DesignerEnvConfig:
    """One designer environment: the task, the round's cost and what the principal is scored on.

    Attributes:
        task: a name :func:`designer.tasks.make_task` accepts (a registered task, a game of
            :data:`incentive_envs.ENVS`, or ``"package.module:factory"``).
        task_kwargs: the task's keyword arguments (e.g. ``{"n_agents": 2, "min_at_lever": 1}``).
        episodes_per_step: K, the agent training episodes of one round (rounded up to whole batches of
            ``batch_episodes``).
        horizon: rounds per episode of the designer env (it truncates after this many).
        batch_episodes: episodes per agent update (``TrainConfig.batch_episodes``; None: the preset's).
        preset: the agents' settings (:mod:`designer.presets`: ``"task"``, the task's own, or ``"small_game"``).
        output: the incentive output the parameters pay (``DesignerConfig.output``; None: the task's default).
        scale: the upper bound of every payment (None: the task designer's ``scale``); tax tasks use [0, 1].
        objective: the reward: ``"net"`` (welfare minus incentives paid), ``"welfare"`` or ``"designer"``.
        eval_episodes: evaluation episodes after each round that give its outcome (0: the training episodes).
        torch_threads: torch threads of the learners (1 is fastest for these small models).
        vectorized: collect the agents' episodes with the batched rollout (``TrainConfig.vectorized``: the same
            batches up to float rounding; faster for CNN games such as Cleanup with several episodes per batch).
    """

    task: str = "escape_room"
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    episodes_per_step: int = 50
    horizon: int = 20
    batch_episodes: int | None = None
    preset: str = "task"
    output: str | None = None
    scale: float | None = None
    objective: Literal["net", "welfare", "designer"] = "net"
    eval_episodes: int = 0
    torch_threads: int = 1
    vectorized: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("episodes_per_step", "horizon", "torch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.batch_episodes is not None and self.batch_episodes < 1:
            raise ValueError(f"batch_episodes must be an integer >= 1 or None, got {self.batch_episodes!r}")
        if self.eval_episodes < 0:
            raise ValueError(f"eval_episodes must be an integer >= 0, got {self.eval_episodes!r}")
        if self.scale is not None:
            check_positive("scale", self.scale)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")


@dataclass(frozen=True)
class Outcome:
    """What one round produced, averaged over its episodes (the observation's outcome part).

    Attributes:
        welfare, incentives, net: social welfare, incentives paid and their difference, per episode.
        designer_return: the task's designer reward summed over an episode (social welfare for most games).
        episode_steps: mean episode length.
        action_freq: ``[N, A]``: each agent's share of its steps spent on each action.
    """

    welfare: float
    incentives: float
    net: float
    designer_return: float
    episode_steps: float
    action_freq: NDArray[np.float64]

    def objective(self, name: str) -> float:
        """The principal's reward under objective ``name`` (:data:`OBJECTIVES`)."""
        return {"net": self.net, "welfare": self.welfare, "designer": self.designer_return}[name]

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict of the outcome (frequencies as nested lists, rounded to 6 decimals)."""
        out: dict[str, Any] = {k: round(float(getattr(self, k)), 6) for k in _OUTCOME_NAMES}
        out["action_freq"] = np.round(self.action_freq, 6).tolist()
        return out

    @classmethod
    def of(cls, batches: list[Batch], stats: list[EpisodeStats], n_actions: int) -> Outcome:
        """The mean outcome of the episodes in ``batches`` (whose per-episode stats are ``stats``)."""
        counts = np.zeros((batches[0].actions.shape[2], n_actions))
        for b in batches:  # [B, T, N, A] one-hot of the actions taken, summed over episodes and steps
            counts += (torch.nn.functional.one_hot(b.actions, n_actions) * b.mask.unsqueeze(-1).long()).sum(
                (0, 1)).double().numpy()
        totals = counts.sum(-1, keepdims=True)
        designer = torch.cat([(b.designer_reward * b.step_mask).sum(1) for b in batches])
        return cls(
            welfare=float(np.mean([s.welfare for s in stats])),
            incentives=float(np.mean([s.incentives for s in stats])),
            net=float(np.mean([s.net for s in stats])),
            designer_return=float(designer.double().mean()),
            episode_steps=float(np.mean([s.steps for s in stats])),
            action_freq=np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0),
        )


def parameter_bounds(task: Task, output: str, scale: float) -> tuple[int, float, tuple[str, ...]]:
    """``(n, upper bound, names)`` of the principal's parameters on ``task``: one payment in [0, ``scale``] per
    slot of ``output``, or for a tax task (Gather-Trade-Build) one marginal rate in [0, 1] per bracket."""
    if isinstance(task, GTBTask):
        k = task.schema.n_brackets
        return k, 1.0, tuple(f"rate_{b}" for b in range(k))
    n = task.output(output).n_slots
    names = task.action_names if output == "action" and task.action_names else None
    if names is None and output == "agent":
        names = task.agents
    return n, float(scale), tuple(f"pay_{s}" for s in (names or range(n)))


class DesignerEnv(gymnasium.Env[NDArray[np.float32], NDArray[np.float32]]):
    """The designer's problem as a single-agent Gymnasium env (see the module docstring for the spaces).

    Args:
        config: the environment (task, cost per round, objective).
        task: a prebuilt task to use instead of ``make_task(config.task, **config.task_kwargs)``.
        render_mode: only None (there is nothing to draw).

    Raises:
        ValueError: a bad config, or the task has no output ``config.output``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, config: DesignerEnvConfig | None = None, task: Task | None = None,
                 render_mode: str | None = None) -> None:
        if render_mode is not None:
            raise ValueError(f"DesignerEnv has no render modes, got render_mode={render_mode!r}")
        self.render_mode = render_mode
        self.config = cfg = config or DesignerEnvConfig()
        self.task = apply_preset(task if task is not None else make_task(cfg.task, **cfg.task_kwargs), cfg.preset)
        self.learner_config: LearnerConfig = self.task.learner
        self.output = cfg.output or self.task.designer.output
        scale = cfg.scale if cfg.scale is not None else self.task.designer.scale
        n, self.high, self.parameter_names = parameter_bounds(self.task, self.output, scale)
        self.action_space = spaces.Box(0.0, self.high, shape=(n,), dtype=np.float32)
        self._shape = (n,)
        n_agents, n_actions = len(self.task.agents), self.task.n_actions
        self.observation_names: tuple[str, ...] = (
            *(f"param/{p}" for p in self.parameter_names),
            *_OUTCOME_NAMES,
            *(f"freq/{a}/{x}" for a in self.task.agents for x in (self.task.action_names or range(n_actions))),
            "time",
        )
        # parameters over their bound, frequencies and time lie in [0, 1]; outcomes have no bound in general
        low = np.concatenate([np.zeros(n), np.full(len(_OUTCOME_NAMES), -np.inf), np.zeros(n_agents * n_actions + 1)])
        high = np.concatenate([np.ones(n), np.full(len(_OUTCOME_NAMES), np.inf), np.ones(n_agents * n_actions + 1)])
        self.observation_space = spaces.Box(low.astype(np.float32), high.astype(np.float32))
        batch = cfg.batch_episodes or 1
        self.batch_episodes = batch
        self.episodes_per_step = math.ceil(cfg.episodes_per_step / batch) * batch + cfg.eval_episodes
        """Agent episodes one :meth:`step` consumes (training, rounded up to whole batches, plus evaluation)."""
        self.trainer: Trainer | None = None
        self.total_agent_episodes = 0
        self._round = 0

    # ------------------------------------------------------------------ gymnasium
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[NDArray[np.float32], dict[str, Any]]:
        """Fresh agents (their run seed drawn from ``np_random``); the observation is all zeros."""
        super().reset(seed=seed)
        run_seed = int(self.np_random.integers(0, 2**31 - 1))
        train_config = TrainConfig(task=self.task.name, task_kwargs=dict(self.config.task_kwargs),
                                   batch_episodes=self.batch_episodes, seed=run_seed,
                                   eval_episodes=max(1, self.config.eval_episodes),
                                   torch_threads=self.config.torch_threads, vectorized=self.config.vectorized)
        self.trainer = self._trainer(train_config, self._designer_config(np.zeros(self._shape)))
        self.total_agent_episodes = 0
        self._round = 0
        return np.zeros(len(self.observation_names), dtype=np.float32), {"run_seed": run_seed,
                                                                           "total_agent_episodes": 0}

    def step(self, action: Any) -> tuple[NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        """Train the agents for one round under the parameters ``action`` and report the outcome.

        Raises:
            RuntimeError: ``step`` before ``reset`` or after the horizon.
            ValueError: ``action`` is not a finite vector inside the action space.
        """
        if self.trainer is None or self._round >= self.config.horizon:
            raise RuntimeError("step() called before reset() or after the episode ended (horizon reached)")
        params = np.asarray(action, dtype=np.float32).reshape(self._shape)
        if not np.all(np.isfinite(params)) or not self.action_space.contains(params):
            raise ValueError(f"parameters must lie in [0, {self.high}] (shape {self._shape}), got "
                             f"{np.asarray(action).tolist()}")
        previous = self.trainer
        self.trainer = self._trainer(previous.config, self._designer_config(params))
        self.trainer.load_state_dict(previous.state_dict())  # the same agents, batch and RNGs, new payments
        previous.worker.close()
        outcome = self._train_round()
        self._round += 1
        self.total_agent_episodes += self.episodes_per_step
        obs = np.concatenate([
            params / self.high,
            [outcome.welfare, outcome.incentives, outcome.net, outcome.designer_return, outcome.episode_steps],
            outcome.action_freq.reshape(-1),
            [self._round / self.config.horizon],
        ]).astype(np.float32)
        info = {"parameters": params.astype(np.float64).tolist(), "outcome": outcome.summary(),
                "agent_episodes": self.episodes_per_step, "total_agent_episodes": self.total_agent_episodes}
        truncated = self._round >= self.config.horizon
        return obs, outcome.objective(self.config.objective), False, truncated, info

    # ------------------------------------------------------------------ helpers
    def _designer_config(self, params: NDArray[Any]) -> DesignerConfig:
        """The ``fixed`` designer paying ``params`` (the task's settings otherwise)."""
        base = self.task.designer
        return dataclasses.replace(base, algorithm="fixed", output=self.output,  # type: ignore[arg-type]
                                   fixed_values=tuple(float(x) for x in params))

    def _trainer(self, config: TrainConfig, designer: DesignerConfig) -> Trainer:
        return Trainer(config, designer=designer, learner=self.learner_config, task=self.task)

    def _train_round(self) -> Outcome:
        """Agent updates until the round's training episodes are used; the round's outcome."""
        trainer = self.trainer
        assert trainer is not None
        batches: list[Batch] = []
        stats: list[EpisodeStats] = []

        def collect(params: Any) -> tuple[Batch, list[EpisodeStats]]:
            batch, episode_stats = trainer.collect(params)
            batches.append(batch)
            stats.extend(episode_stats)
            return batch, episode_stats

        target = trainer.progress.episodes + self.episodes_per_step - self.config.eval_episodes
        while trainer.progress.episodes < target:
            if trainer.pending is None:
                trainer.pending, _ = collect(trainer.learner.params)
            else:
                trainer.pending, _ = trainer.designer.iterate(trainer.learner, collect, trainer.pending)
                trainer.progress.iterations += 1
        if self.config.eval_episodes:
            seed = trainer.config.seed * 1_000 + _EVAL_SEED_OFFSET + trainer.progress.episodes
            batch, episode_stats = trainer.evaluate_batch(self.config.eval_episodes, seed)
            batches, stats = [batch], episode_stats
        return Outcome.of(batches, stats, self.task.n_actions)

    def close(self) -> None:
        if self.trainer is not None:
            self.trainer.worker.close()
            self.trainer = None
