"""Seeds trained as one stacked program (designer.stacked, designer.experiments.seed_stack).

Each stacked run must be the run it is alone (up to the float rounding of batched matmuls), independent of the
runs it is stacked with, bit-identical run to run, and resume bit-exactly from its own checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from designer.config import DesignerConfig, TrainConfig
from designer.experiments.seed_stack import SeedStack, stack_batches, unstack_batch
from designer.experiments.trainer import Trainer
from designer.stacked import CannotStack

ER31 = {"n_agents": 3, "min_at_lever": 1}


def _trainer(seed: int, episodes: int = 60, out: Path | None = None, algorithm: str = "metagrad",
             **designer: object) -> Trainer:
    cfg = TrainConfig(task="escape_room", task_kwargs=ER31, episodes=episodes, seed=seed, progress=False,
                      vectorized=True, eval_episodes=4, eval_period=20, checkpoint_period=20 if out else 0,
                      out_dir=str(out) if out else None)
    trainer = Trainer(cfg)
    if algorithm != "metagrad" or designer:
        base = trainer.task.designer
        kwargs = {"algorithm": algorithm, **designer}
        trainer = Trainer(cfg, designer=DesignerConfig(**{**base.__dict__, **kwargs}))
    return trainer


def _params(t: Trainer) -> list[torch.Tensor]:
    out = [v.detach() for v in t.learner.params.values()]
    net = getattr(t.designer, "net", None)
    return out + ([p.detach() for p in net.parameters()] if net is not None else [])


def _welfare(t: Trainer) -> list[float]:
    return [h.welfare for h in t.progress.history]


@pytest.mark.parametrize("designer", [
    {},
    {"algorithm": "metagrad_m2"},
    {"max_grad_norm": 0.05, "normalize_weights": True},
    {"pipeline": False, "cost": "proxy"},
    {"algorithm": "none"},
])
def test_stacked_runs_equal_their_runs_alone(designer: dict[str, object]) -> None:
    stacked = [_trainer(s, **designer) for s in (0, 1, 2)]
    SeedStack(stacked).train()
    for s, t in zip((0, 1, 2), stacked):
        alone = _trainer(s, **designer)
        alone.train()
        assert _welfare(t) == _welfare(alone)
        for a, b in zip(_params(t), _params(alone)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert t.progress.train_metrics.keys() == alone.progress.train_metrics.keys()
        for k, v in t.progress.train_metrics.items():
            assert v == pytest.approx(alone.progress.train_metrics[k], rel=1e-4, abs=1e-6), k


def test_a_run_does_not_depend_on_its_stack_mates() -> None:
    a = [_trainer(s) for s in (0, 1)]
    b = [_trainer(s) for s in (1, 4)]
    SeedStack(a).train()
    SeedStack(b).train()
    assert _welfare(a[1]) == _welfare(b[0])
    for x, y in zip(_params(a[1]), _params(b[0])):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_stacked_training_is_bit_identical_run_to_run() -> None:
    a = [_trainer(s) for s in (0, 1)]
    b = [_trainer(s) for s in (0, 1)]
    SeedStack(a).train()
    SeedStack(b).train()
    for x, y in zip(a, b):
        assert _welfare(x) == _welfare(y)
        for p, q in zip(_params(x), _params(y)):
            assert torch.equal(p, q)


def test_stacked_checkpoints_resume_bit_exactly(tmp_path: Path) -> None:
    full = [_trainer(s, episodes=60, out=tmp_path / f"full{s}") for s in (0, 1)]
    SeedStack(full).train()
    half = [_trainer(s, episodes=40, out=tmp_path / f"half{s}") for s in (0, 1)]
    SeedStack(half).train()
    resumed = [Trainer.resume(tmp_path / f"half{s}" / "checkpoint.pt", episodes=60) for s in (0, 1)]
    SeedStack(resumed).train()
    for x, y in zip(full, resumed):
        assert _welfare(x) == _welfare(y)
        for p, q in zip(_params(x), _params(y)):
            assert torch.equal(p, q)
    # a stacked run's checkpoint also resumes alone (the same run up to float rounding)
    alone = Trainer.resume(tmp_path / "half1" / "checkpoint.pt", episodes=60, out_dir=None)
    alone.train()
    assert _welfare(alone) == _welfare(full[1])
    log = (tmp_path / "full0" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + len(full[0].progress.history)


def test_stack_and_unstack_batches_round_trip() -> None:
    t = _trainer(0)
    b0, _ = t.collect(t.learner.params)
    b1, _ = t.collect(t.learner.params)
    stacked = stack_batches([b0, b1])
    assert stacked.actions.shape[:2] == (2, b0.n_episodes)
    for s, b in enumerate((b0, b1)):
        back = unstack_batch(stacked, s)
        for name, value in b.to_dict().items():
            other = back.to_dict()[name]
            assert (value is None and other is None) or torch.equal(value, other), name


@pytest.mark.parametrize(("change", "message"), [
    ({"seed": 0}, "distinct seeds"),
    ({"episodes": 80}, "differs from run 0 in ['episodes']"),
])
def test_incompatible_runs_are_refused(change: dict[str, object], message: str) -> None:
    a = _trainer(0)
    cfg = TrainConfig(**{**a.config.__dict__, **change})
    with pytest.raises(CannotStack, match=message.replace("[", r"\[").replace("]", r"\]")):
        SeedStack([a, Trainer(cfg)])


def test_designers_without_a_stacked_form_are_refused() -> None:
    with pytest.raises(CannotStack, match=r"DualRL|dual_rl"):
        SeedStack([_trainer(s, algorithm="dual_rl") for s in (0, 1)])
    with pytest.raises(CannotStack, match="lr"):
        SeedStack([_trainer(0), _trainer(1, lr=1e-3)])


def test_stacked_critics_equal_their_runs_alone() -> None:
    """Cleanup: actor-critic agents (critic, target, Adam) and the designer critic stack too."""
    def cleanup(seed: int) -> Trainer:
        return Trainer(TrainConfig(task="cleanup", episodes=8, batch_episodes=2, seed=seed, progress=False,
                                   vectorized=True, eval_episodes=1, eval_period=4))

    stacked = [cleanup(s) for s in (0, 1)]
    stack = SeedStack(stacked)
    assert not stack.mlp_only  # conv networks: the CLI's --stack auto trains them one by one
    stack.train()
    for s, t in zip((0, 1), stacked):
        alone = cleanup(s)
        alone.train()
        assert _welfare(t) == _welfare(alone)
        assert t.learner.critic is not None and alone.learner.critic is not None
        assert t.designer.critic is not None and alone.designer.critic is not None
        mine = [*_params(t), *t.learner.critic.parameters(), *t.designer.critic.parameters()]
        theirs = [*_params(alone), *alone.learner.critic.parameters(), *alone.designer.critic.parameters()]
        for a, b in zip(mine, theirs):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-4, atol=1e-5)


def test_stacked_metagrad_makes_cooperation_the_outcome_on_most_seeds() -> None:
    """Learning on the stacked path: PD (R,S,T,P)=(3,0,5,1), 5 seeds stacked, 600 episodes each. Under MetaGrad
    the agents cooperate (welfare >= 5.5 of 6) on at least 3 of 5 seeds (seeds 2 and 3 defect at this budget on
    the sequential path too, also at 1,200 episodes); without a designer they defect (welfare <= 2.5) on every
    seed."""
    def runs(algorithm: str) -> list[Trainer]:
        trainers = []
        for seed in range(5):
            cfg = TrainConfig(task="ipd", episodes=600, eval_period=120, eval_episodes=50, seed=seed, progress=False,
                              vectorized=True)
            base = Trainer(cfg).task.designer
            trainers.append(Trainer(cfg, designer=DesignerConfig(**{**base.__dict__, "algorithm": algorithm})))
        SeedStack(trainers).train()
        return trainers

    cooperative = [t.progress.history[-1].welfare for t in runs("metagrad")]
    selfish = [t.progress.history[-1].welfare for t in runs("none")]
    assert sum(w >= 5.5 for w in cooperative) >= 3, cooperative
    assert all(w <= 2.5 for w in selfish), selfish


def test_stacked_meta_gradient_is_each_runs_own_in_float64() -> None:
    """On fixed float64 batches the stacked meta-gradient's slice s equals run s's sequential meta-gradient
    (one REINFORCE step, the outer loss through it) to 1e-10: stacking changes no gradient, only the program."""
    from designer.algorithms import MetaGradDesigner
    from designer.learners import LearnerConfig, OptState, inner_update
    from designer.stacked import StackedLearner

    def run(seed: int) -> tuple[Trainer, object, object]:
        cfg = TrainConfig(task="escape_room", task_kwargs={"n_agents": 3, "min_at_lever": 2}, episodes=10,
                          batch_episodes=4, seed=seed)
        t = Trainer(cfg, designer=DesignerConfig(hidden=(8,)), learner=LearnerConfig(hidden=(8,), lr=0.05))
        tau, _ = t.collect(t.learner.params)
        tau2, _ = t.collect(t.learner.params)
        t.designer.net.double()
        t.learner.net.double()
        t.learner.params = {k: v.detach().double().requires_grad_(True) for k, v in t.learner.params.items()}
        to64 = lambda b: b.map(lambda x: x.double() if x.is_floating_point() else x)  # noqa: E731
        return t, to64(tau), to64(tau2)

    runs = [run(s) for s in (0, 1)]
    own = []
    for t, tau, tau2 in runs:
        d = t.designer
        assert isinstance(d, MetaGradDesigner)
        rewards, _ = d.agent_rewards(tau)
        theta_hat, _ = inner_update(t.learner, t.learner.params, OptState(), tau, rewards)
        own.append(torch.autograd.grad(d.outer_loss(t.learner, theta_hat, tau2), list(d.net.parameters())))
    designer = MetaGradDesigner.stack_runs([t.designer for t, _, _ in runs])
    learner = StackedLearner([t.learner for t, _, _ in runs])
    batch, validation = stack_batches([r[1] for r in runs]), stack_batches([r[2] for r in runs])
    rewards, _ = designer.agent_rewards(batch)
    theta_hat, _ = inner_update(learner, learner.params, OptState(), batch, rewards)
    logits = learner.logits(theta_hat, validation.obs)
    outer = designer._per_run(lambda x, v: designer.outer_from_logits(x, learner.epsilon, v))(logits, validation)
    stacked = torch.autograd.grad(outer.sum(), designer._params)
    for s, grads in enumerate(own):
        for g_stacked, g in zip(stacked, grads):
            assert g.dtype == torch.float64 and g.abs().max() > 0
            torch.testing.assert_close(g_stacked[s], g, rtol=1e-10, atol=1e-12)
