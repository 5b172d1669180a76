"""IncentiveWrapper: reward decomposition, transparency, payment rules, accounting, guards, ModuleIncentive."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pettingzoo.utils import BaseParallelWrapper, parallel_to_aec

from incentive_envs.escape_room import DOOR, LEVER, START, parallel_env
from wrappers import (
    ADDED_INFO_KEYS,
    ActionTable,
    AgentValues,
    IncentiveWrapper,
    ModuleIncentive,
    StepContext,
    incentive,
    joint_action_features,
)

AGENTS = [f"agent_{i}" for i in range(3)]
actions_st = st.lists(st.lists(st.integers(0, 2), min_size=3, max_size=3), min_size=1, max_size=6)
values_st = st.lists(st.floats(-5, 5, allow_nan=False), min_size=3, max_size=3)


def er(**kwargs: object) -> object:
    return parallel_env(n_agents=3, min_at_lever=1, max_steps=4, **kwargs)


def zero(ctx: StepContext) -> dict[str, float]:
    return {}


def play(env: object, joint: list[list[int]], seed: int = 0) -> list[tuple]:
    env.reset(seed=seed)
    out = []
    for acts in joint:
        if not env.agents:
            break
        out.append(env.step({a: acts[i] for i, a in enumerate(AGENTS) if a in env.agents}))
    return out


@given(values=values_st, joint=actions_st, scale=st.floats(-2, 2, allow_nan=False))
def test_reward_is_env_reward_plus_incentive(values: list[float], joint: list[list[int]], scale: float) -> None:
    env = IncentiveWrapper(er(), ActionTable(values, scale=scale))
    bare = play(er(), joint)
    for (_, rew, _, _, infos), (_, base_rew, *_), acts in zip(play(env, joint), bare, joint):
        for i, agent in enumerate(rew):
            assert infos[agent]["env_reward"] == base_rew[agent]
            assert infos[agent]["incentive"] == scale * values[acts[i]]
            assert rew[agent] == infos[agent]["env_reward"] + infos[agent]["incentive"]


@given(joint=actions_st, seed=st.integers(0, 2**16), randomize=st.booleans())
def test_zero_incentive_is_transparent(joint: list[list[int]], seed: int, randomize: bool) -> None:
    wrapped = play(IncentiveWrapper(er(randomize=randomize), zero), joint, seed)
    bare = play(er(randomize=randomize), joint, seed)
    assert len(wrapped) == len(bare)
    for (obs, rew, term, trunc, infos), (b_obs, b_rew, b_term, b_trunc, b_infos) in zip(wrapped, bare):
        assert all(np.array_equal(obs[a], b_obs[a]) for a in b_obs) and obs.keys() == b_obs.keys()
        assert (rew, term, trunc) == (b_rew, b_term, b_trunc)
        assert {a: {k: v for k, v in i.items() if k not in ADDED_INFO_KEYS} for a, i in infos.items()} == b_infos
        assert all(i["incentive"] == 0.0 and i["incentive_scaled"] is False for i in infos.values())


@given(values=values_st, joint=actions_st)
def test_budget_balanced_payments_sum_to_zero(values: list[float], joint: list[list[int]]) -> None:
    env = IncentiveWrapper(er(), ActionTable(values), budget_balanced=True)
    for _, _, _, _, infos in play(env, joint):
        assert math.isclose(sum(i["incentive"] for i in infos.values()), 0.0, abs_tol=1e-12)
    assert math.isclose(env.episode_cost, 0.0, abs_tol=1e-9)


@given(values=values_st, joint=actions_st, step_budget=st.floats(0.01, 10), episode_budget=st.floats(0.01, 20))
def test_scale_keeps_sums_within_budgets(
    values: list[float], joint: list[list[int]], step_budget: float, episode_budget: float
) -> None:
    env = IncentiveWrapper(
        er(), ActionTable(values), budget_per_step=step_budget, budget_per_episode=episode_budget, on_budget="scale"
    )
    unscaled = IncentiveWrapper(er(), ActionTable(values))
    for (_, _, _, _, infos), (_, _, _, _, raw) in zip(play(env, joint), play(unscaled, joint)):
        paid = [i["incentive"] for i in infos.values()]
        assert abs(math.fsum(paid)) <= step_budget  # the exact sum is within budget, so is its rounding
        scaled = next(iter(infos.values()))["incentive_scaled"]
        if not scaled:
            assert paid == [i["incentive"] for i in raw.values()]
        else:  # one common factor in [0, 1): signs and ratios are kept
            factors = {p / r["incentive"] for p, r in zip(paid, raw.values()) if r["incentive"] != 0}
            assert all(0 <= f < 1 for f in factors) and (max(factors) - min(factors) <= 1e-9 if factors else True)
        assert abs(env.episode_cost) <= episode_budget


def test_accounting_over_one_episode() -> None:
    env = IncentiveWrapper(er(), ActionTable([2.0, 0.0, 0.5]))
    env.reset(seed=0)
    assert env.last_context is None and env.episode_stats()["steps"] == 0.0
    env.step({"agent_0": START, "agent_1": START, "agent_2": DOOR})  # door closed: rewards 0, 0, -1
    assert env.step_cost == 0.5 and env.last_payments == {"agent_0": 0.0, "agent_1": 0.0, "agent_2": 0.5}
    env.step({"agent_0": LEVER, "agent_1": DOOR, "agent_2": DOOR})  # door open: -1, +10, +10
    assert env.episode_env_rewards == {"agent_0": -1.0, "agent_1": 10.0, "agent_2": 9.0}
    assert env.episode_incentives == {"agent_0": 2.0, "agent_1": 0.5, "agent_2": 1.0}
    assert env.episode_stats() == {"welfare": 18.0, "incentives_paid": 3.5, "designer_net": 14.5, "steps": 2.0}
    assert env.last_context is not None and env.last_context.step == 1
    env.reset(seed=1)
    assert env.episode_cost == 0.0 and env.episode_incentives == {} and env.last_payments == {}


def test_context_holds_pre_step_state_and_env_infos() -> None:
    seen: list[StepContext] = []

    def spy(ctx: StepContext) -> dict[str, float]:
        seen.append(ctx)
        return {}

    env = IncentiveWrapper(er(), spy)
    env.reset(seed=0)
    before = env.state()
    env.step({"agent_0": LEVER, "agent_1": START, "agent_2": START})  # door opens, nobody escapes
    env.step({"agent_0": LEVER, "agent_1": LEVER, "agent_2": LEVER})
    ctx = seen[0]
    assert np.array_equal(ctx.designer_obs, before)
    assert not np.array_equal(seen[1].designer_obs, before)  # the state after step 0
    assert ctx.actions == {"agent_0": LEVER, "agent_1": START, "agent_2": START}
    assert ctx.env_rewards == {"agent_0": -1.0, "agent_1": 0.0, "agent_2": 0.0}
    assert ctx.infos["agent_0"] == {"position": LEVER, "door_open": True}
    assert (ctx.agents, ctx.possible_agents, ctx.step, seen[1].step) == (tuple(AGENTS), tuple(AGENTS), 0, 1)


def test_joint_action_features_is_state_then_onehot_actions() -> None:
    env = IncentiveWrapper(parallel_env(n_agents=2, min_at_lever=1), zero)
    env.reset(seed=0)
    env.step({"agent_0": LEVER, "agent_1": DOOR})
    x = joint_action_features(env.last_context)
    start_state = [0, 1, 0, 0, 1, 0]  # both agents at the start
    assert x.dtype == np.float32 and x.tolist() == [*start_state, 1, 0, 0, 0, 0, 1]


def test_joint_action_features_pads_missing_agents_and_rejects_boxes() -> None:
    from gymnasium import spaces

    disc, box = spaces.Discrete(2), spaces.Box(0, 1, (2,))
    ctx = StepContext(
        designer_obs={"a_0": np.array([0.5, 1.0], dtype=np.float32)},
        actions={"a_0": 1},
        env_rewards={"a_0": 0.0},
        infos={"a_0": {}},
        agents=("a_0",),
        possible_agents=("a_0", "a_1"),
        action_spaces={"a_0": disc, "a_1": disc},
        step=0,
        observation_spaces={"a_0": box, "a_1": box},
    )
    assert joint_action_features(ctx).tolist() == [0.5, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    with pytest.raises(TypeError, match="Discrete"):
        joint_action_features(StepContext(**{**ctx.__dict__, "action_spaces": {"a_0": box, "a_1": disc}}))


def _designer() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(18, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


@pytest.mark.parametrize("slots", ["action", "agent"])
def test_module_incentive_recomputed_with_gradients_equals_paid(slots: str) -> None:
    module = _designer()
    fn = ModuleIncentive(module, slots=slots, scale=2.0)
    env = IncentiveWrapper(er(), fn)
    env.reset(seed=0)
    logged = []
    for joint in ([LEVER, START, START], [DOOR, LEVER, LEVER]):
        _, _, _, _, infos = env.step(dict(zip(AGENTS, joint)))
        assert env.last_context is not None
        x, slot = fn.inputs(env.last_context)
        logged.append((x, slot, {a: i["incentive"] for a, i in infos.items()}))
    assert logged[0][1] == (
        {"agent_0": 0, "agent_1": 1, "agent_2": 2}
        if slots == "agent"
        else {"agent_0": LEVER, "agent_1": START, "agent_2": START}
    )
    for x, slot, paid in logged:
        out = module(torch.as_tensor(x)[None])[0]
        recomputed = fn.payments_from_outputs(out, slot)
        assert {a: float(v.detach()) for a, v in recomputed.items()} == paid
        torch.stack(list(recomputed.values())).sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
        module.zero_grad()


def test_module_incentive_checks() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        ModuleIncentive(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slots"):
        ModuleIncentive(_designer(), slots="both")  # type: ignore[arg-type]
    small = ModuleIncentive(torch.nn.Linear(18, 2))  # 2 outputs, 3 actions
    env = IncentiveWrapper(er(), small)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="slot 2 is outside the module output of size 2"):
        env.step({"agent_0": DOOR, "agent_1": 0, "agent_2": 0})
    nan_features = ModuleIncentive(_designer(), features=lambda ctx: np.full(18, np.nan))
    env = IncentiveWrapper(er(), nan_features)
    env.reset(seed=0)
    with pytest.raises(FloatingPointError, match="NaN"):
        env.step({"agent_0": 0, "agent_1": 0, "agent_2": 0})


def test_action_table_and_agent_values_validate_at_bind() -> None:
    with pytest.raises(ValueError, match=r"has 2 values but the action space Discrete\(3\) has 3"):
        IncentiveWrapper(er(), ActionTable([1.0, 2.0]))
    with pytest.raises(FloatingPointError, match="finite"):
        ActionTable([1.0, float("nan"), 0.0])
    with pytest.raises(KeyError, match="unknown agents"):
        IncentiveWrapper(er(), ActionTable({"agent_9": [0, 0, 0]}))
    with pytest.raises(KeyError, match="no values for agent_2"):
        IncentiveWrapper(er(), ActionTable({"agent_0": [0, 0, 0], "agent_1": [0, 0, 0]}))
    with pytest.raises(KeyError, match="unknown agents"):
        IncentiveWrapper(er(), AgentValues({"nobody": 1.0}))
    env = IncentiveWrapper(er(), AgentValues({"agent_1": 0.5}))
    env.reset(seed=0)
    _, rew, *_ = env.step({"agent_0": START, "agent_1": START, "agent_2": START})
    assert rew == {"agent_0": 0.0, "agent_1": 0.5, "agent_2": 0.0}


def test_set_incentive_swaps_function() -> None:
    env = IncentiveWrapper(er(), AgentValues({"agent_0": 1.0}))
    env.reset(seed=0)
    env.set_incentive(AgentValues({"agent_0": 3.0}))
    _, rew, *_ = env.step({"agent_0": START, "agent_1": START, "agent_2": START})
    assert rew["agent_0"] == 3.0
    with pytest.raises(TypeError, match="callable"):
        env.set_incentive(3.0)  # type: ignore[arg-type]


def test_passthrough_and_pickle() -> None:
    env = IncentiveWrapper(er(render_mode="ansi"), ActionTable([0.5, 0.0, -0.5]), budget_per_step=10.0)
    assert env.unwrapped is env.env.unwrapped and env.action_space("agent_0") is env.env.action_space("agent_0")
    clone = pickle.loads(pickle.dumps(env))  # before reset: mid-episode copies are refused (test_reliability)
    env.reset(seed=3)
    assert np.array_equal(env.state(), env.env.state()) and "step 0" in env.render()
    clone.reset(seed=3)
    joint = {"agent_0": LEVER, "agent_1": DOOR, "agent_2": START}
    a, b = env.step(joint), clone.step(joint)
    assert a[1] == b[1] and a[4] == b[4]
    env.close()


# --------------------------------------------------------------------------------------------------------------
# Guards (RELIABILITY.md §B.8)


def started(fn: object = zero, **kwargs: object) -> IncentiveWrapper:
    env = IncentiveWrapper(er(), fn, **kwargs)
    env.reset(seed=0)
    return env


OK = {"agent_0": START, "agent_1": START, "agent_2": START}


@pytest.mark.parametrize(
    ("payment", "error", "match"),
    [
        (float("nan"), FloatingPointError, r"incentive for agent_1 at step 0 is nan"),
        (float("inf"), FloatingPointError, r"incentive for agent_1 at step 0 is inf"),
        ("lots", TypeError, r"must be a number"),
    ],
)
def test_bad_payment_values_raise(payment: object, error: type, match: str) -> None:
    env = started(lambda ctx: {"agent_1": payment})
    with pytest.raises(error, match=match):
        env.step(OK)
    with pytest.raises(RuntimeError, match="previous step raised"):
        env.step(OK)


def test_payment_to_wrong_agents_raises() -> None:
    with pytest.raises(KeyError, match="unknown agents"):
        started(lambda ctx: {"agent_7": 1.0}).step(OK)
    with pytest.raises(TypeError, match="mapping"):
        started(lambda ctx: [1.0]).step(OK)

    env = started()
    ctx = StepContext(None, {"agent_0": 0}, {"agent_0": 0.0}, {"agent_0": {}}, ("agent_0",), tuple(AGENTS), {}, 4)
    with pytest.raises(KeyError, match=r"step 4: incentive paid to agents \['agent_1'\] that did not act"):
        env._settle({"agent_1": 1.0}, ctx)


def test_budget_and_sign_rules_raise() -> None:
    with pytest.raises(ValueError, match=r"step 0: incentives sum to 3.0; \|sum\| exceeds budget_per_step=2"):
        started(AgentValues({"agent_0": 3.0}), budget_per_step=2.0).step(OK)
    env = started(AgentValues({"agent_0": 1.5}), budget_per_episode=2.0)
    env.step(OK)
    with pytest.raises(ValueError, match=r"episode incentives would reach 3.0 .* budget_per_episode=2"):
        env.step(OK)
    with pytest.raises(ValueError, match=r"incentive for agent_0 at step 0 is -1.0 < 0 but nonnegative=True"):
        started(AgentValues({"agent_0": -1.0}), nonnegative=True).step(OK)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget_per_step": 0.0}, "budget_per_step"),
        ({"budget_per_episode": float("nan")}, "budget_per_episode"),
        ({"budget_per_step": float("inf")}, "budget_per_step"),
        ({"on_budget": "clip"}, "on_budget"),
        ({"nonnegative": True, "budget_balanced": True}, "only allow all-zero"),
        ({"budget_balanced": 1}, "bool"),
    ],
)
def test_invalid_rules_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IncentiveWrapper(er(), zero, **kwargs)


def test_call_order_and_action_guards() -> None:
    env = IncentiveWrapper(er(), zero)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(OK)
    env.reset(seed=0)
    with pytest.raises(KeyError, match=r"missing \['agent_2'\], unexpected \[\]"):
        env.step({"agent_0": 0, "agent_1": 0})
    with pytest.raises(KeyError, match=r"unexpected \['ghost'\]"):
        env.step({**OK, "ghost": 0})
    with pytest.raises(ValueError, match="agent_1: action 3 is outside Discrete"):
        env.step({**OK, "agent_1": 3})
    with pytest.raises(ValueError, match="options must be a dict"):
        env.reset(options="fast")  # type: ignore[arg-type]
    env.reset(seed=0)
    env.step({"agent_0": LEVER, "agent_1": DOOR, "agent_2": DOOR})  # door opens: episode over
    assert not env.agents
    with pytest.raises(RuntimeError, match="after the episode finished"):
        env.step(OK)


def test_nan_env_reward_raises() -> None:
    class NaNReward(BaseParallelWrapper):
        def step(self, actions: dict) -> tuple:
            obs, rew, term, trunc, infos = self.env.step(actions)
            return obs, {a: float("nan") for a in rew}, term, trunc, infos

    env = IncentiveWrapper(NaNReward(er()), zero)
    env.reset(seed=0)
    with pytest.raises(FloatingPointError, match="env reward of agent_0 at step 0 is nan"):
        env.step(OK)


def test_nested_wrappers_are_refused_at_construction() -> None:
    inner = IncentiveWrapper(er(), zero)
    with pytest.raises(ValueError, match="already wrapped by IncentiveWrapper; nest one incentive wrapper at most"):
        IncentiveWrapper(inner, zero)
    inner.reset(seed=0)
    inner.step(OK)  # the inner wrapper is untouched
    assert inner.episode_steps == 1


def test_dispatch_rejects_unknown_env_types() -> None:
    with pytest.raises(TypeError, match=r"ParallelEnv or AECEnv or a gymnasium\.Env"):
        incentive(object(), zero)
    with pytest.raises(TypeError, match="ParallelEnv"):
        IncentiveWrapper(parallel_to_aec(er()), zero)  # type: ignore[arg-type]


def test_aec_dispatch_of_a_parallelizable_env_keeps_reward_bookkeeping() -> None:
    from incentive_envs.escape_room import env as er_aec

    env = incentive(er_aec(n_agents=2, min_at_lever=1), AgentValues({"agent_0": 1.0}))
    env.reset(seed=0)
    env.step(LEVER)  # agent_0
    env.step(DOOR)  # agent_1: the parallel step happens here
    for agent, expected_env, expected_paid in (("agent_0", -1.0, 1.0), ("agent_1", 10.0, 0.0)):
        assert env.rewards[agent] == expected_env + expected_paid
        assert env.infos[agent]["env_reward"] == expected_env and env.infos[agent]["incentive"] == expected_paid
    _, cumulative, *_ = env.last()
    assert cumulative == env.rewards[env.agent_selection]


GUARDS_UNDER_O = """
import math
from incentive_envs.escape_room import parallel_env
from wrappers import IncentiveWrapper, TaxWrapper, incentive

def expect(error, call):
    try:
        call()
    except error:
        return
    raise SystemExit(f"{error.__name__} not raised")

env = IncentiveWrapper(parallel_env(n_agents=2, min_at_lever=1), lambda ctx: {"agent_0": math.nan})
expect(RuntimeError, lambda: env.step({"agent_0": 0, "agent_1": 0}))
env.reset(seed=0)
expect(ValueError, lambda: env.step({"agent_0": 5, "agent_1": 0}))
expect(KeyError, lambda: env.step({"agent_0": 0}))
expect(FloatingPointError, lambda: env.step({"agent_0": 1, "agent_1": 1}))
tax = TaxWrapper(parallel_env(n_agents=2, min_at_lever=1), rates=[0.5] * 7)
tax.reset(seed=0)
expect(ValueError, lambda: tax.step({"agent_0": 5, "agent_1": 0}))
print("guards hold")
"""


def test_guards_hold_under_python_O() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-O", "-c", GUARDS_UNDER_O], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "guards hold" in done.stdout, done.stderr + done.stdout
