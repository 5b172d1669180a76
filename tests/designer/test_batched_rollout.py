"""The batched rollout (#14 part 3): the same batches, statistics and training as the sequential reference path.

Integers (actions, slots, masks, lengths, ...) must be equal; floats agree within 1e-6: a designer network run on
``[B, F]`` rows may round differently from the same network run on one row.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from designer import DesignerConfig, TrainConfig, Trainer
from designer.algorithms import Designer, MetaGradDesigner
from designer.batch import Batch
from designer.batched_rollout import BatchedRolloutWorker, CannotBatch
from designer.rollout import EpisodeStats, RolloutWorker
from designer.task import PerCopySlots, Task
from designer.tasks import make_task
from designer.tasks.cleanup import CleanupTask, cleanup_action_types, cleanup_agent_action_types
from incentive_envs.cleanup import action_type
from tests.designer.test_trainer import _params
from wrappers import BatchedStepContext, joint_action_features

TOL = 1e-6
ER31 = ("escape_room", {"n_agents": 3, "min_at_lever": 1})
IPD = ("ipd", {"max_cycles": 4})
CLEANUP = ("cleanup", {"max_steps": 12})

CASES = [
    (*ER31, "metagrad", {}),
    (*ER31, "fixed", {"fixed_values": (0.5, 0.0, 1.5)}),
    (*ER31, "none", {}),
    (*ER31, "dual_rl", {}),
    (*ER31, "dual_rl", {"dual_mode": "continuous"}),
    (*ER31, "amd", {"output": "agent"}),
    (*IPD, "metagrad", {}),
    (*IPD, "fixed", {"fixed_values": (1.0, 0.0)}),
    (*IPD, "none", {}),
    (*IPD, "dual_rl", {}),
    (*CLEANUP, "metagrad", {}),
    (*CLEANUP, "metagrad", {"output": "agent_action_type"}),
    (*CLEANUP, "fixed", {"fixed_values": (1.0, 0.5, 0.0)}),
    (*CLEANUP, "none", {}),
    (*CLEANUP, "dual_rl", {}),
]


def _trainer(task: str, kwargs: dict[str, Any], algorithm: str, designer_kw: dict[str, Any], vectorized: bool,
             **cfg: Any) -> Trainer:
    base = {"task": task, "task_kwargs": kwargs, "episodes": 24, "batch_episodes": 8, "seed": 3,
            "eval_period": 8, "eval_episodes": 3, "vectorized": vectorized}
    designer = replace(make_task(task, **kwargs).designer, algorithm=algorithm, **designer_kw)
    return Trainer(TrainConfig(**{**base, **cfg}), designer=designer)


def assert_batches_match(seq: Batch, vec: Batch) -> None:
    """Every field: same shape and dtype, integers equal, floats within TOL."""
    for f in fields(Batch):
        a, b = getattr(seq, f.name), getattr(vec, f.name)
        if a is None or b is None:
            assert a is None and b is None, f.name
            continue
        assert (a.shape, a.dtype) == (b.shape, b.dtype), f.name
        if a.dtype.is_floating_point:
            torch.testing.assert_close(b, a, rtol=0.0, atol=TOL, msg=f.name)
        else:
            assert torch.equal(a, b), f.name


def assert_stats_match(seq: list[EpisodeStats], vec: list[EpisodeStats]) -> None:
    assert len(seq) == len(vec)
    for s, v in zip(seq, vec):
        assert (s.steps, s.action_counts) == (v.steps, v.action_counts)
        assert [k for k, _ in s.info_totals] == [k for k, _ in v.info_totals]
        flat_s = [s.welfare, s.incentives, *s.env_returns, *s.incentive_returns, *(x for _, x in s.info_totals)]
        flat_v = [v.welfare, v.incentives, *v.env_returns, *v.incentive_returns, *(x for _, x in v.info_totals)]
        np.testing.assert_allclose(flat_v, flat_s, rtol=0.0, atol=1e-5)


@pytest.mark.parametrize(("task", "kwargs", "algorithm", "designer_kw"), CASES,
                         ids=[f"{c[0]}-{c[2]}-{'-'.join(map(str, c[3].values()))}" for c in CASES])
def test_batched_batches_equal_sequential(task, kwargs, algorithm, designer_kw):
    """Same agent parameters, env seeds and action generator: the batched worker records the sequential
    worker's batch (recorded incentive inputs included) and statistics, for two episodes in a row (the second
    continues every copy's random stream), and the designer's recomputed payments equal what was paid."""
    seq = _trainer(task, kwargs, algorithm, designer_kw, vectorized=False)
    vec = _trainer(task, kwargs, algorithm, designer_kw, vectorized=True)
    assert isinstance(seq.worker, RolloutWorker) and isinstance(vec.worker, BatchedRolloutWorker)
    for _ in range(2):
        b_seq, s_seq = seq.collect(seq.learner.params)
        b_vec, s_vec = vec.collect(vec.learner.params)
        assert_batches_match(b_seq, b_vec)
        assert_stats_match(s_seq, s_vec)
        payments = getattr(vec.designer, "payments", None)
        if payments is not None:
            torch.testing.assert_close(payments(b_vec).detach(), b_vec.paid, rtol=1e-5, atol=TOL)
    if task == "escape_room":
        assert len(set(b_vec.step_mask.sum(1).tolist())) > 1, "copies should end at different steps"
    if algorithm == "metagrad":
        assert b_vec.features.shape[-1] == vec.task.feature_dim and b_vec.paid.abs().sum() > 0
    # evaluation rollouts take the same path
    e_seq, es_seq = seq.evaluate_batch(3, 11)
    e_vec, es_vec = vec.evaluate_batch(3, 11)
    assert_batches_match(e_seq, e_vec)
    assert_stats_match(es_seq, es_vec)


def _contexts(task: Task, n_envs: int = 6, steps: int = 12, seed: int = 0) -> list[BatchedStepContext]:
    """Step contexts of a batched rollout with random actions (no designer)."""
    worker = BatchedRolloutWorker(task.make_batched_env(n_envs), task, None)
    worker.reset(seed)
    env = worker.env
    env.reset()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        if env.env.done.all():
            break
        env.step(rng.integers(0, task.n_actions, size=(n_envs, len(task.agents))))
        assert env.last_context is not None
        out.append(env.last_context)
    return out


def test_cleanup_rules_vectorized_equal_the_per_step_rules():
    """Cleanup's batched action types (both outputs) and features equal the per-step rules copy by copy, and
    the action types are incentive_envs.cleanup.action_type of each agent's infos."""
    task = make_task("cleanup", max_steps=30)
    assert isinstance(task, CleanupTask)
    for ctx in _contexts(task, steps=30):
        for name, rule in (("action_type", cleanup_action_types), ("agent_action_type", cleanup_agent_action_types)):
            np.testing.assert_array_equal(task.output(name).batched_rule(ctx), PerCopySlots(rule)(ctx))
        types = task.output("action_type").batched_rule(ctx)
        for b in range(ctx.shape[0]):
            single = ctx.copy_context(b)
            assert [types[b, i] for i in range(ctx.shape[1])] == [action_type(single.infos[a]) for a in single.agents]
            np.testing.assert_array_equal(task.batched_features(ctx)[b], task.features(single))
            assert task.batched_designer_reward(ctx)[b] == task.designer_reward(single)
            np.testing.assert_array_equal(task.batched_state(ctx)[b], task.state(single))


class _OwnFeatures(Task):
    """A generic task that overrides the per-step features only: its batched features are the per-step ones
    lifted copy by copy."""

    def features(self, ctx):
        return 2.0 * joint_action_features(ctx)


class _OwnCleanupFeatures(CleanupTask):
    def features(self, ctx):
        return super().features(ctx) + 1.0


def test_overridden_per_step_rules_are_lifted_copy_by_copy():
    er = make_task(*ER31[:1], **ER31[1])
    own = _OwnFeatures("escape_room", er.make_env, make_batched=er.make_batched_env)
    for ctx in _contexts(own):
        lifted = own.batched_features(ctx)
        live = ctx.active.any(axis=1)
        np.testing.assert_array_equal(lifted[live], 2.0 * er.batched_features(ctx)[live])
        assert not lifted[~live].any()
    cleanup = make_task("cleanup", max_steps=5)
    sub = _OwnCleanupFeatures("cleanup", cleanup.make_env, make_batched=cleanup.make_batched_env)
    for ctx in _contexts(sub, steps=5):
        np.testing.assert_array_equal(sub.batched_features(ctx), cleanup.batched_features(ctx) + 1.0)
    # the generic batch over single envs (no native batch) serves any task
    generic = Task("escape_room", er.make_env)
    assert type(generic.make_batched_env(2)).__name__ == "PettingZooBatch"


def _curve(t: Trainer) -> list[tuple[float, ...]]:
    return [(h.episode, h.welfare, h.incentives, h.steps) for h in t.progress.history]


@pytest.mark.parametrize(("task", "kwargs", "algorithm", "designer_kw"),
                         [(*ER31, "metagrad", {}), (*ER31, "dual_rl", {}), (*CLEANUP, "metagrad", {})],
                         ids=["er-metagrad", "er-dual_rl", "cleanup-metagrad"])
def test_batched_training_is_deterministic_and_follows_the_sequential_path(task, kwargs, algorithm, designer_kw):
    """Two batched runs are bit-identical; the batched run's learning curve and parameters match the
    sequential run's within tolerance over a few iterations."""
    runs = [_trainer(task, kwargs, algorithm, designer_kw, vectorized=v) for v in (True, True, False)]
    for r in runs:
        r.train()
    a, b, seq = runs
    assert a.progress.history == b.progress.history
    pa, pb, ps = _params(a), _params(b), _params(seq)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert a.progress.iterations == seq.progress.iterations >= 2
    np.testing.assert_allclose(_curve(a), _curve(seq), rtol=0.0, atol=1e-4)
    for k in pa:
        torch.testing.assert_close(pa[k], ps[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.mark.parametrize(("task", "kwargs", "algorithm"),
                         [("escape_room", {"n_agents": 3, "min_at_lever": 1, "randomize": True}, "metagrad"),
                          ("escape_room", {"n_agents": 3, "min_at_lever": 1}, "dual_rl"),
                          (*CLEANUP, "metagrad")], ids=["er-random-starts", "er-dual_rl", "cleanup"])
def test_batched_resume_is_bit_exact(tmp_path: Path, task, kwargs, algorithm):
    """Train N+M episodes == train N, save, resume, train M on the batched path; the checkpoint holds every
    copy's env random state."""
    full = _trainer(task, kwargs, algorithm, {}, vectorized=True, episodes=48)
    full.train()
    part = _trainer(task, kwargs, algorithm, {}, vectorized=True, episodes=24)
    part.train()
    state = part.state_dict()
    assert len(state["rng"]["envs"]) == 8 and state["train_config"]["vectorized"] is True
    resumed = Trainer.resume(part.save(tmp_path / "ckpt.pt"), episodes=48)
    assert isinstance(resumed.worker, BatchedRolloutWorker)
    resumed.train()
    p_full, p_res = _params(full), _params(resumed)
    assert all(torch.equal(p_full[k], p_res[k]) for k in p_full)
    assert [h for h in full.progress.history if h.episode > 24] == [
        h for h in resumed.progress.history if h.episode > 24]


class _OwnControlPoint(MetaGradDesigner):
    def wrap_env(self, env, eval_generator=None):
        return env


class _OwnRule(Designer):
    def __init__(self, task, config, generator=None):
        super().__init__(task, config)
        self._incentive = lambda ctx: {}  # type: ignore[assignment]


class _WithDesigners(Task):
    designers = {"metagrad": _OwnControlPoint, "dual_rl": _OwnRule}


@pytest.mark.parametrize(("algorithm", "why"), [("metagrad", "own control point (wrap_env)"),
                                                ("dual_rl", "no batched payment rule")])
def test_vectorized_refuses_designers_that_cannot_batch(algorithm, why):
    er = make_task(*ER31[:1], **ER31[1])
    task = _WithDesigners("escape_room", er.make_env, make_batched=er.make_batched_env)
    cfg = TrainConfig(task="escape_room", task_kwargs=ER31[1], episodes=4, vectorized=True)
    with pytest.raises(ValueError, match="vectorized=True cannot run") as err:
        Trainer(cfg, designer=DesignerConfig(algorithm=algorithm), task=task)
    assert isinstance(err.value, CannotBatch)
    assert why in str(err.value) and "use vectorized=False" in str(err.value)
    # the sequential path still runs them
    Trainer(replace(cfg, vectorized=False), designer=DesignerConfig(algorithm=algorithm), task=task)


def test_a_sequential_checkpoint_resumes_on_the_batched_path(tmp_path: Path):
    """Both paths checkpoint one RNG state per env copy, so a sequential run resumes on the batched path (and
    follows the uninterrupted sequential run within tolerance)."""
    kwargs = {"n_agents": 3, "min_at_lever": 1, "randomize": True}
    full = _trainer("escape_room", kwargs, "metagrad", {}, vectorized=False, episodes=48)
    full.train()
    part = _trainer("escape_room", kwargs, "metagrad", {}, vectorized=False, episodes=24)
    part.train()
    resumed = Trainer.resume(part.save(tmp_path / "ckpt.pt"), episodes=48, vectorized=True)
    assert isinstance(resumed.worker, BatchedRolloutWorker)
    resumed.train()
    np.testing.assert_allclose(_curve(resumed), _curve(full), rtol=0.0, atol=1e-4)


class _MustMove(Task):
    """Escape Room where an agent may not stay where it is (an action mask from its observation), with
    observation rows of its own: both per-step rules are lifted copy by copy on the batched path."""

    def action_mask(self, agent, obs, info):
        mask = np.ones(self.n_actions, dtype=np.float32)
        mask[int(np.argmax(np.asarray(obs)[:3]))] = 0.0
        return mask

    def obs_row(self, obs):
        return 2.0 * np.asarray(obs)


def test_masks_and_observation_rows_of_a_custom_task_match():
    er = make_task(*ER31[:1], **ER31[1])
    batches = []
    for vectorized in (False, True):
        task = _MustMove("escape_room", er.make_env, make_batched=er.make_batched_env)
        t = Trainer(TrainConfig(task="escape_room", task_kwargs=ER31[1], batch_episodes=6, seed=2,
                                vectorized=vectorized), task=task)
        batches.append(t.collect(t.learner.params)[0])
    assert_batches_match(*batches)
    seq = batches[0]
    assert seq.action_mask is not None and float(seq.obs.max()) == 2.0
    taken = seq.action_mask.gather(-1, seq.actions.unsqueeze(-1)).squeeze(-1)
    assert torch.all(taken[seq.mask > 0] == 1.0)


def test_cli_vectorized_flag_reaches_the_run(tmp_path):
    """``--vectorized`` trains on the batched path: the checkpoint's config says so and it resumes as such."""
    from designer.experiments.checkpoint import load_checkpoint
    from designer.experiments.cli import main

    argv = ["train", "--task", "ipd", "--episodes", "8", "--eval-period", "4", "--eval-episodes", "2",
            "--batch-episodes", "4", "--vectorized", "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 0
    state = load_checkpoint(tmp_path / "ipd" / "metagrad" / "seed0" / "checkpoint.pt")
    assert state["train_config"]["vectorized"] is True and state["train_config"]["batch_episodes"] == 4
