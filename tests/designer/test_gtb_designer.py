"""Gather-Trade-Build tax designers: the rate control point, the exact reward rebuild, the meta-gradient through
the Adam replica, the dual-RL planner's masks, fixed tax models, determinism and resume."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test

from designer import TrainConfig, Trainer, inner_update
from designer.batch import Batch
from designer.learners import OptState
from designer.tasks import make_task
from designer.tasks.gather_trade_build import (
    StepFeatures,
    TaxDualRLDesigner,
    TaxMetaGradDesigner,
    TaxModelDesigner,
    rebuild_rewards,
    schedule_of,
    tax_report,
)
from incentive_envs.economics import US_FEDERAL_2018_RATES, bracket_tax, isoelastic_utility
from incentive_envs.escape_room import parallel_env as escape_room
from incentive_envs.gather_trade_build import parallel_env
from incentive_envs.gtb import FreeMarketTax, GTBConfig, GTBSchema, SaezTax, USFederalTax
from wrappers.tax_rates import RATES_INFO_KEY, TaxRatesWrapper

SHORT = {"max_cycles": 30}  # three tax periods


def _noop(env) -> dict[str, int]:
    return dict.fromkeys(env.agents, 0)


def _trainer(algorithm: str = "metagrad", seed: int = 0, episodes: int = 4, small: bool = False, **task_kwargs):
    kwargs = {**SHORT, **task_kwargs}
    task = make_task("gather_trade_build", **kwargs)
    designer = replace(task.designer, algorithm=algorithm)
    learner = task.learner
    if small:
        designer = replace(designer, hidden=(8,), critic_hidden=(8,), dual_hidden=(8,))
        learner = replace(learner, hidden=(8,), critic_hidden=(8,))
    cfg = TrainConfig(task="gather_trade_build", task_kwargs=kwargs, episodes=episodes, seed=seed, eval_episodes=2,
                      eval_period=1000)
    return Trainer(cfg, designer=designer, learner=learner)


def _to64(batch: Batch) -> Batch:
    items = batch.to_dict().items()
    return batch.with_(**{k: v.double() for k, v in items if isinstance(v, torch.Tensor) and v.is_floating_point()})


# ------------------------------------------------------------------------------------------------ control point
class _Recorder:
    """A rates_fn that returns fixed rates and remembers what it was shown."""

    def __init__(self, rates) -> None:
        self.rates = rates
        self.seen: list[np.ndarray] = []

    def __call__(self, obs):
        self.seen.append(np.array(obs))
        return self.rates


def test_rates_are_set_at_each_period_start_from_the_planner_state_and_are_in_force():
    base = parallel_env(**SHORT)
    rates = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    fn = _Recorder(rates)
    env = TaxRatesWrapper(base, fn)
    env.reset(seed=3)
    states, set_flags, in_force = [], [], []
    while env.agents:
        states.append(base.state().copy())
        _, _, _, _, infos = env.step(_noop(env))
        info = infos["agent_0"]
        set_flags.append(info[RATES_INFO_KEY] is not None)
        in_force.append(np.asarray(info["marginal_rates"]))
    assert [i for i, s in enumerate(set_flags) if s] == [0, 10, 20]
    assert [s for s, _ in env.episode_schedule] == [0, 10, 20]
    assert len(fn.seen) == 3
    for k, seen in enumerate(fn.seen):
        np.testing.assert_array_equal(seen, states[10 * k])  # the state before the period's first step
    np.testing.assert_array_equal(np.stack(in_force), np.tile(rates, (30, 1)))
    assert env.rates == tuple(rates)


@pytest.mark.parametrize(
    ("rates", "error"),
    [([0.1] * 6, ValueError), ([0.1] * 6 + [1.5], ValueError), ([0.1] * 6 + [-0.1], ValueError),
     ([0.1] * 6 + [math.nan], FloatingPointError), ([0.1] * 6 + [math.inf], FloatingPointError),
     ([[0.1] * 7], ValueError)],
)
def test_bad_rates_raise_clear_errors(rates, error):
    env = TaxRatesWrapper(parallel_env(**SHORT), lambda obs: rates)
    env.reset(seed=0)
    with pytest.raises(error):
        env.step(_noop(env))


def test_wrapper_checks_its_inputs():
    with pytest.raises(TypeError, match="tax interface"):
        TaxRatesWrapper(escape_room(), lambda obs: [0.0])
    with pytest.raises(TypeError, match="callable"):
        TaxRatesWrapper(parallel_env(**SHORT), [0.1] * 7)
    env = TaxRatesWrapper(parallel_env(**SHORT), FreeMarketTax())
    with pytest.raises(RuntimeError, match="reset"):
        env.step({a: 0 for a in env.possible_agents})


def test_wrapped_env_passes_the_parallel_api_test_without_warnings():
    env = TaxRatesWrapper(parallel_env(**SHORT), USFederalTax())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=40)
    assert not caught, [str(w.message) for w in caught]


def test_fixed_tax_models_plug_into_the_wrapper():
    """US federal rates come into force; Saez learns from every enactment (4 samples each) through after_step."""
    us = TaxRatesWrapper(parallel_env(**SHORT), USFederalTax())
    us.reset(seed=0)
    _, _, _, _, infos = us.step(_noop(us))
    np.testing.assert_allclose(infos["agent_0"]["marginal_rates"], US_FEDERAL_2018_RATES)
    saez = SaezTax(buffer_size=1000, seed=0)
    env = TaxRatesWrapper(parallel_env(**SHORT), saez)
    env.reset(seed=0)
    while env.agents:
        env.step(_noop(env))
    assert len(saez.buffer) == 3 * 4 and saez.completed_episodes == 1
    capped = TaxRatesWrapper(parallel_env(**SHORT), USFederalTax(anneal_cap=True, initial_cap=0.1))
    capped.reset(seed=0)
    _, _, _, _, infos = capped.step(_noop(capped))
    assert max(infos["agent_0"]["marginal_rates"]) == pytest.approx(0.1)


# ------------------------------------------------------------------------------------- exact reward rebuild
@pytest.fixture(scope="module")
def metagrad_run() -> tuple[Trainer, Batch]:
    trainer = _trainer("metagrad", seed=1)
    batch, _ = trainer.collect(trainer.learner.params)
    return trainer, batch


def test_rebuilt_rewards_equal_the_env_rewards_on_a_real_trajectory(metagrad_run):
    """The designer's arithmetic equals the env's: with the rates actually used, and with the network's rates on
    the held period-start observations, the rebuilt rewards are the env's rewards (float32 precision)."""
    trainer, batch = metagrad_run
    designer = trainer.designer
    assert isinstance(designer, TaxMetaGradDesigner)
    f = designer.step_features.split(batch.features)
    enacted = f["enacted"] > 0
    assert int(enacted.sum()) == 3 and float(f["tax_paid"].sum()) > 0.1, "the trajectory must actually tax"
    logged, transfer = rebuild_rewards(batch, f["rates"], designer.schema)
    torch.testing.assert_close(logged, batch.env_rewards, rtol=0, atol=2e-5)
    torch.testing.assert_close(transfer[enacted], (f["lump_sum"] - f["tax_paid"])[enacted], rtol=0, atol=2e-5)
    rewards, _ = designer.agent_rewards(batch)
    assert rewards.requires_grad
    torch.testing.assert_close(rewards.detach(), batch.env_rewards, rtol=0, atol=2e-5)
    torch.testing.assert_close(designer.rates(batch)[enacted].detach(), f["rates"][enacted], rtol=0, atol=1e-6)


def test_rebuild_collects_at_most_the_inventory_coin(metagrad_run):
    """With a tax due far above what an agent holds, it pays exactly its inventory coin (escrow is never taxed),
    and everyone receives the mean of what was paid."""
    trainer, batch = metagrad_run
    layout = trainer.designer.schema
    split = StepFeatures(layout).split
    features = batch.features.clone()
    f = split(features)
    t = int(torch.nonzero(f["enacted"][0] > 0)[0])
    f["income"][0, t, 0] = 1000.0  # a view: edits ``features``
    rates = torch.ones(*batch.step_mask.shape, layout.n_brackets)
    rewards, transfer = rebuild_rewards(batch.with_(features=features), rates, layout)
    g = split(features)
    cfg = layout.config
    escrow = np.round(batch.next_state[0, t, list(layout.escrow_index)].double().numpy() / cfg.obs_scale)
    pre = g["coin_pre_tax"][0, t].double().numpy()
    due = bracket_tax(g["income"][0, t].double().numpy(), np.ones(7))
    paid = np.minimum(pre - escrow, due)
    assert paid[0] == pytest.approx(pre[0] - escrow[0]) and due[0] > paid[0]
    coin = pre - paid + paid.mean()
    expected = isoelastic_utility(coin, g["labour"][0, t].double().numpy()) - g["u_prev"][0, t].double().numpy()
    np.testing.assert_allclose(rewards[0, t].double().numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(transfer[0, t].double().numpy(), paid.mean() - paid, atol=1e-4)


def test_meta_gradient_through_the_adam_replica_matches_finite_differences():
    """d L_outer / d eta through the PPO agents' Adam-step replica (second moment held at its value, as the
    paper's stop-gradient) equals central differences in float64 on a fixed trajectory pair."""
    trainer = _trainer("metagrad", seed=2, small=True, max_cycles=20)
    tau, _ = trainer.collect(trainer.learner.params)
    tau2, _ = trainer.collect(trainer.learner.params)
    tau, tau2 = _to64(tau), _to64(tau2)
    designer, learner = trainer.designer, trainer.learner
    assert isinstance(designer, TaxMetaGradDesigner)
    for module in (designer.net, designer.critic, designer.critic_target, learner.net, learner.critic,
                   learner.critic_target):
        module.double()
    theta = {k: v.detach().double().requires_grad_(True) for k, v in learner.params.items()}
    gen = torch.Generator().manual_seed(0)
    opt = OptState({k: 1e-3 * torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in theta.items()},
                   {k: 1e-6 * torch.rand(v.shape, generator=gen, dtype=torch.float64) for k, v in theta.items()}, 3)
    values = learner.values(tau)
    rewards, _ = designer.agent_rewards(tau)
    theta_hat, _ = inner_update(learner, theta, opt, tau, rewards, values)
    params = list(designer.net.parameters())
    grads = torch.autograd.grad(designer.outer_loss(learner, theta_hat, tau2), params)
    # the replica with v frozen at the base point, as a plain function of eta for finite differences
    cfg = learner.config
    b1, b2 = cfg.adam_betas
    g0 = torch.func.grad(lambda p: learner.loss(p, tau, rewards.detach(), values))(theta)
    v0 = {k: b2 * opt.exp_avg_sq[k] + (1 - b2) * g0[k] ** 2 for k in theta}
    scale = cfg.lr * math.sqrt(1 - b2**4) / (1 - b1**4)

    def objective() -> float:
        with torch.no_grad():
            r, _ = designer.agent_rewards(tau)
        g = torch.func.grad(lambda p: learner.loss(p, tau, r, values))(theta)
        new = {k: theta[k] - scale * (b1 * opt.exp_avg[k] + (1 - b1) * g[k]) / (v0[k].sqrt() + cfg.adam_eps)
               for k in theta}
        return float(designer.outer_loss(learner, new, tau2).detach())

    flat_grad = torch.cat([g.reshape(-1) for g in grads])
    assert flat_grad.abs().max() > 1e-9, "meta-gradient is identically zero"
    picks = [(len(params) - 1, j) for j in range(4)] + [(0, 0), (2, 5), (4, 1)]  # output layer and earlier layers
    h = 1e-4  # the loss is O(10) and its gradient O(1e-7): smaller steps drown in float64 round-off
    for pi, j in picks:
        p = params[pi].data.view(-1)
        old = float(p[j])
        p[j] = old + h
        up = objective()
        p[j] = old - h
        down = objective()
        p[j] = old
        fd = (up - down) / (2 * h)
        analytic = float(grads[pi].reshape(-1)[j])
        assert analytic == pytest.approx(fd, rel=1e-4, abs=1e-9), (pi, j, analytic, fd)


# ------------------------------------------------------------------------------------------------- dual-RL
def test_dual_rl_planner_respects_the_cap_and_mixes_only_over_allowed_levels():
    trainer = _trainer("dual_rl", seed=0, small=True)
    planner = trainer.designer
    assert isinstance(planner, TaxDualRLDesigner)
    state = torch.as_tensor(_state(), dtype=torch.float32)
    probs = planner.probs(state, 1.0, 0.1)  # pure exploration
    allowed = torch.zeros(22)
    allowed[[0, 1, 2, 3]] = 1  # keep, 0.0, 0.05, 0.1
    torch.testing.assert_close(probs, (allowed / 4).expand(7, 22))
    mixed = planner.probs(state, 0.3, 0.1)
    assert torch.all(mixed[:, 4:] == 0) and torch.allclose(mixed.sum(-1), torch.ones(7))
    batch, _ = trainer.collect(trainer.learner.params)
    rates = schedule_of(batch, planner.schema)
    assert rates.shape == (3, 7) and rates.max() <= planner.cap + 1e-7  # logged in float32
    np.testing.assert_allclose(rates / 0.05, np.round(rates / 0.05), atol=1e-6)  # on the grid
    before = [p.detach().clone() for p in planner.policy.parameters()]
    metrics = planner.update(batch)
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0 < metrics["planner_entropy"] <= math.log(4) + 1e-6  # computed, over the allowed levels only
    assert any(not torch.equal(a, b) for a, b in zip(before, planner.policy.parameters()))
    assert planner.completed_episodes == 1


def test_dual_rl_planner_exploration_anneals_over_the_task_setting():
    planner = _trainer("dual_rl", small=True, planner_epsilon_iters=4).designer
    assert isinstance(planner, TaxDualRLDesigner)
    assert planner.epsilon == pytest.approx(0.5)
    planner.iteration = 2
    assert planner.epsilon == pytest.approx(0.275)
    planner.iteration = 10
    assert planner.epsilon == pytest.approx(0.05)


def _state() -> np.ndarray:
    env = parallel_env(**SHORT)
    env.reset(seed=0)
    return env.state()


def test_dual_rl_outcome_probability_adds_keep_when_the_rate_does_not_change():
    """The planner's log-probability is that of the resulting rate: keep + "set the current level"."""
    trainer = _trainer("dual_rl", seed=0, small=True)
    planner = trainer.designer
    batch, _ = trainer.collect(trainer.learner.params)
    state = batch.state[0, 0]
    probs = planner.probs(state, float(batch.features[0, 0, -2]), float(batch.features[0, 0, -1]))
    new = planner.level_of(StepFeatures(planner.schema).split(batch.features[..., :-2])["rates"][0, 0])
    old = planner.level_of(state[list(planner.schema.rate_index)])
    expected = probs.gather(-1, new[:, None]).squeeze(-1) + (new == old) * probs[:, 0]
    assert torch.all(expected > 0)
    assert torch.all((new == old) == (new == 1))  # rates start at 0 (level 1)


# ------------------------------------------------------------------------------ designers, determinism, resume
def test_algorithms_map_to_tax_designers():
    assert isinstance(_trainer("metagrad", small=True).designer, TaxMetaGradDesigner)
    assert isinstance(_trainer("dual_rl", small=True).designer, TaxDualRLDesigner)
    saez = _trainer("none", small=True, tax_model="saez").designer
    assert isinstance(saez, TaxModelDesigner) and isinstance(saez.model, SaezTax)
    free = _trainer("none", small=True).designer
    assert isinstance(free, TaxModelDesigner) and isinstance(free.model, FreeMarketTax)
    with pytest.raises(ValueError, match="not a designer of task"):
        _trainer("amd", small=True)
    with pytest.raises(ValueError, match="tax_model"):
        make_task("gather_trade_build", tax_model="flat")


def test_same_seed_same_trajectories_and_evaluation_leaves_training_rngs_alone():
    a, b = _trainer("dual_rl", seed=5, small=True), _trainer("dual_rl", seed=5, small=True)
    a.evaluate(2)  # must not touch the planner's training generator
    ba, _ = a.collect(a.learner.params)
    bb, _ = b.collect(b.learner.params)
    for k, v in ba.to_dict().items():
        if v is not None:
            assert torch.equal(v, bb.to_dict()[k]), k


@pytest.mark.parametrize(("algorithm", "kwargs"), [("dual_rl", {}), ("none", {"tax_model": "saez"}),
                                                   ("metagrad", {})])
def test_resume_continues_exactly(tmp_path, algorithm, kwargs):
    full = _trainer(algorithm, seed=4, small=True, episodes=4, **kwargs)
    full.train()
    part = _trainer(algorithm, seed=4, small=True, episodes=2, **kwargs)
    part.train()
    part.save(tmp_path / "ck.pt")
    resumed = Trainer.resume(tmp_path / "ck.pt", episodes=4)
    resumed.train()
    assert full.progress.history[-1] == resumed.progress.history[-1]
    for k, v in full.learner.params.items():
        assert torch.equal(v, resumed.learner.params[k]), k


def test_tax_report_orders_agents_by_skill_and_balances_the_budget(metagrad_run):
    trainer, batch = metagrad_run
    report = tax_report(batch, trainer.designer.schema)
    assert report["rates"].shape == (1, 3, 7)
    assert report["tax_by_skill"].sum() == pytest.approx(report["lump_sum_by_skill"].sum(), rel=1e-5)
    eq_prod = report["productivity"] * report["equality"]
    np.testing.assert_allclose(report["equality_times_productivity"], eq_prod, rtol=1e-6)
    layout = GTBSchema.of(GTBConfig(), "env-pure_and_mixed-15x15")
    payments = batch.state[0, 0, list(layout.payment_index)].numpy()
    coin = StepFeatures(layout).split(batch.features)["coin"][0, -1].numpy()
    np.testing.assert_allclose(report["coin_by_skill"], coin[np.argsort(payments)], rtol=1e-6)
