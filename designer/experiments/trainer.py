"""The training driver: owns RNGs, envs, agents and the designer; logs, evaluates, checkpoints and resumes.

:class:`Trainer` is deterministic on CPU: the same :class:`~designer.config.TrainConfig` gives bit-identical
learning curves, and ``save`` + ``Trainer.resume`` continues exactly as an uninterrupted run would (agent and
designer parameters, optimizer states, the pending pipeline batch, the action sampler's and every env's RNG
state are all in the checkpoint).

Episodes are collected by :class:`~designer.rollout.RolloutWorker` over B single envs (the reference path) or,
with ``TrainConfig.vectorized``, by :class:`~designer.batched_rollout.BatchedRolloutWorker` over the task's
batched env (the same batches up to float rounding; each copy's RNG state is checkpointed the same way).

A trainer with an ``out_dir`` holds that folder's lock while it trains (:mod:`designer.experiments.runfolder`):
a second writer fails at once, and a new run never replaces an old run's files unless ``overwrite=True``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from designer.algorithms import Designer
from designer.batch import Batch
from designer.batched_rollout import BatchedRolloutWorker, CannotBatch
from designer.config import DesignerConfig, TrainConfig, config_from_dict, config_to_dict
from designer.experiments.checkpoint import check_state_like, load_checkpoint, save_checkpoint
from designer.experiments.loop import Progress, TrainingLoop, progress_bar
from designer.experiments.records import (
    EvalResult,
    append_log_row,
    episodes_to,
    eval_result,
    mean_stats,
    truncate_log,
)
from designer.experiments.runfolder import RunLock, claim_run_folder
from designer.extras import require
from designer.learners import AgentLearner, LearnerConfig, Params
from designer.registry import make_designer, task_reference
from designer.rollout import EpisodeStats, IncentivePolicy, RolloutWorker
from designer.tasks import Task, make_task

__all__ = ["Trainer", "load_incentive", "train"]

Worker = RolloutWorker | BatchedRolloutWorker
_ENV_SEED_STRIDE = 1_000
SOLVED_FRACTION = 0.95
"""Welfare fraction of the optimum at which a run counts as solved (and ``solved.pt`` is written)."""
_EVAL_SEED_OFFSET = 7_919
AGENT_ARCHITECTURE = ("kind", "optimizer", "shared", "hidden", "conv_channels", "kernel", "linear_init_std",
                      "critic_hidden", "obs_scale")
"""LearnerConfig fields that make the agents' networks and optimizer state what they are: a run starting from
another run's agents (``agents_from``) must agree on these; learning rates, entropy and exploration may differ."""
ZERO_META_GRAD_PATIENCE = 50
"""The trainer warns (once) when the meta-gradient is exactly zero in each of its first this many iterations."""


class Trainer:
    """Train agents under a designer on a task.

    Args:
        config: the run (task, budget, seed, logging).
        designer: the designer's hyperparameters (default: the task's paper defaults).
        learner: the agents' hyperparameters (default: the task's paper defaults).
        task: a prebuilt task (default: ``make_task(config.task, **config.task_kwargs)``).
        overwrite: let this new run replace an old run's files in ``config.out_dir`` (``log.csv``, checkpoints,
            ``tb/``); without it, training into a folder that holds a run raises ``FileExistsError``.
        load_agents: start from ``config.agents_from``'s agents (False: leave them fresh, as
            :meth:`resume` does before loading the whole run from its checkpoint).
    """

    def __init__(
        self,
        config: TrainConfig,
        designer: DesignerConfig | None = None,
        learner: LearnerConfig | None = None,
        task: Task | None = None,
        overwrite: bool = False,
        load_agents: bool = True,
    ) -> None:
        self.config = config
        self.overwrite = overwrite
        torch.set_num_threads(config.torch_threads)
        self.task = task if task is not None else make_task(config.task, **config.task_kwargs)
        self.designer_config = designer or self.task.designer
        self.learner_config = learner or self.task.learner
        root = torch.Generator().manual_seed(config.seed)
        self.learner = AgentLearner(
            self.learner_config, len(self.task.agents), self.task.obs_shape, self.task.n_actions, root,
            make_net=self.task.agent_nets(),
        )
        if config.agents_from is not None and load_agents:
            self.load_agents(config.agents_from)
        self.designer_generator = torch.Generator().manual_seed(config.seed + 1)
        self.designer: Designer = make_designer(self.task, self.designer_config, self.designer_generator)
        self.action_generator = torch.Generator().manual_seed(config.seed + 2)
        self.worker = self._worker(config.batch_episodes, config.seed * _ENV_SEED_STRIDE)
        self.progress = Progress(next_eval=0)
        self.pending: Batch | None = None
        self.out_dir = Path(config.out_dir) if config.out_dir else None
        self._tb: Any = None
        if config.tensorboard:  # fail before training, not at the first evaluation
            require("tensorboard", "tensorboard", "TensorBoard logging (--tensorboard)")
        self._log_synced = False  # log.csv not yet matched to this run's history (see _log_eval)
        self._source: Path | None = None  # the checkpoint this trainer was resumed from
        self._claimed = False  # out_dir checked (and cleared with overwrite) for this run
        self._t0 = time.perf_counter()
        self._zero_meta_grads = 0  # iterations so far with an exactly-zero meta-gradient (-1: one was non-zero)
        self._bar: Any = None  # the progress bar while training

    # ----------------------------------------------------------------- plumbing
    def _worker(self, n_envs: int, seed: int, eval_seed: int | None = None) -> Worker:
        """A rollout worker over ``n_envs`` fresh envs seeded ``seed + i``: the training one, or with ``eval_seed``
        an evaluation one (the designer's evaluation policy sampling from a generator seeded ``eval_seed + 1``,
        its control point from ``eval_seed + 2``). ``config.vectorized`` picks the batched rollout.

        Raises:
            CannotBatch: ``vectorized=True`` for a task or designer that has no batched path (naming why).
        """
        eval_gen = None if eval_seed is None else torch.Generator().manual_seed(eval_seed + 1)
        control = None if eval_seed is None else torch.Generator().manual_seed(eval_seed + 2)
        worker: Worker
        if self.config.vectorized:
            try:
                policy = self.designer.batched_incentive(eval_gen)
                env = self.designer.batched_wrap_env(self.task.make_batched_env(n_envs), control)
                worker = BatchedRolloutWorker(env, self.task, policy)
            except CannotBatch as err:
                raise CannotBatch(f"vectorized=True cannot run designer {self.designer_config.algorithm!r} on task "
                                  f"{self.task.name!r}: {err}; use vectorized=False (the sequential rollout)") from err
        else:
            incentive = self.designer.incentive if eval_gen is None else self.designer.eval_incentive(eval_gen)
            worker = RolloutWorker([self.designer.wrap_env(self.task.make_env(), control) for _ in range(n_envs)],
                                   self.task, incentive)
        worker.reset(seed)
        return worker

    def _policy(self, params: Params) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda obs: self.learner.logits(params, obs)

    def collect(self, params: Params) -> tuple[Batch, list[EpisodeStats]]:
        """One batch of training episodes with the given agent parameters (counts toward the budget)."""
        batch, stats = self.worker.collect(self._policy(params), self.learner.epsilon, self.action_generator)
        self.progress.episodes += len(stats)
        return batch, stats

    def evaluate_batch(self, n_episodes: int, seed: int) -> tuple[Batch, list[EpisodeStats]]:
        """``n_episodes`` fresh episodes (env ``i`` seeded ``seed + i``, actions sampled without exploration
        mixing, the designer's evaluation policy and control point); leaves the training RNGs untouched."""
        gen = torch.Generator().manual_seed(seed)
        worker = self._worker(n_episodes, seed, eval_seed=seed)
        batch, stats = worker.collect(self._policy(self.learner.params), 0.0, gen)
        worker.close()
        return batch, stats

    def evaluate(self, n_episodes: int | None = None) -> EvalResult:
        """Mean outcome over fresh, deterministically seeded episodes; leaves the training RNGs untouched."""
        seed = self.config.seed * _ENV_SEED_STRIDE + _EVAL_SEED_OFFSET + self.progress.episodes
        _, stats = self.evaluate_batch(n_episodes or self.config.eval_episodes, seed)
        return mean_stats(self.progress.episodes, stats)

    # ----------------------------------------------------------------- training
    def train(self, callback: Callable[[Trainer], None] | None = None) -> list[EvalResult]:
        """Train until the episode budget is used; returns the evaluation history.

        With an ``out_dir``, the folder's lock is held from the start to the final checkpoint (see
        :mod:`designer.experiments.runfolder`).
        """
        lock = None
        if self.out_dir is not None:
            lock = RunLock(self.out_dir).acquire()
        try:
            if self.out_dir is not None and not self._claimed:
                claim_run_folder(self.out_dir, self._source, self.overwrite)
                self._claimed = True
            self._train(callback)
            if self.out_dir is not None:
                self.save(self.out_dir / "checkpoint.pt")
        finally:
            if lock is not None:
                lock.release()
        return self.progress.history

    def _train(self, callback: Callable[[Trainer], None] | None) -> None:
        cfg, out = self.config, self.out_dir
        self._bar = progress_bar(cfg.progress, cfg.episodes, self.progress.episodes,
                                 f"{self.designer_config.algorithm} on {self.task.name}")
        loop = TrainingLoop(
            self.progress, cfg.episodes, iterate=self._iterate, evaluate=self._evaluate_and_log,
            where=lambda before: f"training iteration {self.progress.iterations + 1} (from episode {before})",
            checkpoint=None if out is None else lambda: self.save(out / "checkpoint.pt"),
            checkpoint_period=cfg.checkpoint_period, after=None if callback is None else lambda: callback(self),
            bar=self._bar)
        try:
            loop.run()
        finally:
            if self._bar is not None:
                self._bar.close()
            self._bar = None
            if self._tb is not None:
                self._tb.flush()

    def _iterate(self) -> None:
        """One training iteration: the first batch, then designer iterations on the pending one."""
        if self.pending is None:
            self.pending, _ = self.collect(self.learner.params)
            return
        self.pending, metrics = self.designer.iterate(self.learner, self.collect, self.pending)
        self.progress.iterations += 1
        self._watch_meta_gradient(metrics.get("meta_grad_norm"))
        for k, v in metrics.items():
            self.progress.train_metrics.setdefault(k, []).append(float(v))

    def _watch_meta_gradient(self, norm: Any) -> None:
        """Warn once when the meta-gradient has been exactly zero for the first :data:`ZERO_META_GRAD_PATIENCE`
        iterations of this trainer: the designer cannot learn, and nothing else would say so. After a non-zero
        one it stops watching: a designer that has solved the game saturates its payments and the agents'
        policies, and its meta-gradient may then underflow to 0 without anything being wrong."""
        if self._zero_meta_grads < 0 or norm is None:
            return
        self._zero_meta_grads = self._zero_meta_grads + 1 if float(norm) == 0.0 else -1
        if self._zero_meta_grads == ZERO_META_GRAD_PATIENCE:
            warnings.warn(
                f"the meta-gradient of {self.designer_config.algorithm!r} on task {self.task.name!r} has been exactly "
                f"0 in all of the first {ZERO_META_GRAD_PATIENCE} iterations (to episode {self.progress.episodes}): "
                "the designer is not learning. The agents' update does not respond to the incentives: payments "
                "saturated (DesignerConfig.scale), agents whose policy gradient vanishes (a single action, lr 0, "
                "deterministic policies), or rewards that never reach the agents' loss; for a small game try the "
                "small_game preset (designer.presets, --preset small_game)",
                RuntimeWarning, stacklevel=2,
            )

    def _evaluate_and_log(self) -> None:
        try:
            result = self.evaluate()
        except FloatingPointError as err:
            raise FloatingPointError(f"{err} [evaluation at episode {self.progress.episodes}, after training "
                                     f"iteration {self.progress.iterations}]") from err
        self._log_eval(result)

    def _log_eval(self, result: EvalResult) -> None:
        p = self.progress
        optimum = self.task.optimum
        first_solved = (
            optimum is not None and result.welfare >= SOLVED_FRACTION * optimum
            and all(h.welfare < SOLVED_FRACTION * optimum for h in p.history)
        )
        p.history.append(result)
        if self._bar is not None:  # the postfix changes only with an evaluation
            self._bar.set_postfix(welfare=f"{result.welfare:.2f}", paid=f"{result.incentives:.2f}", refresh=False)
        if first_solved and self.out_dir is not None:
            # the designer's incentive at the moment it first induced near-optimal behaviour (for transfer)
            self.save(self.out_dir / "solved.pt")
        while p.next_eval <= p.episodes:
            p.next_eval += self.config.eval_period
        row: dict[str, float] = result.row(self.task.agents, self.task.action_names)
        row["iteration"] = p.iterations
        row["wall_seconds"] = time.perf_counter() - self._t0
        for k in self.designer.metric_names:
            values = p.train_metrics.get(k, [])
            row[f"train/{k}"] = float(np.mean(values)) if values else math.nan
        p.train_metrics = {}
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / "log.csv"
        if not self._log_synced:
            # a fresh run starts a new log; a resumed one drops rows written after its checkpoint (logged again)
            truncate_log(path, len(p.history) - 1)
            self._log_synced = True
        append_log_row(path, row)
        if self.config.tensorboard:
            if self._tb is None:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out_dir / "tb"))
            for k, v in row.items():
                if k != "episode" and math.isfinite(v):
                    self._tb.add_scalar(k if "/" in k else f"eval/{k}", v, result.episode)

    # --------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit-exactly (tensors and plain values only)."""
        lr = self.learner
        learner_state: dict[str, Any] = {
            "params": {k: v.detach() for k, v in lr.params.items()},
            "exp_avg": lr.opt_state.exp_avg,
            "exp_avg_sq": lr.opt_state.exp_avg_sq,
            "opt_step": lr.opt_state.step,
            "iteration": lr.iteration,
        }
        if lr.critic is not None and lr.critic_target is not None and lr.critic_opt is not None:
            learner_state.update(critic=lr.critic.state_dict(), critic_target=lr.critic_target.state_dict(),
                                 critic_opt=lr.critic_opt.state_dict())
        p = self.progress
        return {
            # a task registered outside the library is stored as "<module>:<name>", imported again on load
            "train_config": {**config_to_dict(self.config), "task": task_reference(self.config.task)},
            "designer_config": config_to_dict(self.designer_config),
            "learner_config": config_to_dict(self.learner_config),
            "task_name": self.task.name,
            "learner": learner_state,
            "designer": self.designer.state_dict(),
            "rng": {
                "action": self.action_generator.get_state(),
                "designer": self.designer_generator.get_state(),
                "envs": self.worker.rng_states(),
            },
            "pending": self.pending.to_dict() if self.pending is not None else None,
            "progress": {
                "episodes": p.episodes,
                "iterations": p.iterations,
                "next_eval": p.next_eval,
                "history": [config_to_dict(h) for h in p.history],
                "train_metrics": {k: list(v) for k, v in p.train_metrics.items()},
            },
        }

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (atomically)."""
        return save_checkpoint(path, self.state_dict())

    def load_agents(self, path: str | Path) -> None:
        """Start from the agents of the checkpoint at ``path`` (:attr:`TrainConfig.agents_from`): parameters,
        optimizer state, critic and update count. Learning hyperparameters may differ (the paper's phase 2 trains
        with other rates than phase 1); ``ValueError`` naming what differs when the checkpoint is of another task
        or its agents are another kind of network (:data:`AGENT_ARCHITECTURE` fields, parameter shapes)."""
        state = load_checkpoint(Path(path))
        if state.get("task_name") != self.task.name:
            raise ValueError(f"agents_from={str(path)!r} holds agents of task {state.get('task_name')!r}, this run "
                             f"trains {self.task.name!r}")
        theirs = config_from_dict(LearnerConfig, state["learner_config"])
        diff = [name for name in AGENT_ARCHITECTURE if getattr(theirs, name) != getattr(self.learner_config, name)]
        if diff:
            raise ValueError(f"agents_from={str(path)!r} holds another kind of agents (learner configuration differs "
                             f"in {diff}); phase 2 must train the same networks")
        shapes = {k: tuple(v.shape) for k, v in state["learner"]["params"].items()}
        ours = {k: tuple(v.shape) for k, v in self.learner.params.items()}
        if shapes != ours:
            raise ValueError(f"agents_from={str(path)!r} holds agents with parameters {shapes}, this run's are {ours} "
                             "(another number of agents or observation size?)")
        self._load_learner(state["learner"])

    def _load_learner(self, ls: dict[str, Any]) -> None:
        lr = self.learner
        lr.params = {k: v.detach().clone().requires_grad_(True) for k, v in ls["params"].items()}
        lr.opt_state.exp_avg, lr.opt_state.exp_avg_sq = dict(ls["exp_avg"]), dict(ls["exp_avg_sq"])
        lr.opt_state.step = int(ls["opt_step"])
        lr.iteration = int(ls["iteration"])
        if lr.critic is not None and lr.critic_target is not None and lr.critic_opt is not None:
            lr.critic.load_state_dict(ls["critic"])
            lr.critic_target.load_state_dict(ls["critic_target"])
            lr.critic_opt.load_state_dict(ls["critic_opt"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load :meth:`state_dict` output; ``ValueError`` naming what does not fit (task, algorithm, missing and
        unexpected keys, parameters of other shapes) before anything changes."""
        theirs = (state.get("task_name"), state.get("designer_config", {}).get("algorithm"))
        ours = (self.task.name, self.designer_config.algorithm)
        for what, a, b in zip(("task", "algorithm"), theirs, ours):
            if a is not None and a != b:
                raise ValueError(f"checkpoint is of {what} {a!r}, this trainer runs {b!r}")
        check_state_like(self.state_dict(), state)
        n_envs = len(self.worker.rng_states())
        if len(state["rng"]["envs"]) != n_envs:
            raise ValueError(f"checkpoint has {len(state['rng']['envs'])} env RNG states, run has {n_envs}")
        self._load_learner(state["learner"])
        self.designer.load_state_dict(state["designer"])
        self.action_generator.set_state(state["rng"]["action"])
        self.designer_generator.set_state(state["rng"]["designer"])
        self.worker.set_rng_states(state["rng"]["envs"])
        self.pending = Batch.from_dict(state["pending"]) if state["pending"] is not None else None
        prog = state["progress"]
        self.progress = Progress(
            episodes=int(prog["episodes"]),
            iterations=int(prog["iterations"]),
            next_eval=int(prog["next_eval"]),
            history=[eval_result(h) for h in prog["history"]],
            train_metrics={k: [float(x) for x in v] for k, v in prog.get("train_metrics", {}).items()},
        )

    @classmethod
    def resume(cls, path: str | Path, *, overwrite: bool = False, **overrides: Any) -> Trainer:
        """Rebuild a trainer from a checkpoint; ``overrides`` change TrainConfig fields (e.g. ``episodes``).

        The resumed run writes into the checkpoint's folder (wherever it was first written: a copied or moved run
        continues in its new place), or nowhere with ``out_dir=None``; another ``out_dir`` raises ``ValueError``.
        Resuming the folder's ``checkpoint.pt`` continues the run (log rows past the checkpoint are replaced);
        resuming another file there (e.g. ``solved.pt``) would roll the run back and needs ``overwrite=True``.
        """
        source = Path(path).resolve()
        state = load_checkpoint(source)
        folder = source.parent
        wanted = overrides.get("out_dir", folder)
        if wanted is not None and Path(wanted).resolve() != folder:
            raise ValueError(f"a resumed run writes into its checkpoint's folder {folder}, not {wanted}: copy "
                             f"{source.name} into {wanted} and resume the copy to continue the run there")
        train_cfg = config_from_dict(TrainConfig, {**state["train_config"], **overrides,
                                                   "out_dir": None if wanted is None else str(folder)})
        trainer = cls(
            train_cfg,
            designer=config_from_dict(DesignerConfig, state["designer_config"]),
            learner=config_from_dict(LearnerConfig, state["learner_config"]),
            overwrite=overwrite,
            load_agents=False,  # the checkpoint holds them (agents_from may have moved since)
        )
        try:
            trainer.load_state_dict(state)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from err
        trainer._source = source
        return trainer

    # ------------------------------------------------------------------ summary
    def episodes_to(self, fraction: float = 0.95) -> int | None:
        """First evaluated episode whose welfare reached ``fraction`` of the task's optimum (None if never)."""
        return episodes_to(self.progress.history, self.task.optimum, fraction)


def train(config: TrainConfig, designer: DesignerConfig | None = None, learner: LearnerConfig | None = None) -> Trainer:
    """Build a :class:`Trainer` and run it to the end of its budget."""
    trainer = Trainer(config, designer, learner)
    trainer.train()
    return trainer


def load_incentive(path: str | Path) -> IncentivePolicy | None:
    """The frozen payment rule of a trained designer checkpoint (for SB3 transfer or any incentive wrapper).

    Returns the designer's incentive (a ``wrappers.ModuleIncentive`` for MetaGrad/AMD) with its network in eval
    mode and gradients off; ``None`` for designers that pay nothing (including the tax designers, which act
    through the env's own tax interface rather than by payments).
    """
    trainer = Trainer.resume(path, out_dir=None)  # reads only: no folder, no lock
    if not trainer.task.outputs:
        return None
    for module in (getattr(trainer.designer, "net", None), getattr(trainer.designer, "policy", None)):
        if module is not None:
            module.eval()
            module.requires_grad_(False)
    return trainer.designer.incentive
