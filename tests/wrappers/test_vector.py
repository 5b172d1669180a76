"""BatchedIncentiveWrapper (#14): B copies pay, reward and book exactly what B single IncentiveWrappers do.

The reference is B single :class:`IncentiveWrapper` s seeded ``s, s + 1, ...`` stepped with the same actions;
the batch is :func:`incentive_envs.vector.batch_of` of the same game (the generic adapter) seeded ``s``.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pettingzoo.utils import BaseParallelWrapper

from incentive_envs.escape_room import DOOR, LEVER, START
from incentive_envs.escape_room import parallel_env as escape_room
from incentive_envs.ipd import parallel_env as ipd
from incentive_envs.vector import PettingZooBatch, batch_of
from wrappers import (
    ADDED_INFO_KEYS,
    ActionTable,
    AgentValues,
    BatchedActionTable,
    BatchedAgentValues,
    BatchedIncentiveWrapper,
    BatchedModuleIncentive,
    BatchedStepContext,
    IncentiveWrapper,
    ModuleIncentive,
    PerCopy,
    StepContext,
    batched_joint_action_features,
    joint_action_features,
)

B = 5
LIKELY = {3: [LEVER, START, START, START, DOOR, DOOR], 2: [0, 1]}
"""Actions to draw from: in Escape Room, pulling the lever less often makes episodes last and end at different steps."""


def er3(**kwargs: Any) -> Any:
    return escape_room(n_agents=3, min_at_lever=1, randomize=True, **kwargs)


def ipd4() -> Any:
    return ipd(max_cycles=4)


def stateless_er3() -> Any:
    env = er3()
    env.state_space = None  # the designer then sees the agents' observations
    return env


def random_pay(ctx: StepContext) -> dict[str, float]:
    """Random payments, a function of the context only (so one instance serves every copy); may skip an agent."""
    obs = ctx.designer_obs
    flat = np.concatenate([np.ravel(v) for v in obs.values()]) if isinstance(obs, dict) else np.ravel(obs)
    infos = [int(info[k]) for info in ctx.infos.values() for k in sorted(info)]  # (the batch stacks keys sorted)
    rng = np.random.default_rng([ctx.step, *(ctx.actions[a] for a in ctx.agents), *np.flatnonzero(flat), *infos])
    return {a: float(rng.normal(0.0, 0.7)) for a in ctx.agents if rng.random() < 0.8}


def dyadic_mlp(n_in: int, n_out: int) -> torch.nn.Module:
    """An MLP with quarter-integer weights: on 0/1 features every sum is exact, so a batched forward equals the
    single-row forwards bit for bit (with arbitrary weights BLAS may round a [B, F] product differently)."""
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(n_in, 8), torch.nn.ReLU(), torch.nn.Linear(8, n_out))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randint(-4, 5, p.shape, generator=gen).float() / 4)
    return net


def functions(game: str, kind: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(single, batched) factories of the incentive function ``kind`` for ``game``."""
    agents, n_actions, n_in = (("agent_0", "agent_2"), 3, 18) if game != "ipd" else (("player_1",), 2, 10)
    table = [1.0, 0.5, 0.25][:n_actions]
    values = dict(zip(agents, (0.25, 0.5)))  # one agent is not paid
    if kind == "table":
        return (lambda: ActionTable(table, scale=0.5)), (lambda: BatchedActionTable(table, scale=0.5))
    if kind == "values":
        return (lambda: AgentValues(values)), (lambda: BatchedAgentValues(values))
    if kind == "random":
        return (lambda: random_pay), (lambda: PerCopy(random_pay))
    net = dyadic_mlp(n_in if game != "stateless" else 36, n_actions)
    return (lambda: ModuleIncentive(net, scale=0.25)), (lambda: BatchedModuleIncentive(net, scale=0.25))


GAMES = {"er": er3, "ipd": ipd4, "stateless": stateless_er3}
RULES = [
    {},
    {"budget_per_step": 1.0},
    {"budget_per_step": 0.5, "on_budget": "scale"},
    {"budget_per_episode": 2.0},
    {"budget_per_episode": 1.5, "on_budget": "scale"},
    {"budget_per_step": 0.5, "budget_per_episode": 1.5, "on_budget": "scale"},
    {"nonnegative": True},
    {"budget_balanced": True},
]


def run_both(game: str, kind: str, rules: dict[str, Any], seed: int = 3, n_envs: int = B) -> BatchedIncentiveWrapper:
    """Step the batch and B single wrappers with the same random actions; assert every output and book equal."""
    single_fn, batched_fn = functions(game, kind)
    batch = BatchedIncentiveWrapper(batch_of(GAMES[game], n_envs), batched_fn(), **rules)
    singles = [IncentiveWrapper(GAMES[game](), single_fn(), **rules) for _ in range(n_envs)]
    obs, _ = batch.reset(seed=seed)
    for b, env in enumerate(singles):
        single_obs, _ = env.reset(seed=seed + b)
        assert all(np.array_equal(obs[b, i], single_obs[a]) for i, a in enumerate(env.possible_agents))
    rng = np.random.default_rng(seed)
    agents = batch.possible_agents
    while not batch.done.all():
        actions = rng.choice(LIKELY[batch.action_space.n], (n_envs, batch.n_agents))
        before = {k: v.copy() for k, v in vars(batch).items() if k.startswith(("episode_", "step_cost", "last_pay"))}
        done = batch.done
        errors: dict[int, Exception] = {}
        outs: dict[int, tuple] = {}
        for b, env in enumerate(singles):
            if env.agents:
                try:
                    outs[b] = env.step({a: int(actions[b, i]) for i, a in enumerate(agents) if a in env.agents})
                except (ValueError, FloatingPointError) as e:
                    errors[b] = e
        if errors:
            with pytest.raises((ValueError, FloatingPointError)) as caught:
                batch.step(actions)
            b = int(str(caught.value).split(":")[0].removeprefix("batch index "))
            assert type(caught.value) is type(errors[b]) and str(caught.value) == f"batch index {b}: {errors[b]}"
            return batch
        obs, rewards, terms, truncs, infos = batch.step(actions)
        for b, (s_obs, s_rew, s_term, s_trunc, s_infos) in outs.items():
            for i, a in enumerate(agents):
                assert obs[b, i].tolist() == s_obs[a].tolist()
                assert (rewards[b, i], terms[b, i], truncs[b, i]) == (s_rew[a], s_term[a], s_trunc[a])
                assert {k: infos[k][b, i] for k in s_infos[a]} == s_infos[a]
                assert batch.last_payments[b, i] == s_infos[a]["incentive"]
                assert batch.episode_incentives[b, i] == singles[b].episode_incentives.get(a, 0.0)
                assert batch.episode_env_rewards[b, i] == singles[b].episode_env_rewards.get(a, 0.0)
            assert batch.step_cost[b] == singles[b].step_cost
            assert batch.last_context.step[b] == singles[b].last_context.step
            assert {k: v[b] for k, v in batch.episode_stats().items()} == singles[b].episode_stats()
        for b in np.flatnonzero(done):  # a copy that is done: nothing paid, nothing booked
            assert not rewards[b].any() and not infos["incentive"][b].any() and not infos["incentive_scaled"][b].any()
            assert all(np.array_equal(v[b], before[k][b]) for k, v in vars(batch).items() if k in before)
    assert all(not env.agents for env in singles)
    for b, env in enumerate(singles):  # the books of every copy as its single wrapper left them
        assert batch.step_cost[b] == env.step_cost
        assert batch.last_payments[b].tolist() == [env.last_payments.get(a, 0.0) for a in agents]
        assert {k: v[b] for k, v in batch.episode_stats().items()} == env.episode_stats()
    return batch


@pytest.mark.parametrize("rules", RULES, ids=lambda r: "-".join(f"{k}={v}" for k, v in r.items()) or "none")
@pytest.mark.parametrize("kind", ["table", "values", "random", "module"])
@pytest.mark.parametrize("game", ["er", "ipd", "stateless"])
def test_batch_equals_single_wrappers_step_by_step(game: str, kind: str, rules: dict[str, Any]) -> None:
    run_both(game, kind, rules)


def test_escape_room_copies_end_at_different_steps() -> None:
    batch = run_both("er", "random", {"budget_per_episode": 3.0, "on_budget": "scale"}, seed=0, n_envs=8)
    assert len(set(batch.episode_steps.tolist())) > 1
    assert np.all(np.abs(batch.episode_cost) <= 3.0)


@given(seed=st.integers(0, 2**20))
@settings(max_examples=10)
def test_random_rules_and_seeds_stay_equal(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rules = RULES[rng.integers(len(RULES))]
    run_both(["er", "ipd"][seed % 2], "random", rules, seed=seed, n_envs=int(rng.integers(1, 6)))


# --------------------------------------------------------------------------------------------------------------
# The batched incentive functions, row by row


def batch_context(game: str = "er", steps: int = 2, seed: int = 0) -> BatchedStepContext:
    batch = BatchedIncentiveWrapper(batch_of(GAMES[game], B), BatchedAgentValues({}))
    batch.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch.step(rng.integers(0, batch.action_space.n, (B, batch.n_agents)))
    assert batch.last_context is not None
    return batch.last_context


@pytest.mark.parametrize("game", ["er", "ipd", "stateless"])
def test_batched_joint_action_features_equal_row_by_row(game: str) -> None:
    ctx = batch_context(game, steps=3 if game != "ipd" else 2)
    live = np.flatnonzero(ctx.active.any(axis=1))
    assert game == "ipd" or 0 < len(live) < B  # some copies of Escape Room are done by now
    x = batched_joint_action_features(ctx)
    assert x.dtype == np.float32 and x.shape[0] == B
    for b in live:  # (a single wrapper builds no context once its episode is over)
        assert x[b].tolist() == joint_action_features(ctx.copy_context(int(b))).tolist()


def test_module_incentive_inputs_can_be_recorded_and_recomputed_with_gradients() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(18, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    for slots in ("action", "agent", lambda c: np.where(c.active, 2 - c.actions, 0)):
        fn = BatchedModuleIncentive(net, slots=slots, scale=2.0)
        single = ModuleIncentive(net, slots=slots if isinstance(slots, str) else lambda c: {
            a: 2 - c.actions[a] for a in c.agents}, scale=2.0)
        ctx = batch_context()
        x, idx = fn.inputs(ctx)
        paid = fn.pay((x, idx))
        assert np.array_equal(paid, fn(ctx)) and (idx[~ctx.active] == -1).all() and not paid[~ctx.active].any()
        recomputed = fn.payments_from_outputs(net(torch.as_tensor(x)), idx)
        assert np.array_equal(recomputed.detach().double().numpy(), paid)
        recomputed.sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
        net.zero_grad()
        for b in np.flatnonzero(ctx.active.any(axis=1)):  # a [B, F] product may round differently from B rows
            one = single(ctx.copy_context(int(b)))
            assert [one.get(a, 0.0) for a in ctx.possible_agents] == pytest.approx(paid[b].tolist(), rel=1e-6)


def test_batched_functions_check_their_inputs() -> None:
    with pytest.raises(ValueError, match=r"ActionTable has 2 values but the action space Discrete\(3\) has 3"):
        BatchedIncentiveWrapper(batch_of(er3, 2), BatchedActionTable([1.0, 2.0]))
    with pytest.raises(KeyError, match="unknown agents"):
        BatchedIncentiveWrapper(batch_of(er3, 2), BatchedAgentValues({"ghost": 1.0}))
    with pytest.raises(KeyError, match="unknown agents"):
        BatchedIncentiveWrapper(batch_of(er3, 2), PerCopy(AgentValues({"ghost": 1.0})))
    with pytest.raises(TypeError, match=r"ActionTable pays one copy; use BatchedActionTable or PerCopy"):
        BatchedIncentiveWrapper(batch_of(er3, 2), ActionTable([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match="callable"):
        BatchedIncentiveWrapper(batch_of(er3, 2), 3.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        BatchedModuleIncentive(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slots"):
        BatchedModuleIncentive(torch.nn.Linear(18, 3), slots="nope")  # type: ignore[arg-type]
    ctx = batch_context()
    with pytest.raises(ValueError, match=r"features\(ctx\) must have shape \[B, F\]"):
        BatchedModuleIncentive(torch.nn.Linear(18, 3), features=lambda c: np.zeros(18))(ctx)
    with pytest.raises(ValueError, match=r"slots\(ctx\) must be integers of shape \[B, N\]"):
        BatchedModuleIncentive(torch.nn.Linear(18, 3), slots=lambda c: np.zeros(3, dtype=int))(ctx)
    with pytest.raises(ValueError, match=r"batch index 0, agent 0: slot 3 is outside the module output of size 3"):
        BatchedModuleIncentive(torch.nn.Linear(18, 3), slots=lambda c: np.full(c.shape, 3))(ctx)
    nan = BatchedModuleIncentive(torch.nn.Linear(18, 3), features=lambda c: np.where(
        np.arange(B)[:, None] == 1, np.nan, batched_joint_action_features(c)))
    with pytest.raises(FloatingPointError, match=r"batch index 1: features\(ctx\) at step 1 contain NaN"):
        nan(ctx)


# --------------------------------------------------------------------------------------------------------------
# Errors name the batch index, the agent and the step


def copy_pays(b: int, value: float, agent: int = 2, step: int = 0) -> Callable[[BatchedStepContext], Any]:
    """Pays ``value`` to ``agent`` of copy ``b`` at ``step`` and 0.5 to every other agent."""
    def fn(ctx: BatchedStepContext) -> Any:
        out = np.full(ctx.shape, 0.5)
        if ctx.step[b] == step:
            out[b, agent] = value
        return out
    return fn


STAY = np.full((B, 3), START)


def started(fn: Any, n_envs: int = B, **rules: Any) -> BatchedIncentiveWrapper:
    env = BatchedIncentiveWrapper(batch_of(lambda: escape_room(n_agents=3, min_at_lever=1), n_envs), fn, **rules)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize(("value", "error", "match"), [
    (math.nan, FloatingPointError, r"^batch index 3: incentive for agent_2 at step 1 is nan; it must be finite$"),
    (-math.inf, FloatingPointError, r"^batch index 3: incentive for agent_2 at step 1 is -inf; it must be finite$"),
    (-1.0, ValueError, r"^batch index 3: incentive for agent_2 at step 1 is -1.0 < 0 but nonnegative=True$"),
])
def test_bad_payments_name_batch_index_agent_and_step(value: float, error: type, match: str) -> None:
    env = started(copy_pays(3, value, step=1), nonnegative=True)
    env.step(STAY)
    with pytest.raises(error, match=match):
        env.step(STAY)
    with pytest.raises(RuntimeError, match="previous step raised"):
        env.step(STAY)


def test_payments_of_agents_that_did_not_act_are_ignored() -> None:
    env = started(copy_pays(1, math.nan, step=1), nonnegative=True)
    env.step(np.where(np.arange(B)[:, None] == 1, np.array([LEVER, DOOR, START]), START))  # copy 1 ends
    assert env.done.tolist() == [False, True, False, False, False]
    books = env.episode_stats()
    _, rewards, _, _, infos = env.step(STAY)  # copy 1 is paid NaN, but none of its agents acted
    assert not rewards[1].any() and not infos["incentive"][1].any() and env.episode_steps.tolist() == [2, 1, 2, 2, 2]
    assert {k: v[1] for k, v in env.episode_stats().items()} == {k: v[1] for k, v in books.items()}


def test_budget_violations_name_the_batch_index() -> None:
    with pytest.raises(ValueError, match=r"^batch index 2: step 0: incentives sum to 6.0; \|sum\| exceeds "
                                         r"budget_per_step=2.0$"):
        started(copy_pays(2, 5.0), budget_per_step=2.0).step(STAY)
    env = started(copy_pays(4, 2.0, step=1), budget_per_episode=4.0)
    env.step(STAY)
    with pytest.raises(ValueError, match=r"^batch index 4: step 1: episode incentives would reach 4.5 \(1.5 so far "
                                         r"\+ 3.0 this step\), beyond budget_per_episode=4.0$"):
        env.step(STAY)


def test_wrong_payments_raise() -> None:
    with pytest.raises(ValueError, match=r"payments of shape \[B, N\] = \(5, 3\), got \(5,\)"):
        started(lambda ctx: np.zeros(B)).step(STAY)
    with pytest.raises(TypeError, match="must return numbers"):
        started(lambda ctx: np.full(ctx.shape, "1")).step(STAY)
    with pytest.raises(TypeError, match=r"batch index 0: incentive function must return a mapping"):
        started(PerCopy(lambda ctx: [1.0])).step(STAY)
    with pytest.raises(KeyError, match=r"batch index 0: step 0: incentive paid to unknown agents \['agent_7'\]"):
        started(PerCopy(lambda ctx: {"agent_7": 1.0})).step(STAY)
    with pytest.raises(TypeError, match=r"batch index 0: incentive for agent_1 at step 0 must be a number"):
        started(PerCopy(lambda ctx: {"agent_1": "1"})).step(STAY)
    with pytest.raises(FloatingPointError, match=r"batch index 0: incentive for agent_1 at step 0 is nan"):
        started(PerCopy(lambda ctx: {"agent_1": math.nan})).step(STAY)


class Rewarding(BaseParallelWrapper):
    """Every env reward of ``agent`` replaced by ``value`` from step ``at`` on."""

    def __init__(self, env: Any, value: float, agent: str = "agent_1", at: int = 0) -> None:
        super().__init__(env)
        self.value, self.agent, self.at, self.n = value, agent, at, 0

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple:
        self.n = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, actions: dict) -> tuple:
        obs, rew, term, trunc, infos = self.env.step(actions)
        self.n += 1
        return obs, {a: self.value if a == self.agent and self.n > self.at else r for a, r in rew.items()}, term, \
            trunc, infos


def batch_with(b: int, make: Callable[[], Any], n_envs: int = 3) -> PettingZooBatch:
    """A batch of ER(3, 1) whose copy ``b`` is ``make()``."""
    return PettingZooBatch([make if c == b else (lambda: escape_room(n_agents=3, min_at_lever=1))
                            for c in range(n_envs)])


def test_nonfinite_rewards_and_books_name_batch_index_agent_and_step() -> None:
    env = BatchedIncentiveWrapper(batch_with(2, lambda: Rewarding(er3(), math.nan, at=1)), BatchedAgentValues({}))
    env.reset(seed=0)
    env.step(STAY[:3])
    with pytest.raises(FloatingPointError, match=r"^batch index 2: env reward of agent_1 at step 1 is nan"):
        env.step(STAY[:3])
    huge = BatchedAgentValues({"agent_1": 1e308})
    env = BatchedIncentiveWrapper(batch_with(1, lambda: Rewarding(er3(), 1e308)), huge)
    env.reset(seed=0)
    with pytest.raises(FloatingPointError, match=r"^batch index 1: shaped reward of agent_1 at step 0 is inf"):
        env.step(STAY[:3])
    env = started(BatchedAgentValues({"agent_0": 1e308, "agent_1": 1e308}), n_envs=3)
    with pytest.raises(FloatingPointError, match=r"^batch index 0: step 0: the incentives paid this step would be "
                                                 r"inf \(this step: agent_0: 1e\+308, agent_1: 1e\+308, agent_2: 0.0"):
        env.step(STAY[:3])
    assert not env.episode_cost.any() and not env.episode_stats()["incentives_paid"].any()  # nothing booked
    env = BatchedIncentiveWrapper(batch_with(1, lambda: Rewarding(er3(), 1e308)), BatchedAgentValues({}))
    env.reset(seed=0)
    env.step(STAY[:3])
    with pytest.raises(FloatingPointError, match=r"^batch index 1: step 1: the episode welfare would be inf"):
        env.step(STAY[:3])


def test_budget_balanced_recentring_does_not_overflow() -> None:
    env = started(BatchedAgentValues({"agent_0": 1e308, "agent_1": 1e308}), n_envs=2, budget_balanced=True)
    _, rewards, _, _, infos = env.step(STAY[:2])
    assert np.isfinite(rewards).all() and infos["incentive"][1, 0] == pytest.approx(1e308 / 3)
    big = 1.7e308
    env = started(BatchedAgentValues({"agent_0": big, "agent_1": -big, "agent_2": -big}), budget_balanced=True)
    with pytest.raises(FloatingPointError, match=r"^batch index 0: budget-balanced incentive for agent_0 at step 0 "
                                                 r".*float range"):
        env.step(STAY)


# --------------------------------------------------------------------------------------------------------------
# Guards, nesting, copies


def test_call_order_guards() -> None:
    env = BatchedIncentiveWrapper(batch_of(er3, 2), BatchedAgentValues({}))
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(STAY[:2])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"batch index 1, agent_0: action 3 is outside Discrete\(3\)"):
        env.step(np.array([[0, 0, 0], [3, 0, 0]]))
    env.step(np.array([[LEVER, DOOR, DOOR]] * 2))
    assert env.done.all()
    with pytest.raises(RuntimeError, match="after the episode finished"):
        env.step(STAY[:2])
    assert pickle.loads(pickle.dumps(env)).episode_stats()["steps"].tolist() == [1.0, 1.0]


def test_nesting_and_mid_episode_copies_are_refused() -> None:
    inner = BatchedIncentiveWrapper(batch_of(er3, 2), BatchedAgentValues({}))
    with pytest.raises(ValueError, match="nest one BatchedIncentiveWrapper at most"):
        BatchedIncentiveWrapper(inner, BatchedAgentValues({}))
    with pytest.raises(ValueError, match="nest one incentive wrapper at most"):
        BatchedIncentiveWrapper(batch_of(lambda: IncentiveWrapper(er3(), AgentValues({})), 2), BatchedAgentValues({}))
    inner.reset(seed=0)
    inner.step(STAY[:2])
    with pytest.raises(RuntimeError, match="cannot copy BatchedIncentiveWrapper mid-episode"):
        copy.deepcopy(inner)


def test_set_incentive_swaps_the_function_from_the_next_step() -> None:
    env = started(BatchedAgentValues({"agent_0": 1.0}), n_envs=2)
    env.step(STAY[:2])
    env.set_incentive(PerCopy(AgentValues({"agent_1": 2.0})))
    _, _, _, _, infos = env.step(STAY[:2])
    assert infos["incentive"].tolist() == [[0.0, 2.0, 0.0]] * 2
    assert env.episode_incentives.tolist() == [[1.0, 2.0, 0.0]] * 2 and env.episode_cost.tolist() == [3.0, 3.0]
    with pytest.raises(KeyError, match="unknown agents"):
        env.set_incentive(BatchedAgentValues({"ghost": 1.0}))


def test_infos_keep_the_env_keys_and_add_the_fixed_schema() -> None:
    env = started(BatchedActionTable([2.0, 0.0, 0.5]), budget_per_step=1.0, on_budget="scale")
    _, rewards, _, _, infos = env.step(np.array([[START, START, DOOR]] * 4 + [[LEVER, START, START]]))
    assert set(infos) == {"position", "door_open", *ADDED_INFO_KEYS}
    assert infos["incentive"].dtype == np.float64 and infos["incentive_scaled"].dtype == np.bool_
    assert infos["incentive_scaled"][:, 0].tolist() == [False] * 4 + [True]
    assert np.array_equal(rewards, infos["env_reward"] + infos["incentive"])
    assert env.episode_stats()["incentives_paid"][:4].tolist() == [0.5] * 4
    assert env.episode_cost[4] == pytest.approx(1.0) and env.episode_cost[4] <= 1.0


# --------------------------------------------------------------------------------------------------------------
# Property: random payments and rules keep the budgets, the books add up, everything stays finite

rules_st = st.fixed_dictionaries({}, optional={
    "budget_per_step": st.floats(1e-3, 1e3), "budget_per_episode": st.floats(1e-3, 1e3),
    "on_budget": st.sampled_from(["raise", "scale"]), "budget_balanced": st.booleans()})
payments_st = hnp.arrays(np.float64, (6, 3, 3), elements=st.one_of(
    st.floats(-10, 10), st.floats(-1e300, 1e300), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324])))


@given(rules=rules_st, payments=payments_st, seed=st.integers(0, 100))
def test_random_payments_keep_budgets_and_books(rules: dict[str, Any], payments: np.ndarray, seed: int) -> None:
    env = BatchedIncentiveWrapper(batch_of(lambda: escape_room(n_agents=3, min_at_lever=1), 3),
                                  lambda ctx: payments[ctx.step.max()], **rules)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    paid, history, rewards_seen = np.zeros((3, 3)), [[] for _ in range(3)], [[] for _ in range(3)]
    while not env.done.all():
        live = env.active.any(axis=1)
        try:
            _, rewards, _, _, infos = env.step(rng.integers(0, 3, (3, 3)))
        except ValueError as e:  # raise mode
            assert rules.get("on_budget", "raise") == "raise" and str(e).startswith("batch index ")
            return
        except FloatingPointError as e:  # huge payments: a reward or an account would be infinite
            assert str(e).startswith("batch index ") and "step" in str(e)
            return
        assert np.isfinite(rewards).all() and all(np.isfinite(v).all() for v in env.episode_stats().values())
        assert np.array_equal(rewards, infos["env_reward"] + infos["incentive"])
        for b in np.flatnonzero(live):
            history[b] += infos["incentive"][b].tolist()
            rewards_seen[b] += infos["env_reward"][b].tolist()
            assert env.step_cost[b] == math.fsum(infos["incentive"][b])  # the exact sum, rounded once
        if "budget_per_step" in rules:
            assert (np.abs(env.step_cost) <= rules["budget_per_step"]).all()
        if "budget_per_episode" in rules:
            assert (np.abs(env.episode_cost) <= rules["budget_per_episode"]).all()
            assert all(abs(sum(map(Fraction, h))) <= rules["budget_per_episode"] for h in history)  # exactly
        paid += infos["incentive"]
    assert np.array_equal(env.episode_incentives, paid)
    stats = env.episode_stats()
    assert stats["incentives_paid"].tolist() == [math.fsum(h) for h in history]
    assert stats["welfare"].tolist() == [math.fsum(r) for r in rewards_seen]
    assert np.array_equal(stats["designer_net"], stats["welfare"] - stats["incentives_paid"])
