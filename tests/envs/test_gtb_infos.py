"""Gather-Trade-Build infos have the same keys and value kinds at reset as at every step (issue #17).

Wrappers that build their specs from the reset infos (TorchRL's ``PettingZooWrapper``) need every per-step key
to be present at reset already, with a value of the same type and shape; at reset the values are neutral.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from incentive_envs import gather_trade_build as gtb_mod
from incentive_envs.economics import US_FEDERAL_2018_RATES
from incentive_envs.gtb import STEP_INFO_KEYS


def kind(value: Any) -> tuple[type, tuple[int, ...], str]:
    return type(value), np.shape(value), str(np.asarray(value).dtype)


def test_reset_infos_have_the_step_keys_and_kinds_for_every_agent():
    env = gtb_mod.parallel_env(max_cycles=20)
    _, reset_infos = env.reset(seed=3)
    env.set_tax_rates(US_FEDERAL_2018_RATES)
    assert set(reset_infos) == set(env.possible_agents)
    rng = np.random.default_rng(0)
    infos = reset_infos
    while env.agents:
        acts = {a: int((rng.random(50) * infos[a]["action_mask"]).argmax()) for a in env.agents}
        _, _, _, _, infos = env.step(acts)
        for agent in env.possible_agents:
            assert list(infos[agent]) == list(reset_infos[agent]) == list(STEP_INFO_KEYS)
            for key in STEP_INFO_KEYS:
                assert kind(infos[agent][key]) == kind(reset_infos[agent][key]), (agent, key)


def test_reset_infos_are_neutral():
    env = gtb_mod.parallel_env()
    _, infos = env.reset(seed=0)
    for agent, info in infos.items():
        assert info["coin"] == info["coin_pre_tax"] == 10.0, agent
        assert info["labour"] == info["income"] == info["tax_paid"] == info["lump_sum"] == 0.0, agent
        assert info["tax_enacted"] is False and info["tax_cycle_position"] == 1
        assert np.array_equal(info["marginal_rates"], np.zeros(7))
        assert info["action_mask"][0] == 1
        assert (info["productivity"], info["equality"], info["equality_times_productivity"]) == (40.0, 1.0, 40.0)


def test_houses_built_and_trades_count_this_episode():
    """``houses_built`` is the agent's count of houses on the map; each trade adds 1 to two agents' ``trades``
    (the trades of a step are the new entries of the market's price history)."""
    env = gtb_mod.parallel_env(max_cycles=300)
    _, infos = env.reset(seed=5)
    rng = np.random.default_rng(5)
    weights = np.ones(50)
    weights[1], weights[2:46] = 30.0, 4.0  # builds and orders often enough to see both
    s, decay = env.sim.s, env.sim.config.price_history_decay
    built_any = traded_any = False
    while env.agents:
        history = s.price_history.copy()
        before = np.array([infos[a]["trades"] for a in env.possible_agents])
        acts = {a: int((rng.random(50) * weights * infos[a]["action_mask"]).argmax()) for a in env.agents}
        _, _, _, _, infos = env.step(acts)
        s = env.sim.s
        houses = np.array([infos[a]["houses_built"] for a in env.possible_agents])
        trades = np.array([infos[a]["trades"] for a in env.possible_agents])
        assert np.array_equal(houses, [(s.owner[0] == i).sum() for i in range(len(houses))])
        new_trades = (s.price_history - decay * history).sum()
        assert np.isclose((trades - before).sum(), 2 * new_trades, atol=1e-6)
        built_any, traded_any = built_any or houses.sum() > 0, traded_any or trades.sum() > 0
    assert built_any and traded_any
    _, infos = env.reset(seed=6)
    assert all(infos[a]["houses_built"] == infos[a]["trades"] == 0.0 for a in env.possible_agents)
