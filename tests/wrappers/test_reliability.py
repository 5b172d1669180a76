"""Issue #16 (reliability): no hangs, no silent infinities, no lost designer decisions, no copies with stale books.

The fuzz test of the payment rules is :mod:`tests.wrappers.test_payment_fuzz`.
"""

from __future__ import annotations

import copy
import math
import pickle
import time
from fractions import Fraction
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils import BaseParallelWrapper, aec_to_parallel, parallel_to_aec

from incentive_envs.escape_room import START, parallel_env
from incentive_envs.escape_room import env as er_aec
from incentive_envs.gather_trade_build import parallel_env as gtb
from wrappers import (
    AECIncentiveWrapper,
    AgentValues,
    GymIncentiveWrapper,
    IncentiveWrapper,
    TaxRatesWrapper,
    TaxWrapper,
    incentive,
)

AGENTS = ("agent_0", "agent_1", "agent_2")
STAY = dict.fromkeys(AGENTS, START)
HANG = {"agent_0": 4.690872426686979e16, "agent_1": 4.612950914868236e16, "agent_2": -9.303823341555256e16}
"""Nearly cancelling payments (plain sum -400, exact sum -408) that made the old ``nextafter`` loop spin."""
HANG_BUDGET = 0.5905866535233125


def er3(**kwargs: Any) -> Any:
    return parallel_env(n_agents=3, min_at_lever=1, **kwargs)


def paying(*steps: dict[str, float]) -> Any:
    """An incentive function that pays ``steps[k]`` at step ``k``."""
    return lambda ctx: steps[ctx.step]


class HugeReward(BaseParallelWrapper):
    """Every env reward replaced by ``value``."""

    def __init__(self, env: Any, value: float) -> None:
        super().__init__(env)
        self.value = value

    def step(self, actions: dict) -> tuple:
        obs, rew, term, trunc, infos = self.env.step(actions)
        return obs, dict.fromkeys(rew, self.value), term, trunc, infos


class TurnGame(AECEnv):
    """Two players take turns; the mover earns ``reward``; the game ends after ``turns`` moves."""

    metadata = {"name": "turn_game_v0", "is_parallelizable": False}

    def __init__(self, reward: float = 0.0, turns: int = 4) -> None:
        super().__init__()
        self.reward, self.turns = reward, turns
        self.possible_agents = ["p0", "p1"]

    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Box(0.0, 1.0, (1,), np.float32)

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(2)

    def observe(self, agent: str) -> np.ndarray:
        return np.zeros(1, np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos: dict[str, dict] = {a: {} for a in self.agents}
        self.agent_selection, self._moves = "p0", 0

    def step(self, action: Any) -> None:
        if self.terminations[self.agent_selection]:
            self._was_dead_step(action)
            return
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self.rewards[self.agent_selection] = self.reward
        self._moves += 1
        if self._moves >= self.turns:
            self.terminations = dict.fromkeys(self.agents, True)
        self.agent_selection = "p1" if self.agent_selection == "p0" else "p0"
        self._accumulate_rewards()


# --------------------------------------------------------------------------------------------------------------
# 1. on_budget="scale" is closed-form: no hang on nearly cancelling payments, budgets hold exactly


@pytest.mark.timeout(60)
@pytest.mark.parametrize("budget", ["budget_per_step", "budget_per_episode"])
def test_scale_is_closed_form_on_nearly_cancelling_payments(budget: str) -> None:
    # per episode: 0.5 is paid first, then HANG (sum -408) must fit in the 1.09 left down to -HANG_BUDGET
    steps = (HANG,) if budget == "budget_per_step" else ({"agent_0": 0.5}, HANG)
    env = IncentiveWrapper(er3(), paying(*steps), on_budget="scale", **{budget: HANG_BUDGET})
    env.reset(seed=0)
    for _ in steps:
        start = time.perf_counter()
        _, _, _, _, infos = env.step(STAY)
        assert time.perf_counter() - start < 1.0
    paid = [infos[a]["incentive"] for a in AGENTS]
    assert infos["agent_0"]["incentive_scaled"] and env.step_cost == math.fsum(paid)
    assert abs(env.step_cost if budget == "budget_per_step" else env.episode_cost) <= HANG_BUDGET
    exact = sum(map(Fraction, paid)) + (Fraction(0.5) if budget == "budget_per_episode" else 0)
    assert abs(exact) <= HANG_BUDGET  # the paid incentives summed exactly, not just their rounded sum
    factors = [p / HANG[a] for p, a in zip(paid, AGENTS)]
    assert max(factors) - min(factors) <= 1e-15 * max(factors)  # one common factor
    assert abs(env.episode_cost) > 0.9 * HANG_BUDGET  # and not needlessly small: the margin is ~5% here


@pytest.mark.timeout(60)
def test_scale_fits_the_episode_budget_against_its_running_total_exactly() -> None:
    budget = 1.0
    first = {"agent_0": 0.1, "agent_1": 0.2, "agent_2": 0.3}  # 0.6000000000000001 as floats, not 0.6
    steps = (first, first, HANG, HANG, {"agent_0": -5.0})
    env = IncentiveWrapper(er3(), paying(*steps), budget_per_episode=budget, on_budget="scale")
    env.reset(seed=0)
    paid: list[float] = []
    for _ in steps:
        _, _, _, _, infos = env.step(STAY)
        paid += [i["incentive"] for i in infos.values()]
        assert env.step_cost == math.fsum(i["incentive"] for i in infos.values())
        assert env.episode_cost == math.fsum(paid)  # the exact total, rounded once: no running rounding error
        assert abs(sum(map(Fraction, paid))) <= budget  # exactly within budget
    assert infos["agent_0"]["incentive_scaled"] and -budget <= env.episode_cost < -0.99


# --------------------------------------------------------------------------------------------------------------
# 2. Finite payments never give infinite rewards or books


def test_budget_balanced_recentring_does_not_overflow() -> None:
    env = IncentiveWrapper(er3(), AgentValues({"agent_0": 1e308, "agent_1": 1e308}), budget_balanced=True)
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step(STAY)
    assert all(math.isfinite(r) for r in rewards.values())
    assert infos["agent_0"]["incentive"] == pytest.approx(1e308 / 3)
    assert infos["agent_2"]["incentive"] == pytest.approx(-2 * (1e308 / 3))
    assert all(math.isfinite(v) for v in env.episode_stats().values())

    both = AgentValues({"agent_0": 1e308, "agent_1": 1e308})
    two = IncentiveWrapper(parallel_env(n_agents=2, min_at_lever=1), both, budget_balanced=True)
    two.reset(seed=0)
    assert two.step({"agent_0": START, "agent_1": START})[1] == {"agent_0": 0.0, "agent_1": 0.0}


def test_recentring_that_cannot_be_represented_is_refused() -> None:
    big = 1.7e308  # the mean is -big/3: agent_0 would get 4/3 big, beyond the float range
    env = IncentiveWrapper(er3(), AgentValues({"agent_0": big, "agent_1": -big, "agent_2": -big}), budget_balanced=True)
    env.reset(seed=0)
    with pytest.raises(FloatingPointError, match=r"budget-balanced incentive for agent_0 at step 0 .*float range"):
        env.step(STAY)


def test_books_that_would_overflow_raise() -> None:
    env = IncentiveWrapper(er3(), AgentValues({"agent_0": 1e308, "agent_1": 1e308}))
    env.reset(seed=0)
    with pytest.raises(FloatingPointError, match=r"step 0: .*incentives.*agent_0: 1e\+308, agent_1: 1e\+308"):
        env.step(STAY)
    assert env.episode_cost == 0.0 and env.episode_stats()["incentives_paid"] == 0.0  # books left finite
    with pytest.raises(RuntimeError, match="previous step raised"):
        env.step(STAY)
    welfare = IncentiveWrapper(HugeReward(er3(), 1e308), AgentValues({}))
    welfare.reset(seed=0)
    with pytest.raises(FloatingPointError, match=r"step 0: the episode welfare would be inf .*agent_2: 1e\+308"):
        welfare.step(STAY)


def test_parallel_reward_overflow_raises() -> None:
    env = IncentiveWrapper(HugeReward(er3(), 1e308), AgentValues({"agent_1": 1e308}))
    env.reset(seed=0)
    with pytest.raises(FloatingPointError, match=r"reward of agent_1 at step 0 is inf"):
        env.step(STAY)


def test_aec_reward_and_books_overflow_raise() -> None:
    env = AECIncentiveWrapper(TurnGame(reward=1e308), AgentValues({"p0": 1e308}))
    env.reset(seed=0)
    with pytest.raises(FloatingPointError, match=r"reward of p0 at step 0 is inf"):
        env.step(0)
    env = AECIncentiveWrapper(TurnGame(), AgentValues({"p0": 1e308, "p1": 1e308}))
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(FloatingPointError, match=r"step 1: .*incentives"):
        env.step(0)


def test_gym_reward_overflow_raises() -> None:
    base = gymnasium.wrappers.TransformReward(gymnasium.make("CartPole-v1"), lambda r: 1e308)
    env = GymIncentiveWrapper(base, AgentValues({"agent": 1e308}))
    env.reset(seed=0)
    with pytest.raises(FloatingPointError, match=r"reward of agent at step 0 is inf"):
        env.step(0)


def test_tax_wrapper_overflow_raises() -> None:
    huge = TaxWrapper(
        HugeReward(parallel_env(n_agents=2, min_at_lever=1), 1e308), cutoffs=(0.0,), rates=[0.0], period=2
    )
    huge.reset(seed=0)
    huge.step({"agent_0": START, "agent_1": START})
    with pytest.raises(FloatingPointError, match=r"income of agent_0 at step 1 is inf"):
        huge.step({"agent_0": START, "agent_1": START})
    revenue = TaxWrapper(
        HugeReward(parallel_env(n_agents=2, min_at_lever=1), 1.7e308), cutoffs=(0.0,), rates=[1.0], period=1
    )
    revenue.reset(seed=0)
    with pytest.raises(FloatingPointError, match=r"step 0"):
        revenue.step({"agent_0": START, "agent_1": START})


def test_tax_rates_wrapper_checks_the_rewards_it_passes_on() -> None:
    env = TaxRatesWrapper(HugeReward(gtb(max_cycles=3), math.inf), lambda obs: [0.0] * 7)
    env.reset(seed=0)
    with pytest.raises(FloatingPointError, match=r"reward of agent_0 at step 0 is inf"):
        env.step(dict.fromkeys(env.agents, 0))
    with pytest.raises(RuntimeError, match="previous step raised"):
        env.step(dict.fromkeys(env.agents, 0))


# --------------------------------------------------------------------------------------------------------------
# 3. TaxRatesWrapper validates the joint action before asking the designer


class CountingDesigner:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, obs: Any) -> list[float]:
        self.calls += 1
        return [0.1 * self.calls] * 7


def test_rejected_step_does_not_consume_a_designer_decision() -> None:
    designer = CountingDesigner()
    env = TaxRatesWrapper(gtb(max_cycles=3), designer)
    env.reset(seed=0)
    first, *rest = env.agents
    with pytest.raises(KeyError, match="missing"):
        env.step(dict.fromkeys(rest, 0))
    with pytest.raises(ValueError, match="outside"):
        env.step({**dict.fromkeys(env.agents, 0), first: 10**6})
    assert designer.calls == 0 and env.episode_schedule == [] and env.rates is None
    _, _, _, _, infos = env.step(dict.fromkeys(env.agents, 0))
    assert designer.calls == 1 and env.episode_schedule == [(0, (0.1,) * 7)]
    assert infos[first]["tax_rates_set"] == (0.1,) * 7


def test_tax_rates_wrapper_checks_call_order_before_the_designer() -> None:
    designer = CountingDesigner()
    env = TaxRatesWrapper(gtb(max_cycles=3), designer)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step({})
    assert designer.calls == 0


# --------------------------------------------------------------------------------------------------------------
# 4. Nesting incentive wrappers is refused at construction


def test_nested_incentive_wrappers_are_refused_at_construction() -> None:
    inner = IncentiveWrapper(er3(), AgentValues({}))
    with pytest.raises(ValueError, match=r"already wrapped by IncentiveWrapper.*nest one incentive wrapper at most"):
        IncentiveWrapper(inner, AgentValues({}))
    with pytest.raises(ValueError, match="nest one incentive wrapper at most"):
        IncentiveWrapper(BaseParallelWrapper(inner), AgentValues({}))  # through another wrapper
    with pytest.raises(ValueError, match="nest one incentive wrapper at most"):
        incentive(parallel_to_aec(inner), AgentValues({}))  # through a conversion
    with pytest.raises(ValueError, match="nest one incentive wrapper at most"):
        IncentiveWrapper(
            aec_to_parallel(incentive(er_aec(n_agents=2, min_at_lever=1), AgentValues({}))), AgentValues({})
        )
    with pytest.raises(ValueError, match="nest one incentive wrapper at most"):
        AECIncentiveWrapper(AECIncentiveWrapper(TurnGame(), AgentValues({})), AgentValues({}))
    cart = GymIncentiveWrapper(gymnasium.make("CartPole-v1"), AgentValues({}))
    with pytest.raises(ValueError, match="nest one incentive wrapper at most"):
        incentive(gymnasium.wrappers.ClipReward(cart, -1.0, 1.0), AgentValues({}))


def test_nested_tax_wrappers_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="nest one TaxWrapper at most"):
        TaxWrapper(TaxWrapper(er3(), rates=[0.0] * 7), rates=[0.0] * 7)
    TaxWrapper(IncentiveWrapper(er3(), AgentValues({})), rates=[0.0] * 7)  # different kinds stack
    IncentiveWrapper(TaxWrapper(er3(), rates=[0.0] * 7), AgentValues({}))


# --------------------------------------------------------------------------------------------------------------
# 5. Copies mid-episode are refused; before reset and between episodes they are faithful


COPIES = [pickle.loads, copy.deepcopy, copy.copy]


def _copy(how: Any, env: Any) -> Any:
    return how(pickle.dumps(env)) if how is pickle.loads else how(env)


def _wrapped(kind: str) -> Any:
    if kind == "parallel":
        return IncentiveWrapper(er3(), AgentValues({"agent_0": 0.5}), budget_per_episode=10.0)
    if kind == "aec":
        return AECIncentiveWrapper(TurnGame(reward=1.0), AgentValues({"p0": 0.5}))
    if kind == "gym":
        return GymIncentiveWrapper(gymnasium.make("CartPole-v1"), AgentValues({"agent": 0.5}))
    if kind == "tax":
        return TaxWrapper(er3(), rates=[0.5] * 7, period=2)
    return TaxRatesWrapper(gtb(max_cycles=3), ten_percent)


def _act(env: Any) -> Any:
    if isinstance(env, gymnasium.Env):
        return 0
    if isinstance(env, AECEnv):
        return None if env.terminations.get(env.agent_selection, True) else 0
    return dict.fromkeys(env.agents, START)


def ten_percent(obs: Any) -> list[float]:
    return [0.1] * 7


KINDS = ["parallel", "aec", "gym", "tax", "tax_rates"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", COPIES, ids=["pickle", "deepcopy", "copy"])
def test_copy_mid_episode_is_refused(kind: str, how: Any) -> None:
    env = _wrapped(kind)
    env.reset(seed=0)
    env.step(_act(env))
    with pytest.raises(RuntimeError, match=r"cannot copy .* mid-episode.*before reset\(\) or after the episode"):
        _copy(how, env)


@pytest.mark.parametrize("kind", KINDS)
def test_copy_before_reset_and_after_the_episode_is_faithful(kind: str) -> None:
    env = _wrapped(kind)
    clone = pickle.loads(pickle.dumps(env))
    for e in (env, clone):
        e.reset(seed=3)
    a, b = _run(env), _run(clone)
    assert repr(a) == repr(b)
    if hasattr(env, "episode_stats"):
        assert env.episode_stats() == clone.episode_stats()
    later = copy.deepcopy(env)  # the episode is over: the copy has nothing left to step either
    if kind != "tax_rates":  # (which leaves a step past the end to the env)
        with pytest.raises(RuntimeError, match="after the episode finished"):
            later.step(_act(later))


def _run(env: Any) -> list[Any]:
    out = []
    for _ in range(60):
        if isinstance(env, gymnasium.Env):
            step = env.step(0)
            out.append(step[1:])
            if step[2] or step[3]:
                break
        elif isinstance(env, AECEnv):
            if not env.agents:
                break
            env.step(_act(env))
            out.append((dict(env.rewards), dict(env._cumulative_rewards)))
        else:
            if not env.agents:
                break
            out.append(env.step(_act(env))[1:])
    return out
