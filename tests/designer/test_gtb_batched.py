"""The Gather-Trade-Build tax designers on the batched rollout (#14): through ``Designer.batched_wrap_env`` and
``BatchedTaxRatesWrapper`` they collect the sequential path's batches and statistics, train along its curve, and
resume bit-exactly on the vectorized path.

Integers equal; floats within 1e-6 (the tax network and the planner run on ``[B, S]`` rows at once).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from designer import TrainConfig, Trainer
from designer.batched_rollout import BatchedRolloutWorker
from designer.rollout import RolloutWorker
from designer.tasks import make_task
from designer.tasks.gather_trade_build import BatchedStepLog, StepFeatures
from tests.designer.test_batched_rollout import assert_batches_match, assert_stats_match
from tests.designer.test_trainer import _params
from wrappers import BatchedTaxRatesWrapper

SHORT = {"max_cycles": 20}  # two tax periods
CASES = [
    ("metagrad", {}, {}),
    ("dual_rl", {}, {}),
    ("none", {"tax_model": "free_market"}, {}),
    ("none", {"tax_model": "us_federal", "anneal_cap": True, "n_episodes_reach_max_rate": 4}, {}),
    ("none", {"tax_model": "saez"}, {}),
    ("fixed", {}, {"fixed_values": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)}),
]
IDS = ["metagrad", "dual_rl", "free_market", "us_federal", "saez", "flat"]


def _trainer(algorithm: str, task_kwargs: dict[str, Any], designer_kw: dict[str, Any], vectorized: bool,
             **cfg: Any) -> Trainer:
    """A small GTB trainer (small networks, short episodes, 2 episodes per update)."""
    kwargs = {**SHORT, **task_kwargs}
    task = make_task("gather_trade_build", **kwargs)
    designer = replace(task.designer, algorithm=algorithm, hidden=(8,), critic_hidden=(8,), dual_hidden=(8,),
                       **designer_kw)
    learner = replace(task.learner, hidden=(8,), critic_hidden=(8,))
    base = {"task": "gather_trade_build", "task_kwargs": kwargs, "episodes": 6, "batch_episodes": 2, "seed": 2,
            "eval_period": 4, "eval_episodes": 2, "vectorized": vectorized}
    return Trainer(TrainConfig(**{**base, **cfg}), designer=designer, learner=learner, task=task)


@pytest.mark.parametrize(("algorithm", "task_kwargs", "designer_kw"), CASES, ids=IDS)
def test_batched_batches_equal_sequential(algorithm, task_kwargs, designer_kw):
    """Same agent parameters, env seeds and generators: the batched worker records the sequential batch (the
    tax features included) and statistics, two episodes in a row; evaluation too (its own generators)."""
    seq = _trainer(algorithm, task_kwargs, designer_kw, vectorized=False)
    vec = _trainer(algorithm, task_kwargs, designer_kw, vectorized=True)
    assert isinstance(seq.worker, RolloutWorker) and isinstance(vec.worker, BatchedRolloutWorker)
    assert isinstance(vec.worker.env.env, BatchedTaxRatesWrapper)
    for _ in range(2):
        b_seq, s_seq = seq.collect(seq.learner.params)
        b_vec, s_vec = vec.collect(vec.learner.params)
        assert_batches_match(b_seq, b_vec)
        assert_stats_match(s_seq, s_vec)
    f = StepFeatures(vec.task.schema).split(b_vec.features[..., : vec.task.feature_dim])
    assert (f["enacted"].sum(1) == 2).all()  # two periods enacted per episode, rates logged with them
    assert vec.designer.state_dict().keys() == seq.designer.state_dict().keys()
    e_seq, es_seq = seq.evaluate_batch(3, 11)
    e_vec, es_vec = vec.evaluate_batch(3, 11)
    assert_batches_match(e_seq, e_vec)
    assert_stats_match(es_seq, es_vec)


def test_dual_rl_logs_its_exploration_and_evaluation_leaves_the_training_generator_alone():
    vec = _trainer("dual_rl", {}, {}, vectorized=True)
    assert isinstance(vec.designer.batched_incentive(), BatchedStepLog)
    before = vec.designer_generator.get_state()
    vec.evaluate_batch(2, 5)
    assert torch.equal(before, vec.designer_generator.get_state())
    batch, _ = vec.collect(vec.learner.params)
    assert not torch.equal(before, vec.designer_generator.get_state())  # training samples from it
    np.testing.assert_allclose(batch.features[0, 0, -2:].numpy(), [vec.designer.epsilon, vec.designer.cap], rtol=1e-6)


@pytest.mark.parametrize(("algorithm", "task_kwargs", "designer_kw"), [CASES[0], CASES[1], CASES[4]],
                         ids=["metagrad", "dual_rl", "saez"])
def test_batched_training_is_deterministic_and_follows_the_sequential_path(algorithm, task_kwargs, designer_kw):
    """Two batched runs are bit-identical; their curve and parameters (agents and designer) follow the
    sequential run's within tolerance over a few iterations."""
    runs = [_trainer(algorithm, task_kwargs, designer_kw, vectorized=v) for v in (True, True, False)]
    for r in runs:
        r.train()
    a, b, seq = runs
    assert a.progress.history == b.progress.history
    pa, pb, ps = _params(a), _params(b), _params(seq)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert a.progress.iterations == seq.progress.iterations >= 2
    curve = [[h.episode, h.welfare, *h.env_returns, *h.info.values()] for h in a.progress.history]
    ref = [[h.episode, h.welfare, *h.env_returns, *h.info.values()] for h in seq.progress.history]
    np.testing.assert_allclose(curve, ref, rtol=1e-5, atol=1e-4)
    for k in pa:
        torch.testing.assert_close(pa[k], ps[k], rtol=1e-4, atol=1e-5, msg=k)
    for key, value in a.designer.state_dict().items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(value, seq.designer.state_dict()[key], rtol=1e-4, atol=1e-5, msg=key)
    assert a.progress.train_metrics.keys() == seq.progress.train_metrics.keys()


@pytest.mark.parametrize(("algorithm", "task_kwargs", "designer_kw"), [CASES[0], CASES[1], CASES[4]],
                         ids=["metagrad", "dual_rl", "saez"])
def test_batched_resume_is_bit_exact(tmp_path: Path, algorithm, task_kwargs, designer_kw):
    """Train N+M episodes == train N, save, resume, train M on the batched path (env copies' random states,
    the planner's generator and the Saez buffer included)."""
    full = _trainer(algorithm, task_kwargs, designer_kw, vectorized=True, episodes=8)
    full.train()
    part = _trainer(algorithm, task_kwargs, designer_kw, vectorized=True, episodes=4)
    part.train()
    state = part.state_dict()
    assert len(state["rng"]["envs"]) == 2 and state["train_config"]["vectorized"] is True
    resumed = Trainer.resume(part.save(tmp_path / "ckpt.pt"), episodes=8)
    assert isinstance(resumed.worker, BatchedRolloutWorker)
    resumed.train()
    p_full, p_res = _params(full), _params(resumed)
    assert all(torch.equal(p_full[k], p_res[k]) for k in p_full)
    assert [h for h in full.progress.history if h.episode > 4] == [h for h in resumed.progress.history if h.episode > 4]
    d_full, d_res = full.designer.state_dict(), resumed.designer.state_dict()
    for key, value in d_full.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, d_res[key]), key
