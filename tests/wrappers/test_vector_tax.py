"""BatchedTaxRatesWrapper (#14): B copies set, reward and report what B single TaxRatesWrappers do, step by step.

The reference is B single :class:`TaxRatesWrapper` s over Gather-Trade-Build seeded ``s, s + 1, ...`` and stepped
one after the other with the same actions (so a tax model shared by them is called in batch order); the batch is
the native ``BatchedGTBEnv`` seeded ``s``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from incentive_envs.escape_room import batched_env as escape_room_batch
from incentive_envs.gather_trade_build import batched_env, parallel_env
from incentive_envs.gtb import FreeMarketTax, GTBConfig, SaezTax, USFederalTax
from wrappers import BatchedTaxRatesWrapper, PerCopyRates, TaxRatesWrapper
from wrappers.tax_rates import RATES_INFO_KEY
from wrappers.vector_tax import check_batched_rates

B = 3
PERIOD = 5
SHORT = {"max_cycles": 25, "config": GTBConfig(tax_period=PERIOD)}  # five tax periods
SEED = 11


class _NetRates:
    """A network-driven rates function: sigmoid of a fixed linear map of the state, for one state or a batch."""

    def __init__(self, state_size: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.weight = torch.randn(state_size, 7, generator=gen, dtype=torch.float64) * 0.01

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return torch.sigmoid(torch.as_tensor(state, dtype=torch.float64) @ self.weight).numpy()


def _actions(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """One allowed action per agent of every copy ``[B, N]`` from the action masks ``[B, N, A]``."""
    return np.array([[rng.choice(np.flatnonzero(m)) for m in row] for row in masks])


def _run_both(make_fn: Callable[[], Any], per_copy: bool = False) -> tuple[Any, Any]:
    """Step B single wrappers and one batched wrapper with the same actions and compare everything; returns the
    rates functions of both (to compare their state)."""
    fn_single, fn_batched = make_fn(), make_fn()
    singles = [TaxRatesWrapper(parallel_env(**SHORT), fn_single[b] if per_copy else fn_single) for b in range(B)]
    batch = BatchedTaxRatesWrapper(batched_env(B, **SHORT), PerCopyRates(fn_batched))
    agents = singles[0].possible_agents
    outs = [env.reset(seed=SEED + b) for b, env in enumerate(singles)]
    obs, infos = batch.reset(seed=SEED)
    assert np.isnan(infos[RATES_INFO_KEY]).all() and infos[RATES_INFO_KEY].shape == (B, len(agents), 7)
    assert all(i[RATES_INFO_KEY] is None for _, inf in outs for i in inf.values())
    rng = np.random.default_rng(0)
    masks = infos["action_mask"]
    step = 0
    while singles[0].agents:
        acts = _actions(rng, masks)
        results = [env.step(dict(zip(agents, map(int, acts[b])))) for b, env in enumerate(singles)]
        obs, rewards, terms, truncs, infos = batch.step(acts)
        assert not terms.any()
        for b, (s_obs, s_rew, _, s_trunc, s_inf) in enumerate(results):
            for i, a in enumerate(agents):
                np.testing.assert_allclose(obs[b, i], s_obs[a], rtol=1e-12, atol=1e-12)
                assert rewards[b, i] == pytest.approx(s_rew[a], rel=1e-12, abs=1e-12)
                assert truncs[b, i] == s_trunc[a]
                set_single = s_inf[a][RATES_INFO_KEY]
                if set_single is None:
                    assert np.isnan(infos[RATES_INFO_KEY][b, i]).all(), step
                else:
                    np.testing.assert_allclose(infos[RATES_INFO_KEY][b, i], set_single, rtol=1e-12)
                np.testing.assert_allclose(infos["marginal_rates"][b, i], s_inf[a]["marginal_rates"], rtol=1e-12)
        masks = infos["action_mask"]
        step += 1
    assert batch.done.all() and step == SHORT["max_cycles"]
    for b, env in enumerate(singles):
        assert [s for s, _ in batch.episode_schedule[b]] == [s for s, _ in env.episode_schedule] == [0, 5, 10, 15, 20]
        for (_, r_batch), (_, r_single) in zip(batch.episode_schedule[b], env.episode_schedule):
            np.testing.assert_allclose(r_batch, r_single, rtol=1e-12)
    return fn_single, fn_batched


@pytest.mark.parametrize("model", [FreeMarketTax, USFederalTax, lambda: USFederalTax(anneal_cap=True)])
def test_fixed_models_equal_single_wrappers(model):
    single, batched = _run_both(model)
    assert single.completed_episodes == batched.completed_episodes == B


def test_saez_shared_by_the_copies_learns_as_with_single_wrappers_in_batch_order():
    """The Saez buffer fills mid-episode, so later periods use the computed (not the random) schedule."""
    single, batched = _run_both(lambda: SaezTax(buffer_size=24, seed=3))
    assert single.buffer_full and list(single.buffer) == list(batched.buffer)
    assert single.elasticity == batched.elasticity and single.completed_episodes == batched.completed_episodes == B


def test_one_saez_per_copy_equals_one_per_single_wrapper():
    single, batched = _run_both(lambda: [SaezTax(buffer_size=24, seed=3) for _ in range(B)], per_copy=True)
    for s, t in zip(single, batched):
        assert list(s.buffer) == list(t.buffer) and s.completed_episodes == t.completed_episodes == 1


def test_network_driven_rates_are_one_batched_call_per_period_start():
    """A batched rates_fn sees the ``[B, S]`` states before each period's first step, once per period."""
    state_size = parallel_env(**SHORT).state_space.shape[0]
    net = _NetRates(state_size)
    seen: list[np.ndarray] = []

    def batched(states: np.ndarray) -> np.ndarray:
        seen.append(states.copy())
        return net(states)

    singles = [TaxRatesWrapper(parallel_env(**SHORT), net) for _ in range(B)]
    batch = BatchedTaxRatesWrapper(batched_env(B, **SHORT), batched)
    for b, env in enumerate(singles):
        env.reset(seed=SEED + b)
    _, infos = batch.reset(seed=SEED)
    agents, rng = singles[0].possible_agents, np.random.default_rng(1)
    states = []
    while not batch.done.all():
        states.append(batch.state().copy())
        acts = _actions(rng, infos["action_mask"])
        singles_out = [env.step(dict(zip(agents, map(int, acts[b])))) for b, env in enumerate(singles)]
        _, rewards, _, _, infos = batch.step(acts)
        for b, out in enumerate(singles_out):
            np.testing.assert_allclose(rewards[b], [out[1][a] for a in agents], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(infos["marginal_rates"][b, 0], out[4][agents[0]]["marginal_rates"], rtol=1e-12)
    assert len(seen) == 5
    for k, s in enumerate(seen):
        np.testing.assert_array_equal(s, states[5 * k])
    np.testing.assert_allclose(batch.rates, net(states[20]), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ bad input
def _first_step(rates: Any) -> None:
    env = BatchedTaxRatesWrapper(batched_env(B, **SHORT), lambda states: rates)
    env.reset(seed=0)
    env.step(np.zeros((B, env.n_agents), dtype=np.int64))


GOOD = [[0.1] * 7] * B


@pytest.mark.parametrize(
    ("rates", "error", "match"),
    [
        ([[0.1] * 7] * (B - 1), ValueError, r"\[B, K\] = \(3, 7\); got shape \(2, 7\)"),
        ([[0.1] * 6] * B, ValueError, r"got shape \(3, 6\)"),
        ([0.1] * 7, ValueError, r"got shape \(7,\)"),
        ([*GOOD[:2], [0.1] * 6 + [1.5]], ValueError, r"batch index 2, bracket 6 \(rate 1.5\).*\[0.0, 1.0\]"),
        ([GOOD[0], [0.1, -0.2, *[0.1] * 5], GOOD[0]], ValueError, "batch index 1, bracket 1"),
        ([GOOD[0], [0.1, 0.2, math.nan, *[0.1] * 4], GOOD[0]], FloatingPointError, "batch index 1, bracket 2.*finite"),
        ([[math.inf] * 7, *GOOD[1:]], FloatingPointError, "batch index 0, bracket 0"),
    ],
)
def test_bad_rates_name_batch_index_and_bracket(rates, error, match):
    with pytest.raises(error, match=match):
        _first_step(rates)


def test_check_batched_rates_returns_float64_rows():
    out = check_batched_rates(np.full((2, 7), 0.5, dtype=np.float32), 2, 7)
    assert out.dtype == np.float64 and out.shape == (2, 7)


def test_a_rejected_step_asks_no_rates_and_a_failed_one_needs_a_reset():
    calls: list[int] = []

    def fn(states: np.ndarray) -> np.ndarray:
        calls.append(1)
        return np.full((B, 7), 2.0 if len(calls) > 1 else 0.1)

    env = BatchedTaxRatesWrapper(batched_env(B, **SHORT), fn)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((B, env.n_agents), dtype=np.int64))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="batch index 0"):
        env.step(np.full((B, env.n_agents), 10**6))
    assert not calls and env.episode_schedule == [[]] * B
    for _ in range(PERIOD):
        env.step(np.zeros((B, env.n_agents), dtype=np.int64))
    with pytest.raises(ValueError, match="batch index 0, bracket 0"):
        env.step(np.zeros((B, env.n_agents), dtype=np.int64))
    assert len(env.episode_schedule[0]) == 1


def test_construction_checks_env_and_rates_fn():
    with pytest.raises(TypeError, match="tax interface"):
        BatchedTaxRatesWrapper(escape_room_batch(2), lambda s: s)
    with pytest.raises(TypeError, match="BatchedParallelEnv"):
        BatchedTaxRatesWrapper(parallel_env(**SHORT), lambda s: s)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        BatchedTaxRatesWrapper(batched_env(B, **SHORT), [0.1] * 7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        PerCopyRates([FreeMarketTax(), 0.1])  # type: ignore[list-item]
