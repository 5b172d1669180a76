"""Fuzz of the payment rules (issue #16): random payments (huge, tiny, cancelling), budgets and rules over
several steps. Every step returns fast; it either raises a clear error or returns finite rewards, respects
the budgets exactly (the paid incentives summed exactly) and keeps books that add up."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incentive_envs.escape_room import parallel_env
from wrappers import IncentiveWrapper
from wrappers.budgets import scale_factor

AGENTS = ("agent_0", "agent_1", "agent_2")
BIG = sys.float_info.max
EDGES = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, 0.1, 1.0, -1.0, 1e16, 1e300, BIG, -BIG]
STEP_SECONDS = 2.0
"""A step takes microseconds; the old ``nextafter`` loop could take hours (a hang, not a slow step)."""


class StepTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`StepTimeout` in the block after ``seconds`` (SIGALRM: a hung example fails, and so does each
    of hypothesis' shrinking runs, instead of hanging the suite). Without SIGALRM (Windows) the block is unbounded.
    """
    if not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise StepTimeout(f"env.step took over {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


value_st = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(EDGES), st.floats(-10, 10, allow_nan=False)
)
budget_st = st.one_of(
    st.none(),
    st.floats(min_value=5e-324, max_value=BIG),
    st.sampled_from([5e-324, 1e-300, 0.5905866535233125, 1.0, 1e300, BIG]),
)


def exact(values: list[float]) -> Fraction:
    return sum(map(Fraction, values), Fraction(0))


def rounded_sum(values: list[float]) -> float:
    """The exact sum rounded to the nearest float (``math.fsum`` may refuse on an intermediate overflow)."""
    return float(exact(values))


@st.composite
def payments_st(draw: Any) -> dict[str, float]:
    """Three payments; often the third (nearly) cancels the other two, the case that used to hang."""
    a, b = draw(value_st), draw(value_st)
    if draw(st.booleans()):
        c = -(a + b) if math.isfinite(a + b) else -a
        c *= draw(st.sampled_from([1.0, 1 + 2**-52, 1 - 2**-52, 1 + 1e-12]))
        c = c if math.isfinite(c) else -a
    else:
        c = draw(value_st)
    values = draw(st.permutations([a, b, c]))
    keep = draw(st.lists(st.booleans(), min_size=3, max_size=3))  # an agent left out is paid 0
    return {agent: v for agent, v, k in zip(AGENTS, values, keep) if k or not any(keep)}


def _expected_error(
    error: Exception, raw: dict[str, float], spent: Fraction, largest: float, rules: dict[str, Any]
) -> bool:
    """Whether ``error`` is one the rules call for: a negative payment, a budget really exceeded, an overflow."""
    message = str(error)
    if isinstance(error, ValueError) and "nonnegative=True" in message:
        return rules["nonnegative"] and min(raw.values()) < 0
    if isinstance(error, ValueError):
        if rules["on_budget"] != "raise" or "budget" not in message:
            return False
        if rules["budget_balanced"]:
            return True  # the re-centred payments are the wrapper's; checked by the "scale" runs instead
        total = exact(list(raw.values()))
        per_step, per_episode = rules["budget_per_step"], rules["budget_per_episode"]
        return (per_step is not None and abs(total) > per_step) or (
            per_episode is not None and abs(spent + total) > per_episode
        )
    # only payments near the top of the float range (``largest`` so far) can overflow an account or a reward
    return isinstance(error, FloatingPointError) and "step" in message and largest > 1e307


@pytest.mark.timeout(0)  # each step has its own limit (pytest-timeout's alarm would be replaced by it anyway)
@settings(max_examples=400, deadline=None)
@given(
    steps=st.lists(payments_st(), min_size=1, max_size=5),
    joint=st.lists(st.lists(st.integers(0, 2), min_size=3, max_size=3), min_size=5, max_size=5),
    per_step=budget_st,
    per_episode=budget_st,
    on_budget=st.sampled_from(["raise", "scale"]),
    sign=st.sampled_from(["free", "nonnegative", "balanced"]),
)
def test_payment_rules_fuzz(
    steps: list[dict[str, float]],
    joint: list[list[int]],
    per_step: float | None,
    per_episode: float | None,
    on_budget: str,
    sign: str,
) -> None:
    rules = {
        "budget_per_step": per_step,
        "budget_per_episode": per_episode,
        "on_budget": on_budget,
        "nonnegative": sign == "nonnegative",
        "budget_balanced": sign == "balanced",
    }
    env = IncentiveWrapper(parallel_env(n_agents=3, min_at_lever=1, max_steps=5), lambda ctx: steps[ctx.step], **rules)
    env.reset(seed=0)
    paid: list[float] = []
    env_rewards: list[float] = []
    costs: list[float] = []
    running = dict.fromkeys(AGENTS, 0.0)
    for raw, acts in zip(steps, joint):
        if not env.agents:
            break
        try:
            with time_limit(STEP_SECONDS):
                _, rewards, _, _, infos = env.step(dict(zip(AGENTS, acts)))
        except (ValueError, FloatingPointError) as error:
            largest = max(abs(v) for r in steps[: len(costs) + 1] for v in r.values())
            assert _expected_error(error, raw, exact(paid), largest, rules), repr(error)
            break
        step_paid = [infos[a]["incentive"] for a in AGENTS]
        # rewards: finite, env reward + incentive
        assert all(math.isfinite(r) for r in rewards.values())
        assert all(rewards[a] == infos[a]["env_reward"] + infos[a]["incentive"] for a in AGENTS)
        # budgets: exactly, on the exact sums (so also on their rounding, the booked costs)
        exact_step = exact(step_paid)
        paid += step_paid
        env_rewards += [infos[a]["env_reward"] for a in AGENTS]
        if per_step is not None:
            assert abs(exact_step) <= per_step and abs(env.step_cost) <= per_step
        if per_episode is not None:
            assert abs(exact(paid)) <= per_episode and abs(env.episode_cost) <= per_episode
        # the rules
        scaled = infos["agent_0"]["incentive_scaled"]
        assert not scaled or on_budget == "scale"
        if sign == "nonnegative":
            assert min(step_paid) >= 0
        if sign == "free" and not scaled:
            assert step_paid == [raw.get(a, 0.0) for a in AGENTS]
        if sign == "free" and scaled:  # one common factor in [0, 1]: signs kept, nothing grows
            assert all(p * raw.get(a, 0.0) >= 0 and abs(p) <= abs(raw.get(a, 0.0)) for p, a in zip(step_paid, AGENTS))
        if sign == "balanced":
            assert abs(exact_step) <= exact([abs(p) * 2**-50 for p in step_paid]) + Fraction(1e-300)
        # books: step cost = its payments; episode cost = all payments; welfare = all env rewards
        assert env.step_cost == rounded_sum(step_paid)
        assert env.episode_cost == rounded_sum(paid) and env.episode_welfare == rounded_sum(env_rewards)
        costs.append(env.step_cost)  # the step costs add up to the episode cost, up to their rounding
        assert abs(Fraction(env.episode_cost) - exact(costs)) <= exact([abs(c) * 2**-50 for c in costs]) + Fraction(
            1e-300
        )
        for agent, p in zip(AGENTS, step_paid):
            running[agent] += p
            assert env.episode_incentives[agent] == running[agent]
        stats = env.episode_stats()
        assert stats["incentives_paid"] == env.episode_cost and stats["welfare"] == env.episode_welfare
        assert stats["designer_net"] == env.episode_welfare - env.episode_cost
    assert all(math.isfinite(v) for v in env.episode_stats().values())  # also after an error


@settings(max_examples=300, deadline=None)
@given(
    payments=st.lists(value_st, min_size=1, max_size=20),
    cancel=st.booleans(),
    per_step=budget_st,
    per_episode=budget_st,
    share=st.one_of(st.floats(-1, 1), st.sampled_from([-1.0, 1.0])),
)
def test_scale_factor_keeps_exact_sums_within_budgets(
    payments: list[float], cancel: bool, per_step: float | None, per_episode: float | None, share: float
) -> None:
    """The closed form alone, over many agents: the scaled payments' exact sum fits, whatever their rounding."""
    if cancel and len(payments) > 1:
        rest = rounded_sum(payments[:-1]) if max(map(abs, payments)) < 1e307 else 0.0
        payments[-1] = -rest
    spent = Fraction(0) if per_episode is None else Fraction(share * per_episode)
    factor = scale_factor(payments, spent, per_step, per_episode)
    assert 0.0 <= factor <= 1.0
    total = exact([v * factor for v in payments])
    assert abs(total) <= BIG
    if per_step is not None:
        assert abs(total) <= per_step
    if per_episode is not None:
        assert abs(spent + total) <= per_episode
