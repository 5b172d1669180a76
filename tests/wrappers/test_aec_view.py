"""The incentive wrapper's accounts on the AEC path: ``incentive(aec_env, fn)`` exposes them as the parallel one does.

For a parallelizable AEC game :func:`wrappers.incentive` converts to parallel, wraps and converts back; the result
(:class:`wrappers.IncentiveAECView`) has ``episode_stats()``, ``set_incentive()`` and the accounts itself, not
``env.env.env`` (issue #17).
"""

from __future__ import annotations

import pickle

import pytest
from pettingzoo.utils import BaseWrapper, aec_to_parallel

from incentive_envs.escape_room import DOOR, LEVER
from incentive_envs.escape_room import env as er_aec
from incentive_envs.escape_room import parallel_env as er_parallel
from wrappers import AgentValues, IncentiveAECView, IncentiveWrapper, StepContext, incentive

JOINT = {"agent_0": LEVER, "agent_1": DOOR}
"""ER(2, 1) in one step: agent_0 pulls the lever (-1), agent_1 escapes (+10)."""


def _pay_agent_0(ctx: StepContext) -> dict[str, float]:
    return {"agent_0": 1.0} if "agent_0" in ctx.agents else {}


def _play(env: IncentiveAECView) -> None:
    env.reset(seed=0)
    for agent in env.agent_iter():
        _, _, term, trunc, _ = env.last()
        env.step(None if term or trunc else JOINT[agent])


def test_episode_stats_on_the_aec_env_equal_the_parallel_ones() -> None:
    aec = incentive(er_aec(n_agents=2, min_at_lever=1), _pay_agent_0)
    assert isinstance(aec, IncentiveAECView)
    _play(aec)
    par = incentive(er_parallel(n_agents=2, min_at_lever=1), _pay_agent_0)
    par.reset(seed=0)
    par.step(JOINT)
    expected = {"welfare": 9.0, "incentives_paid": 1.0, "designer_net": 8.0, "steps": 1.0}
    assert aec.episode_stats() == par.episode_stats() == expected
    assert aec.episode_cost == 1.0 and aec.episode_welfare == 9.0 and aec.episode_steps == 1
    assert aec.last_payments == {"agent_0": 1.0, "agent_1": 0.0} and aec.step_cost == 1.0
    assert aec.episode_incentives == {"agent_0": 1.0, "agent_1": 0.0}
    assert aec.episode_env_rewards == {"agent_0": -1.0, "agent_1": 10.0}
    assert aec.last_context is not None and aec.last_context.actions == JOINT
    assert aec.rules.budget_per_step is None and aec.incentive_fn is _pay_agent_0


def test_set_incentive_on_the_aec_env_applies_from_the_next_episode_step() -> None:
    aec = incentive(er_aec(n_agents=2, min_at_lever=1), _pay_agent_0)
    aec.set_incentive(AgentValues({"agent_1": 2.0}))
    _play(aec)
    assert aec.episode_stats()["incentives_paid"] == 2.0 and aec.last_payments == {"agent_0": 0.0, "agent_1": 2.0}


def test_the_aec_view_converts_back_and_stays_a_pettingzoo_aec_env() -> None:
    aec = incentive(er_aec(n_agents=2, min_at_lever=1), _pay_agent_0)
    par = aec_to_parallel(aec)
    assert isinstance(par, IncentiveWrapper) and par is aec.incentive_wrapper
    assert isinstance(aec, BaseWrapper) and str(aec) == "IncentiveAECView<IncentiveWrapper<escape_room_v0>>"
    with pytest.raises(AttributeError, match="before reset"):
        _ = aec.infos  # PettingZoo's order enforcement is kept
    clone = pickle.loads(pickle.dumps(aec))  # before reset: copies are allowed
    _play(clone)
    assert clone.episode_stats()["steps"] == 1.0 and aec.episode_stats()["steps"] == 0.0


def test_books_reset_with_the_aec_env() -> None:
    aec = incentive(er_aec(n_agents=2, min_at_lever=1), _pay_agent_0)
    _play(aec)
    aec.reset(seed=1)
    assert aec.episode_stats() == {"welfare": 0.0, "incentives_paid": 0.0, "designer_net": 0.0, "steps": 0.0}
    assert aec.last_context is None
