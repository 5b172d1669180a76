"""Train several seeds of one configuration as one program (the vectorized path across runs, issue #14).

:class:`SeedStack` takes S :class:`~designer.experiments.trainer.Trainer` objects that differ only in their seed
(and output folder) and trains them together: their agents' and designer's parameters are stacked on a leading
run axis (:mod:`designer.stacked`), one batched env holds every run's copies (run ``s``'s B copies are copies
``s * B ... (s + 1) * B - 1``, carrying run ``s``'s own env random streams), each run samples its actions from its
own generator, and one policy forward, one incentive evaluation and one (vmapped) meta-step serve all runs.

Each trainer stays the owner of its run: before every evaluation and checkpoint the stacked state is written back
into it, so evaluations, ``log.csv``, TensorBoard, ``checkpoint.pt``/``solved.pt`` and ``Trainer.resume`` are the
trainer's own, and a checkpoint of a stacked run resumes bit-exactly, stacked again or alone. A run's curve does
not depend on which other runs it is stacked with, up to the float rounding of batched matmuls.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import fields
from typing import Any

import torch

from designer.batch import Batch
from designer.batched_rollout import BatchedRolloutWorker, CannotBatch
from designer.config import TrainConfig
from designer.experiments.loop import TrainingLoop, progress_bar
from designer.experiments.runfolder import RunLock, claim_run_folder
from designer.experiments.trainer import Trainer
from designer.learners import Params
from designer.rollout import EpisodeStats
from designer.stacked import CannotStack, StackedLearner, StackedModule, fast_stacked_forward

__all__ = ["SeedStack", "stack_batches", "unstack_batch"]

_PER_RUN_FIELDS = ("seed", "out_dir")
"""TrainConfig fields in which stacked runs may differ."""


def stack_batches(batches: Sequence[Batch]) -> Batch:
    """``[S, B, T, ...]`` from S batches ``[B, T_s, ...]``, padded with zeros to the longest T (padding is masked)."""
    longest = max(b.actions.shape[1] for b in batches)

    def pad(x: torch.Tensor) -> torch.Tensor:
        extra = longest - x.shape[1]
        return x if extra == 0 else torch.cat([x, x.new_zeros(x.shape[0], extra, *x.shape[2:])], 1)

    data: dict[str, torch.Tensor | None] = {}
    for f in fields(Batch):
        values = [getattr(b, f.name) for b in batches]
        data[f.name] = None if values[0] is None else torch.stack([pad(v) for v in values])
    return Batch.from_dict(data)


def unstack_batch(batch: Batch, run: int) -> Batch:
    """Run ``run``'s episodes ``[B, T_s, ...]`` of a stacked batch, cut after its own last real step."""
    steps = int(torch.nonzero(batch.step_mask[run].sum(0)).max()) + 1 if batch.step_mask[run].any() else 0
    return batch.map(lambda x: x[run, :, :steps].clone())


class SeedStack:
    """S trainers of one configuration (different seeds) trained as one program.

    Args:
        trainers: fresh or resumed trainers at the same point of training (same episodes and iterations) whose
            task, designer and learner configurations are equal and whose train configurations differ only in
            ``seed`` and ``out_dir``.

    Raises:
        CannotStack: the runs differ in anything else, or their designer, learner or game has no stacked form
            (the message says which; :meth:`Trainer.train` trains such runs one by one).
    """

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        if not trainers:
            raise CannotStack("no runs to stack")
        self.trainers = list(trainers)
        first = self.trainers[0]
        self._check_compatible()
        self.n_runs = len(self.trainers)
        self.batch_episodes = first.config.batch_episodes
        self.learner = StackedLearner([t.learner for t in self.trainers])
        self.designer = type(first.designer).stack_runs([t.designer for t in self.trainers])
        try:
            policy = self.designer.batched_incentive()
            env = first.task.make_batched_env(self.n_runs * self.batch_episodes)
            self.worker = BatchedRolloutWorker(env, first.task, policy)
        except CannotBatch as err:
            raise CannotStack(f"task {first.task.name!r} with designer {first.designer_config.algorithm!r} has no "
                              f"batched rollout: {err}") from err
        self.worker.reset(0)  # every copy's stream is then replaced by its own run's
        self.worker.set_rng_states([s for t in self.trainers for s in t.worker.rng_states()])
        pending = [t.pending for t in self.trainers]
        self.pending = None if pending[0] is None else stack_batches([p for p in pending if p is not None])

    @property
    def mlp_only(self) -> bool:
        """Whether every network the rollouts evaluate has a batched-matmul stacked form (the library's MLPs):
        where stacking was measured to pay off. Conv networks go through ``vmap`` (correct, not faster here)."""
        nets = [self.learner.net, getattr(self.designer, "net", None)]
        return all(n is None or fast_stacked_forward(n.template if isinstance(n, StackedModule) else n) is not None
                   for n in nets)

    def _check_compatible(self) -> None:
        first = self.trainers[0]
        base = {f.name: getattr(first.config, f.name) for f in fields(TrainConfig) if f.name not in _PER_RUN_FIELDS}
        for s, t in enumerate(self.trainers):
            diff = sorted(k for k in base if getattr(t.config, k) != base[k])
            if diff:
                raise CannotStack(f"run {s} differs from run 0 in {diff}: only seed and out_dir may differ")
            if t.task.name != first.task.name:
                raise CannotStack(f"run {s} plays {t.task.name!r}, run 0 {first.task.name!r}")
            for what, mine, theirs in (("designer", first.designer_config, t.designer_config),
                                       ("learner", first.learner_config, t.learner_config)):
                diff = sorted(f.name for f in fields(mine) if getattr(mine, f.name) != getattr(theirs, f.name))
                if diff:
                    raise CannotStack(f"run {s}'s {what} configuration differs from run 0's in {diff}")
            if (t.progress.episodes, t.progress.iterations, t.pending is None) != (
                    first.progress.episodes, first.progress.iterations, first.pending is None):
                raise CannotStack(f"run {s} is at episode {t.progress.episodes}, run 0 at {first.progress.episodes}: "
                                  "stacked runs must be at the same point of training")
        seeds = [t.config.seed for t in self.trainers]
        if len(set(seeds)) != len(seeds):
            raise CannotStack(f"stacked runs need distinct seeds, got {seeds}")
        outs = [t.config.out_dir for t in self.trainers if t.config.out_dir]
        if len(set(outs)) != len(outs):
            raise CannotStack(f"stacked runs need distinct output folders, got {outs}")

    # ----------------------------------------------------------------- rollouts
    def collect(self, params: Params) -> tuple[Batch, list[EpisodeStats]]:
        """One batch of every run's training episodes (``[S, B, ...]``) with stacked agent parameters."""
        n, b = self.n_runs, self.batch_episodes

        def policy(obs: torch.Tensor) -> torch.Tensor:
            logits = self.learner.logits(params, obs.reshape(n, b, *obs.shape[1:]))
            return logits.reshape(n * b, *logits.shape[2:])

        batch, stats = self.worker.collect(policy, self.learner.epsilon, [t.action_generator for t in self.trainers])
        for t in self.trainers:
            t.progress.episodes += b
        return batch.map(lambda x: x.reshape(n, b, *x.shape[1:])), stats

    def iterate(self) -> None:
        """One training iteration of every run (the first batch, then designer iterations on the pending one)."""
        if self.pending is None:
            self.pending, _ = self.collect(self.learner.params)
            return
        self.pending, metrics = self.designer.iterate(self.learner, self.collect, self.pending)
        for s, t in enumerate(self.trainers):
            t.progress.iterations += 1
            for k, v in metrics.items():
                value = v if isinstance(v, float) else float(v.reshape(-1)[s] if v.numel() > 1 else v)
                t.progress.train_metrics.setdefault(k, []).append(value)

    def sync(self) -> None:
        """Write the stacked state back into every trainer (parameters, optimizer moments, RNG streams, the
        pending batch), so that each can evaluate, log and checkpoint its own run."""
        self.learner.unstack_into([t.learner for t in self.trainers])
        self.designer.unstack_into([t.designer for t in self.trainers])
        states = self.worker.rng_states()
        per = len(states) // self.n_runs
        for s, t in enumerate(self.trainers):
            t.worker.set_rng_states(states[s * per:(s + 1) * per])
            t.pending = None if self.pending is None else unstack_batch(self.pending, s)

    # ----------------------------------------------------------------- training
    def train(self) -> list[list[Any]]:
        """Train every run to the end of its budget; returns each run's evaluation history.

        Each run's folder is locked and claimed as :meth:`Trainer.train` does; evaluations and checkpoints
        happen at each run's own schedule (the same for all: the runs move in lockstep).
        """
        with ExitStack() as stack:
            for t in self.trainers:
                if t.out_dir is not None:
                    lock = RunLock(t.out_dir).acquire()
                    stack.callback(lock.release)
                    if not t._claimed:
                        claim_run_folder(t.out_dir, t._source, t.overwrite)
                        t._claimed = True
            self._train()
            for t in self.trainers:
                if t.out_dir is not None:
                    t.save(t.out_dir / "checkpoint.pt")
        return [t.progress.history for t in self.trainers]

    def _train(self) -> None:
        first = self.trainers[0]
        cfg = first.config
        bar = progress_bar(cfg.progress, cfg.episodes * self.n_runs, first.progress.episodes * self.n_runs,
                           f"{first.designer_config.algorithm} on {first.task.name} ({self.n_runs} seeds stacked)")
        seeds = [t.config.seed for t in self.trainers]

        def evaluate() -> None:
            self._evaluate()
            if bar is not None:  # the postfix changes only with an evaluation: the runs' mean
                last = [t.progress.history[-1] for t in self.trainers]
                bar.set_postfix(welfare=f"{sum(h.welfare for h in last) / len(last):.2f}",
                                paid=f"{sum(h.incentives for h in last) / len(last):.2f}", refresh=False)

        loop = TrainingLoop(
            first.progress, cfg.episodes, iterate=self.iterate, evaluate=evaluate,
            where=lambda before: f"stacked seeds {seeds}, training iteration {first.progress.iterations + 1}",
            checkpoint=self._checkpoint, checkpoint_period=cfg.checkpoint_period, bar=bar, bar_scale=self.n_runs)
        try:
            loop.run()
            self.sync()
        finally:
            if bar is not None:
                bar.close()
            for t in self.trainers:
                if t._tb is not None:
                    t._tb.flush()

    def _evaluate(self) -> None:
        self.sync()
        for t in self.trainers:
            t._evaluate_and_log()

    def _checkpoint(self) -> None:
        if any(t.out_dir is not None for t in self.trainers):
            self.sync()
        for t in self.trainers:
            if t.out_dir is not None:
                t.save(t.out_dir / "checkpoint.pt")
