"""The meta-gradient is right: finite differences, gradcheck, autograd reference, real == modelled update."""

from __future__ import annotations

import pytest
import torch

from designer import DesignerConfig, LearnerConfig, TrainConfig, Trainer, inner_update
from designer.algorithms import MetaGradDesigner
from designer.batch import Batch, discounted_returns, gae
from designer.learners import AgentLearner, OptState, detach_params


@pytest.fixture(scope="module")
def er_batches() -> tuple[Trainer, Batch, Batch]:
    """A small ER(3,2) trainer and two logged batches (training tau, validation tau') in float64."""
    cfg = TrainConfig(task="escape_room", task_kwargs={"n_agents": 3, "min_at_lever": 2}, episodes=10,
                      batch_episodes=4, seed=3)
    learner = LearnerConfig(hidden=(8,), lr=0.05)
    designer = DesignerConfig(hidden=(8,))
    trainer = Trainer(cfg, designer=designer, learner=learner)
    tau, _ = trainer.collect(trainer.learner.params)
    tau2, _ = trainer.collect(trainer.learner.params)
    return trainer, _to64(tau), _to64(tau2)


def _to64(batch: Batch) -> Batch:
    items = batch.to_dict().items()
    changes = {k: v.double() for k, v in items if isinstance(v, torch.Tensor) and v.is_floating_point()}
    return batch.with_(**changes)


def _objective(trainer: Trainer, tau: Batch, tau2: Batch):
    """L_outer(eta) as a function of a flat designer-parameter vector (float64, fixed trajectories)."""
    designer = trainer.designer
    assert isinstance(designer, MetaGradDesigner)
    net = designer.net.double()
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    learner = trainer.learner
    learner.net.double()
    theta = {k: v.detach().double().requires_grad_(True) for k, v in learner.params.items()}

    def unflatten(vec: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(torch.tensor(s).prod())
            out[n] = vec[i : i + k].reshape(s)
            i += k
        return out

    def objective(vec: torch.Tensor) -> torch.Tensor:
        params = unflatten(vec)
        out = torch.func.functional_call(net, params, (tau.features,))
        pay = designer.config.scale * out.gather(-1, tau.slots) * tau.mask
        theta_hat, _ = inner_update(learner, theta, OptState(), tau, tau.env_rewards + pay)
        return designer.outer_loss(learner, theta_hat, tau2)

    flat = torch.cat([p.detach().reshape(-1) for _, p in net.named_parameters()]).double()
    return objective, flat


def test_meta_gradient_matches_central_finite_differences(er_batches):
    """d L_outer / d eta through one REINFORCE step equals central differences (float64, fixed tau, tau')."""
    trainer, tau, tau2 = er_batches
    objective, flat = _objective(trainer, tau, tau2)
    x = flat.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(objective(x), x)
    assert g.abs().max() > 1e-6, "meta-gradient is identically zero"
    h = 1e-6
    idx = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(0))[:25]
    for i in idx:
        e = torch.zeros_like(flat)
        e[i] = h
        fd = (objective(flat + e) - objective(flat - e)) / (2 * h)
        assert torch.allclose(g[i], fd, rtol=1e-5, atol=1e-8), (int(i), float(g[i]), float(fd))


def test_gradcheck_and_gradgradcheck(er_batches):
    """torch.autograd.gradcheck passes on the outer objective in float64."""
    trainer, tau, tau2 = er_batches
    objective, flat = _objective(trainer, tau, tau2)
    x = flat.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(objective, (x,), eps=1e-6, atol=1e-6)


def test_torch_func_matches_autograd_create_graph_reference(er_batches):
    """Our torch.func inner step gives the same meta-gradient as a plain autograd(create_graph=True) replica."""
    trainer, tau, tau2 = er_batches
    objective, flat = _objective(trainer, tau, tau2)
    designer = trainer.designer
    learner = trainer.learner
    x = flat.clone().requires_grad_(True)
    (g_func,) = torch.autograd.grad(objective(x), x)

    net = designer.net
    names = [n for n, _ in net.named_parameters()]
    params, i = {}, 0
    x2 = flat.clone().requires_grad_(True)
    for n, p in net.named_parameters():
        params[n] = x2[i : i + p.numel()].reshape(p.shape)
        i += p.numel()
    assert list(params) == names
    theta = {k: v.detach().double().requires_grad_(True) for k, v in learner.params.items()}
    pay = designer.config.scale * torch.func.functional_call(net, params, (tau.features,)).gather(-1, tau.slots)
    loss = learner.loss(theta, tau, tau.env_rewards + pay * tau.mask, None)
    grads = torch.autograd.grad(loss, list(theta.values()), create_graph=True)
    theta_hat = {k: p - learner.config.lr * g for (k, p), g in zip(theta.items(), grads)}
    (g_ref,) = torch.autograd.grad(designer.outer_loss(learner, theta_hat, tau2), x2)
    torch.testing.assert_close(g_func, g_ref, rtol=1e-10, atol=1e-12)


def test_real_update_equals_detached_differentiable_update(er_batches):
    """The committed update is exactly the modelled one when the incentives are the same."""
    trainer, tau, _ = er_batches
    learner = trainer.learner
    theta = {k: v.detach().double().requires_grad_(True) for k, v in learner.params.items()}
    eta_pay = torch.rand_like(tau.env_rewards, requires_grad=True)
    hat, _ = inner_update(learner, theta, OptState(), tau, tau.env_rewards + eta_pay)
    real, _ = inner_update(learner, theta, OptState(), tau, (tau.env_rewards + eta_pay).detach())
    for k in theta:
        torch.testing.assert_close(hat[k].detach(), real[k].detach(), rtol=0, atol=0)
    total_hat = sum(v.sum() for v in hat.values())
    total_real = sum(v.sum() for v in real.values())
    assert torch.autograd.grad(total_hat, eta_pay, retain_graph=True)[0].abs().sum() > 0
    assert torch.autograd.grad(total_real, eta_pay, allow_unused=True)[0] is None


def test_in_place_inner_update_is_caught(monkeypatch):
    """An in-place/detached inner update (which silently gives a None meta-gradient) raises a clear error."""
    import designer.algorithms.metagrad as algorithms

    cfg = TrainConfig(task="escape_room", task_kwargs={"n_agents": 2, "min_at_lever": 1}, episodes=5, seed=0)
    t = Trainer(cfg)

    def detached_update(learner, params, opt_state, batch, rewards, values=None):
        new, state = inner_update(learner, params, opt_state, batch, rewards.detach(), values)
        return detach_params(new), state

    monkeypatch.setattr(algorithms, "inner_update", detached_update)
    with pytest.raises(RuntimeError, match="meta-gradient is None"):
        t.train()


def test_adam_replica_matches_formula_and_is_differentiable():
    """The Adam step: first step equals lr*sign(g) (bias-corrected), second moment carries no gradient."""
    cfg = LearnerConfig(optimizer="adam", lr=0.1, hidden=(4,))
    learner = AgentLearner(cfg, 2, (6,), 3, torch.Generator().manual_seed(0))
    t = Trainer(TrainConfig(task="escape_room", task_kwargs={"n_agents": 2, "min_at_lever": 1}, episodes=3,
                            seed=1), learner=cfg)
    batch, _ = t.collect(t.learner.params)
    scale = torch.tensor(1.0, requires_grad=True)
    new, state = inner_update(learner, learner.params, OptState(), batch, batch.env_rewards * scale + 1.0 * scale)
    grads = torch.func.grad(lambda p: learner.loss(p, batch, batch.env_rewards + 1.0, None))(learner.params)
    for k, p in learner.params.items():
        g = grads[k]
        expected = p - 0.1 * torch.sqrt(torch.tensor(1 - 0.999)) / (1 - 0.9) * (0.1 * g) / (
            torch.sqrt(0.001 * g**2) + cfg.adam_eps)
        torch.testing.assert_close(new[k].detach(), expected.detach(), rtol=1e-5, atol=1e-6)
        assert state.exp_avg_sq[k].grad_fn is None
    (d,) = torch.autograd.grad(sum(v.sum() for v in new.values()), scale)
    assert torch.isfinite(d)
    assert state.step == 1


def test_returns_and_gae_against_loops():
    """The matrix forms of discounted returns and GAE equal the textbook backward loops."""
    g = torch.Generator().manual_seed(0)
    r = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    v = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    v_next = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    mask = torch.ones(3, 7, dtype=torch.float64)
    mask[1, 5:] = 0
    ret = discounted_returns(r, mask, 0.9)
    adv = gae(r, v, v_next, mask, 0.9, 0.8)
    for b in range(3):
        n = int(mask[b].sum())
        acc = torch.zeros(2, dtype=torch.float64)
        acc_a = torch.zeros(2, dtype=torch.float64)
        for t in reversed(range(n)):
            acc = r[b, t] + 0.9 * acc
            acc_a = (r[b, t] + 0.9 * v_next[b, t] - v[b, t]) + 0.9 * 0.8 * acc_a
            torch.testing.assert_close(ret[b, t], acc)
            torch.testing.assert_close(adv[b, t], acc_a)


def test_non_finite_meta_gradient_raises_before_any_update():
    """A NaN in the designer's gradient raises FloatingPointError and leaves the designer unchanged."""
    t = Trainer(TrainConfig(task="escape_room", task_kwargs={"n_agents": 2, "min_at_lever": 1}, episodes=3, seed=0))
    designer = t.designer
    assert isinstance(designer, MetaGradDesigner)
    before = [p.detach().clone() for p in designer.net.parameters()]
    batch, _ = t.collect(t.learner.params)
    bad = batch.with_(env_rewards=batch.env_rewards * float("nan"))
    with pytest.raises(FloatingPointError):
        designer.iterate(t.learner, t.collect, bad)
    for p, q in zip(designer.net.parameters(), before):
        assert torch.equal(p.detach(), q)



def test_meta_gradient_on_closed_form_prisoners_dilemma_matches_finite_differences():
    """Exact expectations, no sampling: the four joint actions of the one-shot PD form a batch whose returns are
    weighted by their (detached) probabilities, so our REINFORCE ``inner_update`` takes the exact expected
    policy-gradient step; the outer objective is the exact expected welfare after the step. Its gradient in
    the per-action incentive table equals central finite differences (float64)."""
    torch.set_default_dtype(torch.float64)
    try:
        cfg = LearnerConfig(hidden=(), lr=0.7, entropy_coef=0.0, linear_init_std=0.3)
        learner = AgentLearner(cfg, 2, (1,), 2, torch.Generator().manual_seed(0))
        theta = {k: v.detach().requires_grad_(True) for k, v in learner.params.items()}
        payoff = torch.tensor([[[3.0, 3.0], [0.0, 5.0]], [[5.0, 0.0], [1.0, 1.0]]])  # [a0][a1] -> (r0, r1)
        joint = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
        obs = torch.ones(4, 1, 2, 1)

        def probs(params):
            logits = learner.logits(params, obs[:, 0])  # [4, 2 agents, 2 actions]
            return torch.softmax(logits, -1)

        def welfare(params):
            p = probs(params)[0]  # the same observation for every episode
            return sum(p[0, a0] * p[1, a1] * payoff[a0, a1].sum() for a0 in range(2) for a1 in range(2))

        def objective(table: torch.Tensor) -> torch.Tensor:
            p = probs(theta)[0].detach()
            weight = torch.stack([p[0, a0] * p[1, a1] for a0, a1 in joint.tolist()])
            env_r = torch.stack([payoff[a0, a1] for a0, a1 in joint.tolist()])  # [4, 2]
            total = env_r + table[joint]  # the designer pays table[action] to each agent
            ones = torch.ones(4, 1)
            batch = Batch(
                obs=obs, next_obs=obs, actions=joint[:, None, :], env_rewards=env_r[:, None, :], paid=total[:, None, :],
                mask=torch.ones(4, 1, 2), step_mask=ones, terminated=ones, features=torch.zeros(4, 1, 0),
                slots=joint[:, None, :], designer_reward=env_r.sum(-1, keepdim=True), state=torch.zeros(4, 1, 0),
                next_state=torch.zeros(4, 1, 0), logp=torch.zeros(4, 1, 2),
            )
            # REINFORCE averages over the 4 "episodes": scaling by 4 * weight gives the exact expectation
            new, _ = inner_update(learner, theta, OptState(), batch, (4 * weight)[:, None, None] * total[:, None, :])
            return welfare(new)

        table = torch.tensor([0.4, -0.2], requires_grad=True)
        (g,) = torch.autograd.grad(objective(table), table)
        for i in range(2):
            e = torch.zeros(2)
            e[i] = 1e-6
            fd = (objective(table.detach() + e) - objective(table.detach() - e)) / 2e-6
            assert torch.allclose(g[i], fd, rtol=1e-6, atol=1e-9), (i, float(g[i]), float(fd))
        assert g[0] > 0  # paying more for cooperation raises the welfare after the agents' step
    finally:
        torch.set_default_dtype(torch.float32)
