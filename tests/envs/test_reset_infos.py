"""Reset infos have the same keys as step infos, per agent, for every registered game, bare and wrapped.

Libraries that size their info buffers from the reset infos (TorchRL's ``PettingZooWrapper``) crash when a step
writes a key the reset did not announce (issue #17). Checked on the parallel and AEC APIs, under the incentive
and tax wrappers, and on the Gymnasium views.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import numpy as np
import pytest
from pettingzoo import AECEnv, ParallelEnv

from incentive_envs import ENVS, EnvEntry, JointActionEnv, SingleAgentEnv
from tests.envs.test_conformance import ENTRIES, ENTRY_IDS, sample_action
from wrappers import ActionTable, StepContext, TaxRatesWrapper, TaxWrapper, incentive

STEPS = 12
"""Steps checked per episode: past the first tax period (``period=5`` below, 10 in Gather-Trade-Build)."""


def _pay_one(ctx: StepContext) -> dict[str, float]:
    return dict.fromkeys(ctx.agents, 1.0)


def _has_tax_interface(entry: EnvEntry) -> bool:
    """Whether TaxRatesWrapper applies (the game has a tax interface: Gather-Trade-Build)."""
    game = type(entry.load().parallel_env().unwrapped)
    return all(hasattr(game, name) for name in ("tax_cycle_position", "set_tax_rates", "tax_rates"))


def _taxes_itself(entry: EnvEntry) -> bool:
    """Gather-Trade-Build reports tax keys itself, so TaxWrapper refuses it (tests/wrappers/test_conformance.py)."""
    return _has_tax_interface(entry)


PARALLEL_CASES = [
    pytest.param(entry, view, id=f"{entry.name}-{view}")
    for entry in ENTRIES
    for view in ("bare", "incentive", "tax", "tax_rates")
    if (view != "tax" or not _taxes_itself(entry)) and (view != "tax_rates" or _has_tax_interface(entry))
]


def _parallel(entry: EnvEntry, view: str) -> ParallelEnv:
    env = entry.load().parallel_env()
    if view == "incentive":
        return incentive(env, _pay_one)
    if view == "tax":
        return TaxWrapper(env, rates=[0.1, 0.2], cutoffs=[0.0, 1.0], period=5)
    if view == "tax_rates":
        return TaxRatesWrapper(env, lambda obs: np.full(np.asarray(env.unwrapped.tax_rates).size, 0.1))
    return env


def _keys(infos: Mapping[str, Mapping[str, Any]]) -> dict[str, set[str]]:
    return {agent: set(info) for agent, info in infos.items()}


def _mismatches(reset_keys: Mapping[str, set[str]], infos: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per agent: (keys only the step has, keys only the reset has), for agents whose keys differ."""
    out = {}
    for agent, info in infos.items():
        at_reset = reset_keys.get(agent, set())
        if set(info) != at_reset:
            out[agent] = (sorted(set(info) - at_reset), sorted(at_reset - set(info)))
    return out


@pytest.mark.parametrize(("entry", "view"), PARALLEL_CASES)
def test_parallel_reset_infos_have_the_step_keys(entry: EnvEntry, view: str) -> None:
    env = _parallel(entry, view)
    obs, infos = env.reset(seed=0)
    assert set(infos) == set(env.agents) == set(obs), "reset infos name every live agent"
    reset_keys = _keys(infos)
    rng = np.random.default_rng(0)
    for step in range(STEPS):
        if not env.agents:
            break
        actions = {a: sample_action(a, env.action_space(a), rng) for a in env.agents}
        *_, infos = env.step(actions)
        assert not _mismatches(reset_keys, infos), f"step {step}: {_mismatches(reset_keys, infos)}"


def _aec(entry: EnvEntry, wrapped: bool) -> AECEnv:
    env = entry.load().env()
    return incentive(env, _pay_one) if wrapped else env


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "incentive"])
@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_aec_reset_infos_have_the_step_keys(entry: EnvEntry, wrapped: bool) -> None:
    env = _aec(entry, wrapped)
    env.reset(seed=0)
    assert set(env.infos) == set(env.agents)
    reset_keys = _keys(env.infos)
    rng = np.random.default_rng(0)
    for turn, agent in enumerate(env.agent_iter(max_iter=STEPS * len(env.possible_agents))):
        _, _, term, trunc, _ = env.last()
        env.step(None if term or trunc else sample_action(agent, env.action_space(agent), rng))
        assert not _mismatches(reset_keys, env.infos), f"turn {turn}: {_mismatches(reset_keys, env.infos)}"


def _gym_views(entry: EnvEntry) -> dict[str, Callable[[], gymnasium.Env]]:
    make = entry.load().parallel_env
    return {
        "joint": lambda: JointActionEnv(make),
        "single": lambda: SingleAgentEnv(make),
        "single_incentive": lambda: incentive(SingleAgentEnv(make), _pay_one),
    }


@pytest.mark.parametrize("view", ["joint", "single", "single_incentive"])
@pytest.mark.parametrize(
    "entry", [e for e in ENTRIES if e.name in ("escape_room", "ipd", "harvest")], ids=lambda e: e.name
)
def test_gym_view_reset_info_has_the_step_keys(entry: EnvEntry, view: str) -> None:
    """The Gymnasium views (and the incentive wrapper over one): the same top-level info keys at reset and step."""
    env = _gym_views(entry)[view]()
    _, info = env.reset(seed=0)
    for _ in range(3):
        _, _, term, trunc, step_info = env.step(env.action_space.sample())
        assert set(step_info) == set(info)
        if view == "joint":
            assert _keys(step_info["agent_infos"]) == _keys(info["agent_infos"])
        if term or trunc:
            break


def test_every_registered_game_is_checked() -> None:
    """A game added to ``ENVS`` is covered here without editing this file (unless its module is missing)."""
    assert [e.name for e in ENTRIES] == [e.name for e in ENVS]


def test_escape_room_reports_the_door_shut_at_reset() -> None:
    from incentive_envs.escape_room import batched_env, parallel_env

    _, infos = parallel_env(n_agents=2, min_at_lever=1).reset(seed=0)
    assert infos["agent_0"] == {"position": 1, "door_open": False}
    _, batch_infos = batched_env(3, n_agents=2, min_at_lever=1).reset(seed=0)
    assert batch_infos["door_open"].shape == (3, 2) and not batch_infos["door_open"].any()


def test_wrappers_report_neutral_values_at_reset() -> None:
    """Incentive keys at reset: no env reward, no payment, nothing scaled; tax keys: nothing earned or taxed,
    zero rates (none in force yet, one per bracket, as a step reports them)."""
    from incentive_envs.escape_room import parallel_env

    _, infos = incentive(parallel_env(n_agents=2, min_at_lever=1), ActionTable([1.0, 0.0, 0.0])).reset(seed=0)
    assert infos["agent_1"] == {"position": 1, "door_open": False, "env_reward": 0.0, "incentive": 0.0,
                                "incentive_scaled": False}
    tax = TaxWrapper(parallel_env(n_agents=2, min_at_lever=1), rates=[0.1, 0.2], cutoffs=[0.0, 1.0])
    _, infos = tax.reset(seed=0)
    assert {k: v for k, v in infos["agent_0"].items() if k not in ("position", "door_open")} == {
        "pretax_income": 0.0, "tax_paid": 0.0, "redistribution": 0.0, "marginal_rates": (0.0, 0.0)}
