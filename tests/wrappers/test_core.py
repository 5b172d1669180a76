"""The wrapper core and the shared validators: one guard, one context builder, no private cross-imports."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

import wrappers
from incentive_envs.escape_room import LEVER, START, parallel_env
from incentive_envs.gather_trade_build import parallel_env as gtb
from incentive_envs.validation import check_positive_int, finite_vector
from wrappers import IncentiveWrapper, ModuleIncentive, StepContext
from wrappers.core import EnvAgents, extend_infos
from wrappers.tax_rates import TaxRatesWrapper

AGENTS = ("agent_0", "agent_1", "agent_2")


def test_no_wrapper_module_imports_a_private_name_of_another() -> None:
    offenders = []
    for path in Path(wrappers.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.module is None:
                continue
            if node.module.split(".")[0] in ("wrappers", "incentive_envs"):
                names = [node.module.split(".")[-1], *(a.name for a in node.names)]
                offenders += [f"{path.name}: {node.module} {n}" for n in names if n.startswith("_")]
    assert not offenders


def test_finite_vector() -> None:
    out = finite_vector("v", [1, 2])
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"v must be a non-empty 1-D sequence, got shape \(0,\)"):
        finite_vector("v", [])
    with pytest.raises(ValueError, match=r"shape \(1, 2\)"):
        finite_vector("v", [[1.0, 2.0]])
    with pytest.raises(FloatingPointError, match=r"v must be finite, got \[1.0, nan\]"):
        finite_vector("v", [1.0, float("nan")])


@pytest.mark.parametrize("bad", [True, np.bool_(True), 3.0, "3", None])
def test_check_positive_int_rejects_bools_and_non_integers(bad: object) -> None:
    with pytest.raises(ValueError, match=r"n must be an integer >= 2, got"):
        check_positive_int("n", bad, minimum=2)


def test_check_positive_int_accepts_integers_at_the_minimum() -> None:
    assert check_positive_int("n", np.int64(2), minimum=2) == 2
    with pytest.raises(ValueError, match=r"n must be >= 2, got 1"):
        check_positive_int("n", 1, minimum=2)


def test_context_copies_what_the_env_may_change_later() -> None:
    disc = spaces.Discrete(2)
    agents = EnvAgents(("a", "b"), {"a": disc, "b": disc}, {"a": disc, "b": disc})
    actions, infos = {"a": 1}, {"a": {"k": 1}}
    ctx = agents.context("obs", actions, {"a": 0.5}, infos, ("a",), 3)
    actions["a"], infos["a"]["k"] = 0, 2
    assert ctx.actions == {"a": 1} and ctx.infos == {"a": {"k": 1}}
    assert (ctx.possible_agents, ctx.step, ctx.observation_spaces["b"]) == (("a", "b"), 3, disc)


def test_extend_infos_refuses_a_clash() -> None:
    assert extend_infos({"a": {"x": 1}}, lambda agent: {"y": agent}, "W") == {"a": {"x": 1, "y": "a"}}
    with pytest.raises(ValueError, match=r"infos\['a'\] already has \['x'\]; nest one W at most"):
        extend_infos({"a": {"x": 1}}, lambda agent: {"x": 2}, "W")


def test_module_incentive_pays_its_inputs_and_keeps_no_record() -> None:
    torch.manual_seed(0)
    fn = ModuleIncentive(torch.nn.Linear(18, 3), slots="action")
    env = IncentiveWrapper(parallel_env(n_agents=3), fn)
    env.reset(seed=0)
    _, _, _, _, infos = env.step(dict(zip(AGENTS, (LEVER, START, START))))
    ctx = env.last_context
    assert isinstance(ctx, StepContext)
    first, again = fn.inputs(ctx), fn.inputs(ctx)
    assert np.array_equal(first[0], again[0]) and first[1] == again[1]
    assert first[0].dtype == np.float32 and first[0].shape == (18,)
    assert fn.pay(first) == fn(ctx) == {a: i["incentive"] for a, i in infos.items()}
    assert not hasattr(fn, "last_inputs")


def test_tax_rates_wrapper_shares_the_guard_but_leaves_the_end_to_the_env() -> None:
    env = TaxRatesWrapper(gtb(max_cycles=2), lambda obs: [0.0] * 7)
    with pytest.raises(RuntimeError, match=r"step\(\) called before reset\(\); call reset\(\) first"):
        env.step({})
    env.reset(seed=0)
    while env.agents:
        env.step(dict.fromkeys(env.agents, 0))
    assert env.step({}) == ({}, {}, {}, {}, {})  # PettingZoo: step({}) on a finished env is a no-op
