"""Fixed GTB tax baselines: free market, US federal (with cap annealing) and Saez (method.md §3.3.8)."""

from __future__ import annotations

import numpy as np
import pytest

from incentive_envs import gather_trade_build as gtb_mod
from incentive_envs.economics import US_FEDERAL_2018_RATES
from incentive_envs.gtb import BatchedGTB
from incentive_envs.gtb.tax_models import FreeMarketTax, SaezTax, USFederalTax, annealed_rate_cap

# Reference values from ai-economist 1.7.1's PeriodicBracketTax Saez methods (estimate_uniform_income_elasticity,
# get_binned_saez_welfare_weight_and_pareto_params, get_saez_marginal_rates, bracketize_schedule, clip to [0, 1])
# on the deterministic sample of ``saez_sample`` with a previous elasticity of 0.5.
FOUNDATION_ELASTICITY = 0.4907436946848665
FOUNDATION_RATES = [0.9842995949112843, 0.9454787220818206, 0.8769563416174511, 0.7575779426018997,
                    0.6200234765177305, 0.28688889066423706, 0.43011397781329785]
FOUNDATION_RATES_ELASTICITY_1 = [0.968601793269254, 0.89525299320147, 0.7787962241858155, 0.6081763273583977,
                                 0.4464985825065442, 0.17739659981220243, 0.27027664809150725]


def saez_sample() -> tuple[np.ndarray, np.ndarray]:
    j = np.arange(500)
    income = (j % 50) * 7.3 + (j // 50) * 1.1 - 3.0  # includes negative incomes
    income[::97] = 600.0 + j[::97]  # and some above the top cutoff
    rates = 0.05 + 0.5 * ((j * 37) % 100) / 100
    return income, rates


def play(env, model, seed=0):
    _, infos = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    paid = 0.0
    while env.agents:
        model.before_step(env)
        acts = {a: int((rng.random(50) * infos[a]["action_mask"]).argmax()) for a in env.agents}
        _, _, _, _, infos = env.step(acts)
        model.after_step(infos=infos, done=not env.agents)
        paid += sum(i["tax_paid"] for i in infos.values())
    return paid, infos


def test_free_market_collects_nothing():
    paid, infos = play(gtb_mod.parallel_env(), FreeMarketTax())
    assert paid == 0.0 and infos["agent_0"]["marginal_rates"].tolist() == [0.0] * 7


def test_us_federal_schedule_and_cap_annealing():
    assert USFederalTax().schedule().tolist() == list(US_FEDERAL_2018_RATES)
    model = USFederalTax(anneal_cap=True)
    assert model.cap == pytest.approx(0.1) and model.schedule().tolist() == pytest.approx([0.1] * 7)
    model.completed_episodes = 4000
    assert model.cap == pytest.approx(0.55)
    assert model.schedule().tolist() == pytest.approx([0.1, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37])
    assert annealed_rate_cap(2000) == pytest.approx(0.325) and annealed_rate_cap(8000) == 1.0
    assert annealed_rate_cap(10**6) == 1.0
    model.completed_episodes = 0
    paid, infos = play(gtb_mod.parallel_env(), model)
    assert model.completed_episodes == 1 and paid >= 0
    assert infos["agent_0"]["marginal_rates"].tolist() == pytest.approx([0.1] * 7)
    with pytest.raises(ValueError):
        annealed_rate_cap(-1)


def test_before_step_only_at_period_start():
    env = gtb_mod.parallel_env()
    env.reset(seed=0)
    model = USFederalTax()
    assert model.before_step(env)
    env.step(dict.fromkeys(env.agents, 0))
    assert not model.before_step(env)


def test_saez_matches_foundation_reference():
    model = SaezTax()
    income, rates = saez_sample()
    model.record(income, rates)
    assert model.buffer_full
    assert model.schedule().tolist() == pytest.approx(FOUNDATION_RATES, abs=1e-12)
    assert model.elasticity == pytest.approx(FOUNDATION_ELASTICITY, abs=1e-12)
    fixed = SaezTax(fixed_elasticity=1.0)
    fixed.record(income, rates)
    assert fixed.schedule().tolist() == pytest.approx(FOUNDATION_RATES_ELASTICITY_1, abs=1e-12)


def test_saez_is_random_until_the_buffer_is_full_and_keeps_the_last_samples():
    model = SaezTax(seed=3, cap=0.6)
    a, b = model.schedule(), model.schedule()
    assert not np.array_equal(a, b) and (a >= 0).all() and (a <= 0.6).all()
    assert np.array_equal(SaezTax(seed=3, cap=0.6).schedule(), a)
    income, rates = saez_sample()
    model.record(np.full(100, 5.0), np.full(100, 0.1))
    model.record(income, rates)
    assert len(model.buffer) == 500 and model.buffer[0] == (income[0], rates[0])
    assert (model.schedule() <= 0.6).all()


def test_saez_feeds_from_env_infos_and_batched_results():
    model = SaezTax(seed=0)
    play(gtb_mod.parallel_env(), model)
    assert len(model.buffer) == 40  # 10 enactments x 4 agents
    sim = BatchedGTB(3)
    out = sim.reset(seed=0)
    batch_model = SaezTax(seed=0)
    while not out.done:
        batch_model.before_step(sim)
        out = sim.step(np.zeros((3, 4), dtype=np.int64))
        batch_model.after_step(result=out)
    assert len(batch_model.buffer) == 120 and batch_model.completed_episodes == 1
    with pytest.raises(ValueError, match="exactly one"):
        batch_model.after_step()


def test_saez_validation():
    with pytest.raises(ValueError):
        SaezTax(fixed_elasticity=-1.0)
    with pytest.raises(ValueError):
        SaezTax(pareto_weights="log")
    with pytest.raises(ValueError):
        SaezTax(cap=1.5)
    with pytest.raises(ValueError):
        SaezTax().record([1.0, 2.0], [0.1])
