"""Tax arithmetic (incentive_envs.economics) against hand-computed cases, and TaxWrapper over scripted envs."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pettingzoo import ParallelEnv

from incentive_envs.economics import (
    US_FEDERAL_2018_CUTOFFS,
    US_FEDERAL_2018_RATES,
    bracket_tax,
    collect_and_redistribute,
    equality,
    gini,
    isoelastic_utility,
    lump_sum,
    productivity,
)
from incentive_envs.escape_room import DOOR, LEVER, START
from incentive_envs.escape_room import parallel_env as escape_room
from wrappers import StepContext, TaxWrapper

US = US_FEDERAL_2018_RATES

# income -> tax under the 2018 US federal schedule (scaled by 1/1000), by hand:
#   9.7 * 0.10 = 0.97 (bracket 0 full); 29.775 * 0.12 = 3.573 (bracket 1 full); 44.725 * 0.22 = 9.8395 (bracket 2 full);
#   76.525 * 0.24 = 18.366; 43.375 * 0.32 = 13.88; 306.2 * 0.35 = 107.17
HAND_CASES = [
    (0.0, 0.0),
    (-3.0, 0.0),  # losses are not taxed
    (5.0, 0.5),
    (9.7, 0.97),  # exactly at a cut-off
    (39.475, 0.97 + 3.573),  # exactly at a cut-off
    (50.0, 0.97 + 3.573 + 10.525 * 0.22),
    (600.0, 0.97 + 3.573 + 9.8395 + 18.366 + 13.88 + 107.17 + 89.7 * 0.37),  # every bracket, top one unbounded
]


@pytest.mark.parametrize(("income", "tax"), HAND_CASES)
def test_us_federal_bracket_tax_by_hand(income: float, tax: float) -> None:
    assert bracket_tax(np.array([income]), US)[0] == pytest.approx(tax, abs=1e-12)
    assert float(bracket_tax(torch.tensor([income], dtype=torch.float64), US)[0]) == pytest.approx(tax, abs=1e-12)


def test_bracket_tax_gradient_is_the_income_in_each_bracket() -> None:
    rates = torch.tensor(US, dtype=torch.float64, requires_grad=True)
    bracket_tax(torch.tensor([50.0], dtype=torch.float64), rates).sum().backward()
    assert rates.grad.tolist() == pytest.approx([9.7, 29.775, 10.525, 0, 0, 0, 0])


@given(
    incomes=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-50, 800)),
    rates=hnp.arrays(np.float64, 7, elements=st.floats(0, 1)),
)
def test_numpy_and_torch_agree(incomes: np.ndarray, rates: np.ndarray) -> None:
    np_tax = bracket_tax(incomes, rates)
    torch_tax = bracket_tax(torch.from_numpy(incomes), torch.from_numpy(rates)).numpy()
    np.testing.assert_allclose(np_tax, torch_tax, rtol=1e-12, atol=1e-12)
    paid, share = collect_and_redistribute(incomes, rates)
    t_paid, t_share = collect_and_redistribute(torch.from_numpy(incomes), torch.from_numpy(rates))
    np.testing.assert_allclose(paid, t_paid.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(share, t_share.numpy(), rtol=1e-12, atol=1e-12)
    # conservation: what is collected is handed back
    assert share.sum() == pytest.approx(paid.sum(), rel=1e-12, abs=1e-12)
    assert np.all(np.diff(share) == 0) and np.all(paid >= 0)


def test_collect_never_takes_more_than_available() -> None:
    paid, share = collect_and_redistribute(np.array([50.0, 5.0]), US, available=np.array([1.0, 100.0]))
    assert paid.tolist() == [1.0, 0.5] and share.tolist() == [0.75, 0.75]
    t_paid, _ = collect_and_redistribute(torch.tensor([50.0, 5.0]), US, available=torch.tensor([1.0, 100.0]))
    assert t_paid.tolist() == pytest.approx([1.0, 0.5])


def test_lump_sum_shapes() -> None:
    assert lump_sum(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])).tolist() == [[2.0, 2.0, 2.0], [1.0, 1.0, 1.0]]
    assert lump_sum(torch.tensor([1.0, 3.0])).tolist() == [2.0, 2.0]


def test_utility_and_social_metrics_by_hand() -> None:
    coin, labour = np.array([10.0, 0.0]), np.array([0.0, 2.0])
    expected = [(10**0.77 - 1) / 0.77, (0.01**0.77 - 1) / 0.77 - 0.21 * 2]  # coin is floored at 0.01
    np.testing.assert_allclose(isoelastic_utility(coin, labour), expected, rtol=1e-12)
    np.testing.assert_allclose(isoelastic_utility(torch.tensor(coin), torch.tensor(labour)).numpy(), expected)
    at_reset = np.full(4, 10.0)  # GTB at reset: productivity 40, equality 1 (method.md §6.3)
    assert (productivity(at_reset), equality(at_reset), gini(at_reset)) == (40.0, 1.0, 0.0)
    assert gini(np.array([1.0, 3.0])) == pytest.approx(4 / 16) and equality(np.array([1.0, 3.0])) == pytest.approx(0.5)
    assert equality(np.array([0.0, 0.0, 0.0, 40.0])) == pytest.approx(0.0, abs=1e-9)
    assert float(equality(torch.tensor([1.0, 3.0]))) == pytest.approx(0.5)
    assert gini(np.zeros(3)) == 0.0


def test_a_tensor_input_gives_a_tensor_otherwise_numpy() -> None:
    """Tensor rates make NumPy or list income a tensor of their dtype (keeping the gradient); else NumPy float64."""
    rates = torch.tensor(US, dtype=torch.float32, requires_grad=True)
    due = bracket_tax(np.array([50.0, 5.0]), rates)
    assert isinstance(due, torch.Tensor) and due.dtype == torch.float32 and due.requires_grad
    paid, share = collect_and_redistribute([50.0, 5.0], rates, available=[1.0, 100.0])
    assert isinstance(paid, torch.Tensor) and isinstance(share, torch.Tensor) and paid.requires_grad
    assert isinstance(bracket_tax(torch.tensor([50.0], dtype=torch.float64), US), torch.Tensor)
    numpy_due = bracket_tax([50.0, 5.0], US)
    assert isinstance(numpy_due, np.ndarray) and numpy_due.dtype == np.float64
    assert bracket_tax(5.0, US) == pytest.approx(0.5)  # a float in: a NumPy scalar out
    assert isinstance(isoelastic_utility(torch.tensor([10.0]), [0.0]), torch.Tensor)
    assert isinstance(isoelastic_utility([10.0], [0.0]), np.ndarray)
    for fn in (lump_sum, productivity, gini, equality):
        assert isinstance(fn(torch.tensor([[1.0, 3.0]])), torch.Tensor), fn.__name__
        out = fn([[1.0, 3.0]])
        assert isinstance(out, np.ndarray) and out.dtype == np.float64, fn.__name__


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: bracket_tax(np.ones(2), US, [1.0, 2.0]), ValueError, "first cutoff must be 0"),
        (lambda: bracket_tax(np.ones(2), US[:2], [0.0, 2.0, 1.0]), ValueError, "strictly increasing"),
        (lambda: bracket_tax(np.ones(2), US[:3]), ValueError, "7 entries"),
        (lambda: isoelastic_utility(np.ones(2), 0.0, eta=1.0), ValueError, "eta"),
        (lambda: equality(np.ones(1)), ValueError, "at least 2 agents"),
    ],
)
def test_arithmetic_rejects_bad_input(call: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------------------------------------------
# TaxWrapper


class ScriptedIncome(ParallelEnv):
    """Two agents whose rewards follow a fixed table; infos carry ``coin`` = 2 x reward."""

    metadata = {"name": "scripted_income_v0", "render_modes": [], "is_parallelizable": True}
    REWARDS = ((10.0, 0.0), (5.0, 20.0), (0.0, 0.0), (40.0, 1.0), (2.0, 2.0))

    def __init__(self) -> None:
        self.possible_agents = ["agent_0", "agent_1"]
        self.agents: list[str] = []
        self._t = 0

    @functools.cache
    def observation_space(self, agent: str) -> spaces.Box:
        return spaces.Box(0.0, 10.0, (1,), np.float32)

    @functools.cache
    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(2)

    def _obs(self) -> dict[str, np.ndarray]:
        return {a: np.array([self._t], dtype=np.float32) for a in self.possible_agents}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents, self._t = list(self.possible_agents), 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple:
        row = self.REWARDS[self._t]
        self._t += 1
        done = self._t == len(self.REWARDS)
        rewards = dict(zip(self.possible_agents, row))
        infos = {a: {"coin": 2 * r} for a, r in rewards.items()}
        dones = dict.fromkeys(self.possible_agents, done)
        if done:
            self.agents = []
        return self._obs(), rewards, dones, dict.fromkeys(self.possible_agents, False), infos


ACT = {"agent_0": 0, "agent_1": 1}
CUTS = (0.0, 10.0)


def run(env: TaxWrapper) -> list[tuple]:
    env.reset(seed=0)
    return [env.step(ACT) for _ in ScriptedIncome.REWARDS]


def test_tax_periods_by_hand() -> None:
    """Period 2, rates (0.1 below 10, 0.5 above): tax(15) = 3.5, tax(20) = 6, tax(40) = 16, tax(1) = 0.1."""
    env = TaxWrapper(ScriptedIncome(), cutoffs=CUTS, rates=[0.1, 0.5], period=2)
    steps = run(env)
    rewards = [s[1] for s in steps]
    assert rewards[0] == {"agent_0": 10.0, "agent_1": 0.0}  # mid-period: untouched
    assert rewards[1] == {"agent_0": 5.0 - 3.5 + 4.75, "agent_1": 20.0 - 6.0 + 4.75}
    assert rewards[2] == {"agent_0": 0.0, "agent_1": 0.0}
    assert rewards[3] == pytest.approx({"agent_0": 40 - 16 + 8.05, "agent_1": 1 - 0.1 + 8.05})
    assert rewards[4] == pytest.approx({"agent_0": 2.0, "agent_1": 2.0})  # partial last period: 0.2 each, back
    infos = steps[1][4]["agent_1"]
    assert (infos["pretax_income"], infos["tax_paid"], infos["redistribution"]) == (20.0, 6.0, 4.75)
    assert infos["marginal_rates"] == (0.1, 0.5)
    assert steps[0][4]["agent_0"]["pretax_income"] == 10.0 and steps[0][4]["agent_0"]["tax_paid"] == 0.0
    assert steps[4][4]["agent_0"]["tax_paid"] == pytest.approx(0.2)
    assert env.period_revenue == pytest.approx([9.5, 16.1, 0.4])
    assert env.episode_revenue == pytest.approx(env.episode_redistributed)


def test_schedule_rates_fn_income_key_and_custom_redistribution() -> None:
    sched = TaxWrapper(ScriptedIncome(), cutoffs=CUTS, rates=[[0.1, 0.5], [0.0, 0.0], [1.0, 1.0]], period=2)
    rewards = [s[1] for s in run(sched)]
    assert rewards[3] == {"agent_0": 40.0, "agent_1": 1.0} and rewards[4] == {"agent_0": 2.0, "agent_1": 2.0}
    assert sched.period_revenue == [9.5, 0.0, 4.0]

    seen: list[StepContext] = []

    def designer(ctx: StepContext) -> list[float]:
        seen.append(ctx)
        return [0.0, 0.0] if ctx.step else [0.1, 0.5]

    dyn = TaxWrapper(ScriptedIncome(), cutoffs=CUTS, rates=designer, period=2)
    assert [s[1] for s in run(dyn)][1] == {"agent_0": 6.25, "agent_1": 18.75}
    assert [c.step for c in seen] == [0, 2, 4] and seen[1].designer_obs["agent_0"].tolist() == [2.0]

    coin = TaxWrapper(ScriptedIncome(), cutoffs=CUTS, rates=[0.1, 0.5], period=2, income_key="coin")
    run(coin)  # incomes double: tax(30) = 11, tax(40) = 16
    assert coin.period_revenue[0] == pytest.approx(27.0)

    to_first = TaxWrapper(
        ScriptedIncome(), cutoffs=CUTS, rates=[0.1, 0.5], period=2, redistribution=lambda t: np.array([t.sum(), 0.0])
    )
    assert run(to_first)[1][1] == {"agent_0": 5.0 - 3.5 + 9.5, "agent_1": 20.0 - 6.0}


def test_tax_over_escape_room_by_hand() -> None:
    """ER(2, 1), period 2, rates 0.25 below 4 and 0.5 above: only the escape (+10) is taxed, 1 + 3 = 4."""
    env = TaxWrapper(escape_room(n_agents=2, min_at_lever=1), cutoffs=(0.0, 4.0), rates=[0.25, 0.5], period=2)
    env.reset(seed=0)
    _, r0, *_ = env.step({"agent_0": LEVER, "agent_1": START})  # -1, 0
    _, r1, *_ = env.step({"agent_0": LEVER, "agent_1": LEVER})  # 0, -1; period end, losses untaxed
    _, r2, term, _, infos = env.step({"agent_0": LEVER, "agent_1": DOOR})  # 0, +10; episode ends mid-period
    assert (r0, r1) == ({"agent_0": -1.0, "agent_1": 0.0}, {"agent_0": 0.0, "agent_1": -1.0})
    assert all(term.values()) and r2 == {"agent_0": 2.0, "agent_1": 8.0}
    assert infos["agent_1"]["tax_paid"] == 4.0 and env.period_revenue == [0.0, 4.0]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rates": [0.1, 1.5]}, ValueError, r"must lie in \[0.0, 1.0\]"),
        ({"rates": [0.1, float("nan")]}, FloatingPointError, "finite"),
        ({"rates": [0.1, 0.2, 0.3]}, ValueError, "expected 2 marginal rates"),
        ({"rates": [[[0.1]]]}, ValueError, "vector, a 2-D schedule"),
        ({"cutoffs": (0.0, 0.0)}, ValueError, "strictly increasing"),
        ({"period": 0}, ValueError, "period must be >= 1"),
        ({"income_key": 3}, ValueError, "income_key"),
        ({"redistribution": "progressive"}, ValueError, "redistribution"),
    ],
)
def test_tax_wrapper_rejects_bad_configuration(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        TaxWrapper(ScriptedIncome(), **{"cutoffs": CUTS, "rates": [0.1, 0.5], **kwargs})


def test_tax_wrapper_runtime_guards() -> None:
    env = TaxWrapper(ScriptedIncome(), cutoffs=CUTS, rates=[0.1, 0.5], period=2)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(ACT)
    run(env)
    with pytest.raises(RuntimeError, match="after the episode finished"):
        env.step(ACT)
    env.reset()
    with pytest.raises(KeyError, match="missing"):
        env.step({"agent_0": 0})
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step({"agent_0": 0, "agent_1": 2})

    short = TaxWrapper(ScriptedIncome(), cutoffs=CUTS, rates=[[0.1, 0.5]], period=2)
    short.reset()
    short.step(ACT), short.step(ACT)
    with pytest.raises(ValueError, match="schedule has 1 periods but period 1 started"):
        short.step(ACT)
    with pytest.raises(RuntimeError, match="previous step raised"):
        short.step(ACT)

    for bad, error, match in [
        (lambda t: t, None, None),
        (lambda t: t * 2, ValueError, "hands out"),
        (lambda t: np.full_like(t, np.nan), FloatingPointError, "non-finite"),
    ]:
        env = TaxWrapper(ScriptedIncome(), cutoffs=CUTS, rates=[0.1, 0.5], period=1, redistribution=bad)
        env.reset()
        if error is None:
            env.step(ACT)
        else:
            with pytest.raises(error, match=match):
                env.step(ACT)

    missing = TaxWrapper(ScriptedIncome(), cutoffs=CUTS, rates=[0.1, 0.5], income_key="wealth")
    missing.reset()
    with pytest.raises(KeyError, match="no income key 'wealth'"):
        missing.step(ACT)
    nan_rates = TaxWrapper(ScriptedIncome(), cutoffs=CUTS, rates=lambda ctx: [0.1, math.nan])
    nan_rates.reset()
    with pytest.raises(FloatingPointError, match="finite"):
        nan_rates.step(ACT)


def test_default_is_the_us_federal_schedule() -> None:
    env = TaxWrapper(ScriptedIncome(), period=2)
    steps = run(env)
    assert steps[0][4]["agent_0"]["marginal_rates"] == US
    assert env.period_revenue[0] == pytest.approx(float(bracket_tax(np.array([15.0, 20.0]), US).sum()))
    assert tuple(env.cutoffs) == US_FEDERAL_2018_CUTOFFS
