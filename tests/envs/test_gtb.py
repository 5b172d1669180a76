"""Gather-Trade-Build: fidelity to Foundation's rules (method.md §3.3), API conformance and determinism."""

from __future__ import annotations

import pickle
import warnings

import gymnasium
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pettingzoo.test import (
    api_test,
    max_cycles_test,
    parallel_api_test,
    parallel_seed_test,
    render_test,
    seed_test,
    state_test,
)
from pettingzoo.utils import parallel_to_aec
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import incentive_envs  # noqa: F401  (registers the ids)
from incentive_envs import gather_trade_build as gtb_mod
from incentive_envs.economics import US_FEDERAL_2018_CUTOFFS, US_FEDERAL_2018_RATES, isoelastic_utility
from incentive_envs.gtb import ActionLayout, BatchedGTB, GTBConfig, load_layout, packaged_layouts, parse_layout
from incentive_envs.gtb.components import ASK, BID, STONE, WOOD
from incentive_envs.gtb.engine import orders_summary
from incentive_envs.gym_adapter import JointActionEnv, SingleAgentEnv

A = ActionLayout(11)
NOOP, BUILD = 0, 1
LEFT, RIGHT, UP, DOWN = (A.move(d) for d in range(4))
PAYMENTS = (11.33, 13.27, 16.47, 22.25)
CORNERS = ((0, 14), (14, 0), (0, 0), (14, 14))


def no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn(*args, **kwargs)
    assert not caught, [str(w.message) for w in caught]


def masked_random(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform over allowed actions, for any leading shape."""
    return (rng.random(mask.shape) * mask).argmax(-1)


OPEN_TILES = {0: (5, 4), 1: (5, 6), 2: (5, 8), 3: (5, 10)}  # open ground, away from sources


def sim_at(positions: dict[int, tuple[int, int]], seed: int = 0, **config) -> BatchedGTB:
    """A one-world engine after reset with agents on the given tiles (others on open ground, no resources)."""
    sim = BatchedGTB(1, config=GTBConfig(**config)) if config else BatchedGTB(1)
    sim.reset(seed=seed)
    s = sim.s
    s.occupant[:] = -1
    for i in range(4):
        r, c = positions.get(i, OPEN_TILES[i])
        s.pos[0, i] = (r, c)
        s.occupant[0, r, c] = i
    return sim


def act(sim: BatchedGTB, **by_agent: int):
    """Step one world; agents not named take the no-op. Refreshes the masks first, as tests edit the state."""
    sim.observe()
    acts = np.zeros((1, 4), dtype=np.int64)
    for key, a in by_agent.items():
        acts[0, int(key[1:])] = a
    return sim.step(acts)


# --------------------------------------------------------------------------- reset, skills, layout, actions
def test_reset_metrics_match_foundation():
    env = gtb_mod.parallel_env()
    _, infos = env.reset(seed=3)
    info = infos["agent_0"]
    assert info["productivity"] == 40.0 and info["equality"] == 1.0
    assert info["equality_times_productivity"] / 4 == 10.0
    assert env.metrics() == {"productivity": 40.0, "equality": 1.0, "equality_times_productivity": 40.0}


@pytest.mark.parametrize("seed", range(6))
def test_fixed_four_skills_and_corners(seed):
    sim = BatchedGTB(1)
    sim.reset(seed=seed)
    by_corner = {tuple(sim.s.pos[0, i]): sim.s.payment[0, i] for i in range(4)}
    assert by_corner == dict(zip(CORNERS, PAYMENTS))  # worst top-right ... best bottom-right


def test_slots_are_permuted_across_episodes():
    sim = BatchedGTB(1)
    sim.reset(seed=0)
    seen = set()
    for _ in range(30):
        sim.reset()
        seen.add(tuple(sim.s.payment[0]))
    assert len(seen) > 5


def test_layout_15x15_matches_method_md():
    lay = load_layout()
    assert lay.shape == (15, 15)
    assert lay.render().splitlines()[0] == "WWW....@......."
    assert lay.render().splitlines()[7] == "@@@@..@@@@..@@@"
    assert lay.render().splitlines()[14] == ".......@.....S."
    assert "env-pure_and_mixed-25x25" in packaged_layouts()
    big = load_layout("env-pure_and_mixed-25x25")
    assert big.shape == (25, 25) and big.stone[24, 24] and big.water[12, 0]


def test_layout_parsing_accepts_foundation_format_and_rejects_bad_maps():
    lay = parse_layout("WS @;    ;", "tiny")
    assert lay.shape == (2, 4) and lay.wood[0, 0] and lay.stone[0, 1] and lay.water[0, 3]
    with pytest.raises(ValueError, match="unknown symbols"):
        parse_layout("WX\n..")
    with pytest.raises(ValueError, match="row 1 has 1 tiles"):
        parse_layout("WW\n.")
    with pytest.raises(ValueError, match="unknown layout"):
        load_layout("no-such-map")


def test_action_layout_indices():
    assert A.n == 50
    assert [A.buy(STONE, 0), A.buy(STONE, 10), A.sell(STONE, 0), A.sell(STONE, 10)] == [2, 12, 13, 23]
    assert [A.buy(WOOD, 0), A.buy(WOOD, 10), A.sell(WOOD, 0), A.sell(WOOD, 10)] == [24, 34, 35, 45]
    assert [LEFT, RIGHT, UP, DOWN] == [46, 47, 48, 49]
    assert A.describe(13) == "sell_stone@0" and A.describe(49) == "move_down" and A.describe(1) == "build"


def test_reset_masks():
    sim = BatchedGTB(1)
    out = sim.reset(seed=0)
    mask = out.obs.action_mask[0]
    assert mask.dtype == np.int8 and (mask[:, NOOP] == 1).all() and (mask[:, BUILD] == 0).all()
    assert (mask[:, 2:13] == 1).all() and (mask[:, 24:35] == 1).all()  # 10 coin pays any price 0..10
    assert (mask[:, 13:24] == 0).all() and (mask[:, 35:46] == 0).all()  # nothing to sell
    for i in range(4):
        r, c = sim.s.pos[0, i]
        expected = [c > 0, c < 14, r > 0, r < 14]  # corners: two moves leave the map
        assert mask[i, 46:].tolist() == [int(e) for e in expected]


# --------------------------------------------------------------------------- Build
def test_build_requirements_payment_and_labour():
    sim = sim_at({0: (2, 5)})
    s = sim.s
    assert act(sim, a0=BUILD).obs.action_mask[0, 0, BUILD] == 0  # no resources: nothing happens
    assert s.owner[0, 2, 5] == -1 and s.labour[0, 0] == 0
    s.agent[0, 0, 1:3] = (1, 2)
    pay = s.payment[0, 0]
    assert sim.observe().action_mask[0, 0, BUILD] == 1
    out = act(sim, a0=BUILD)
    assert s.owner[0, 2, 5] == 0 and s.coin[0, 0] == 10 + pay and s.labour[0, 0] == 10
    assert s.goods[0, 0].tolist() == [0, 1]
    assert out.obs.action_mask[0, 0, BUILD] == 0  # the tile now holds a house
    assert out.reward[0, 0] == pytest.approx(
        isoelastic_utility(10 + pay, 10.0) - isoelastic_utility(10.0, 0.0), abs=1e-12
    )


def test_cannot_build_on_sources_and_owner_can_reenter_house():
    sim = sim_at({0: (0, 1), 1: (2, 5)})  # (0, 1) is a wood source
    s = sim.s
    s.agent[0, :, 1:3] = 3
    act(sim, a0=BUILD, a1=BUILD)
    assert s.owner[0, 0, 1] == -1 and s.owner[0, 2, 5] == 1
    act(sim, a1=RIGHT)
    act(sim, a1=LEFT)  # back onto its own house
    assert tuple(s.pos[0, 1]) == (2, 5)
    sim2 = sim_at({0: (2, 4), 1: (2, 5)})
    sim2.s.owner[0, 2, 5] = 1
    sim2.s.occupant[0, 2, 5] = -1
    sim2.s.pos[0, 1] = (3, 5)
    sim2.s.occupant[0, 3, 5] = 1
    assert sim2.observe().action_mask[0, 0, RIGHT] == 0  # someone else's house blocks
    act(sim2, a0=RIGHT)
    assert tuple(sim2.s.pos[0, 0]) == (2, 4) and sim2.s.labour[0, 0] == 0


# --------------------------------------------------------------------------- Market
def test_bid_and_ask_escrow_and_order_labour():
    sim = sim_at({})
    s = sim.s
    s.agent[0, 1, 1] = 2  # agent 1 holds 2 stone
    act(sim, a0=A.buy(WOOD, 7), a1=A.sell(STONE, 9))
    assert s.coin[0, 0] == 3 and s.escrow_coin[0, 0] == 7 and s.labour[0, 0] == 0.25
    assert s.goods[0, 1, STONE] == 1 and s.escrow_goods[0, 1, STONE] == 1 and s.labour[0, 1] == 0.25
    flat = sim.observe().flat[0]
    names = sim.flat_names
    assert flat[0, names.index("wood_my_bids_7")] == 1 and flat[1, names.index("wood_available_bids_7")] == 1
    assert flat[1, names.index("stone_my_asks_9")] == 1 and flat[0, names.index("stone_available_asks_9")] == 1
    # an unaffordable bid is not placed (masked actions are legal no-ops)
    act(sim, a0=A.buy(STONE, 5))
    assert s.coin[0, 0] == 3 and np.count_nonzero(s.order_kind[0, STONE, 0]) == 0


@pytest.mark.parametrize(
    ("first", "second", "price"),
    [
        (("a1", "sell", 3), ("a0", "buy", 8), 3),  # ask rested first: the ask's price
        (("a0", "buy", 8), ("a1", "sell", 3), 8),  # bid rested first: the bid's price
    ],
)
def test_trade_price_is_the_earlier_orders(first, second, price):
    sim = sim_at({})
    s = sim.s
    s.agent[0, 1, 1] = 1
    for who, side, p in (first, second):
        action = A.sell(STONE, p) if side == "sell" else A.buy(STONE, p)
        act(sim, **{who: action})
    assert s.coin[0, 0] == 10 - price and s.goods[0, 0, STONE] == 1 and s.escrow_coin[0, 0] == 0
    assert s.coin[0, 1] == 10 + price and s.escrow_goods[0, 1, STONE] == 0
    assert np.count_nonzero(s.order_kind) == 0
    assert s.price_history[0, STONE, price] == 1.0


def test_same_step_orders_trade_at_the_ask_price_and_best_prices_match_first():
    sim = sim_at({})
    s = sim.s
    s.agent[0, 2:, 1] = 1
    act(sim, a2=A.sell(STONE, 6))
    act(sim, a3=A.sell(STONE, 2))
    act(sim, a0=A.buy(STONE, 7), a1=A.buy(STONE, 9))
    # best bid (9, agent 1) meets the cheapest ask (2, agent 3) at the ask price; then 7 meets 6 at 6
    assert s.coin[0].tolist() == [4.0, 8.0, 16.0, 12.0]
    assert s.goods[0, :, STONE].tolist() == [1, 1, 0, 0]


def test_no_self_match():
    sim = sim_at({})
    s = sim.s
    s.agent[0, 0, 2] = 1
    act(sim, a0=A.sell(WOOD, 1))
    act(sim, a0=A.buy(WOOD, 5))
    assert np.count_nonzero(s.order_kind[0, WOOD, 0]) == 2 and s.goods[0, 0, WOOD] == 0
    assert orders_summary(sim) == [
        {"resource": "wood", "side": "ask", "agent": 0, "price": 1, "placed_at": 1},
        {"resource": "wood", "side": "bid", "agent": 0, "price": 5, "placed_at": 2},
    ]
    act(sim, a1=A.buy(WOOD, 4))  # another buyer takes agent 0's ask at its price
    assert s.coin[0, 1] == 9 and s.goods[0, 1, WOOD] == 1 and s.coin[0, 0] == 10 - 5 + 1


def test_order_limit_counts_bids_and_asks_per_resource():
    sim = sim_at({})
    s = sim.s
    s.agent[0, 0, 1] = 5
    for p in range(3):
        act(sim, a0=A.sell(STONE, 10 - p))
    act(sim, a0=A.buy(STONE, 0))
    out = act(sim, a0=A.buy(STONE, 1))
    assert np.count_nonzero(s.order_kind[0, STONE, 0]) == 5
    mask = out.obs.action_mask[0, 0]
    assert mask[2:24].sum() == 0 and mask[24:35].sum() == 10  # stone full; wood bids up to the 9 coin left
    act(sim, a0=A.sell(STONE, 4))
    assert np.count_nonzero(s.order_kind[0, STONE, 0]) == 5 and s.goods[0, 0, STONE] == 2


def test_expiry_refund_after_order_duration():
    sim = sim_at({})
    s = sim.s
    s.agent[0, 1, 2] = 1
    act(sim, a0=A.buy(STONE, 4), a1=A.sell(WOOD, 9))  # placed at step 1
    for _ in range(49):
        act(sim)
    assert s.timestep == 50 and s.escrow_coin[0, 0] == 4 and s.escrow_goods[0, 1, WOOD] == 1
    act(sim)  # step 51 = 1 + 50: refunded at its end
    assert s.escrow_coin[0, 0] == 0 and s.coin[0, 0] == 10 and s.goods[0, 1, WOOD] == 1
    assert np.count_nonzero(s.order_kind) == 0 and s.labour[0, 0] == 0.25


# --------------------------------------------------------------------------- Gather and regeneration
def test_move_collect_and_labour():
    sim = sim_at({0: (2, 4)})  # (2, 3) is open, (2, 2) is wood
    s = sim.s
    act(sim, a0=LEFT)
    assert tuple(s.pos[0, 0]) == (2, 3) and s.labour[0, 0] == 1 and s.goods[0, 0, WOOD] == 0
    act(sim, a0=LEFT)
    assert tuple(s.pos[0, 0]) == (2, 2) and s.goods[0, 0, WOOD] == 1 and s.labour[0, 0] == 3
    assert s.resource[0, WOOD, 2, 2] == 0
    act(sim, a0=RIGHT)
    act(sim, a0=RIGHT)
    act(sim, a0=RIGHT)
    act(sim, a0=RIGHT)
    assert tuple(s.pos[0, 0]) == (2, 6) and s.labour[0, 0] == 7
    act(sim, a0=RIGHT)  # (2, 7) is water: no move, no labour
    assert tuple(s.pos[0, 0]) == (2, 6) and s.labour[0, 0] == 7


def test_start_on_a_source_collects_at_step_one():
    sim = BatchedGTB(1)
    sim.reset(seed=0)
    at_origin = int(np.flatnonzero((sim.s.pos[0] == (0, 0)).all(-1))[0])
    act(sim)
    assert sim.s.goods[0, at_origin, WOOD] == 1 and sim.s.labour[0, at_origin] == 1


@pytest.mark.parametrize("first", [0, 1])
def test_move_conflicts_follow_the_random_order(first):
    sim = sim_at({0: (2, 4), 1: (2, 6)})
    sim._order[sim.s.timestep, 0] = [first, 1 - first, 2, 3]
    act(sim, a0=RIGHT, a1=LEFT)
    assert tuple(sim.s.pos[0, first]) == (2, 5)
    assert tuple(sim.s.pos[0, 1 - first]) == ((2, 4) if first == 1 else (2, 6))


def test_moving_into_a_tile_vacated_earlier_in_the_order():
    sim = sim_at({0: (5, 4), 1: (5, 5)})
    sim._order[sim.s.timestep, 0] = [1, 0, 2, 3]
    act(sim, a0=RIGHT, a1=RIGHT)
    assert tuple(sim.s.pos[0, 0]) == (5, 5) and tuple(sim.s.pos[0, 1]) == (5, 6)
    sim._order[sim.s.timestep, 0] = [0, 1, 2, 3]
    act(sim, a0=RIGHT, a1=RIGHT)  # agent 0 goes first into a still-occupied tile: blocked, no labour
    assert tuple(sim.s.pos[0, 0]) == (5, 5) and tuple(sim.s.pos[0, 1]) == (5, 7)
    assert sim.s.labour[0].tolist()[:2] == [1.0, 2.0]


def test_regeneration_probability_extremes_and_under_agents():
    sim = sim_at({0: (2, 3)}, regen_prob=1.0)
    act(sim, a0=LEFT)  # collect the wood at (2, 2); it regrows at the end of the same step
    assert sim.s.resource[0, WOOD, 2, 2] == 1 and sim.s.goods[0, 0, WOOD] == 1
    act(sim)  # standing agent collects the regrown unit
    assert sim.s.goods[0, 0, WOOD] == 2
    never = sim_at({0: (2, 3)}, regen_prob=0.0)
    act(never, a0=LEFT)
    for _ in range(20):
        act(never)
    assert never.s.resource[0, WOOD, 2, 2] == 0 and never.s.goods[0, 0, WOOD] == 1


def test_regeneration_rate_is_one_percent():
    sim = BatchedGTB(1)
    sim.reset(seed=1)
    assert sim._regrow.mean() == pytest.approx(0.01, abs=0.003)


# --------------------------------------------------------------------------- Tax
def us_tax(income: float) -> float:
    cut = (*US_FEDERAL_2018_CUTOFFS, np.inf)
    return sum(r * min(max(income - cut[b], 0.0), cut[b + 1] - cut[b]) for b, r in enumerate(US_FEDERAL_2018_RATES))


def test_tax_arithmetic_limits_and_lump_sum():
    sim = sim_at({})
    sim.set_tax_rates(US_FEDERAL_2018_RATES)
    s = sim.s
    act(sim)
    incomes = [0.0, 50.0, 300.0, 700.0]
    s.agent[0, :, 0] = 10 + np.array(incomes)
    # agent 3 locks most of its coin in escrow: tax is only taken from inventory coin
    s.agent[0, 3, 0], s.agent[0, 3, 3] = 5.0, 705.0
    for _ in range(8):
        act(sim)
    before = s.total_coin.sum()
    out = act(sim)  # step 10: enactment
    due = [us_tax(z) for z in incomes]
    assert due[1] == pytest.approx(0.1 * 9.7 + 0.12 * (39.475 - 9.7) + 0.22 * (50 - 39.475))
    paid = [due[0], due[1], due[2], 5.0]
    assert out.tax_enacted and out.tax_paid[0].tolist() == pytest.approx(paid, abs=1e-12)
    assert out.income[0].tolist() == pytest.approx(incomes)
    assert out.lump_sum[0].tolist() == pytest.approx([sum(paid) / 4] * 4)
    assert s.total_coin.sum() == pytest.approx(before, abs=1e-9)  # redistribution conserves coin
    assert s.coin[0, 3] == pytest.approx(sum(paid) / 4)
    assert out.coin_pre_tax[0].tolist() == pytest.approx((10 + np.array(incomes)).tolist())
    assert s.last_marginal_rate[0].tolist() == [0.1, 0.22, 0.35, 0.37]
    nxt = act(sim)  # income is measured from the post-redistribution coin
    assert nxt.income[0].tolist() == pytest.approx([0.0] * 4, abs=1e-12) and not nxt.tax_enacted


def test_negative_income_pays_nothing():
    sim = sim_at({})
    sim.set_tax_rates([0.5] * 7)
    s = sim.s
    s.agent[0, 1, 1] = 1
    act(sim, a1=A.sell(STONE, 0))
    out = act(sim, a0=A.buy(STONE, 10))  # buyer pays the ask price 0; nobody has negative coin
    s.agent[0, 2, 0] = 4.0  # agent 2 loses 6 coin this period
    for _ in range(8):
        out = act(sim)
    assert out.tax_enacted and out.tax_paid[0, 2] == 0 and out.income[0, 2] == -6
    assert s.last_marginal_rate[0, 2] == 0


def test_rates_take_effect_at_the_next_period_and_validation():
    env = gtb_mod.parallel_env()
    with pytest.raises(RuntimeError, match="reset"):
        env.set_tax_rates([0.1] * 7)
    env.reset(seed=0)
    assert env.tax_cycle_position == 1
    env.set_tax_rates([0.2] * 7)
    _, _, _, _, infos = env.step(dict.fromkeys(env.agents, 0))
    assert infos["agent_0"]["marginal_rates"].tolist() == [0.2] * 7 and env.tax_cycle_position == 2
    env.set_tax_rates([0.3] * 7)  # mid-period: waits for step 11
    for _ in range(9):
        _, _, _, _, infos = env.step(dict.fromkeys(env.agents, 0))
    assert infos["agent_0"]["marginal_rates"].tolist() == [0.2] * 7 and infos["agent_0"]["tax_enacted"]
    _, _, _, _, infos = env.step(dict.fromkeys(env.agents, 0))
    assert infos["agent_0"]["marginal_rates"].tolist() == [0.3] * 7
    with pytest.raises(ValueError, match="7 marginal rates"):
        env.set_tax_rates([0.1] * 6)
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        env.set_tax_rates([0.1] * 6 + [1.5])
    with pytest.raises(FloatingPointError):
        env.set_tax_rates([0.1] * 6 + [float("nan")])


@pytest.mark.parametrize(
    ("rates", "match"),
    [
        (["0.1"] * 7, "bracket 0 .*'0.1' \\(str\\)"),
        ([0.1] * 6 + [True], "bracket 6 .*True \\(bool\\)"),
        ([0.1, False] + [0.1] * 5, "bracket 1 .*False"),
        ([0.1] * 6 + [None], "bracket 6 .*None"),
        ([0.1] * 3 + [0.2j] + [0.1] * 3, "bracket 3"),
        (np.ones(7, dtype=bool), "bracket 0 .*bool"),
        (np.array(["0.1"] * 7), "bracket 0 .*str"),
    ],
)
def test_set_tax_rates_rejects_non_numbers_naming_the_bracket(rates, match):
    env = gtb_mod.parallel_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.set_tax_rates(rates)
    assert env.sim.s is not None and not env.sim.s.has_pending.any()  # nothing was set
    sim = BatchedGTB(2)
    sim.reset(seed=0)
    with pytest.raises(ValueError, match="world 1, bracket 6"):
        sim.set_tax_rates([[0.1] * 7, [0.1] * 6 + ["x"]])
    with pytest.raises(ValueError, match="initial_tax_rates: the rate of bracket"):
        BatchedGTB(1, initial_tax_rates=rates)


@pytest.mark.parametrize(
    "rates", [[0] * 7, [1] * 7, np.zeros(7, dtype=np.int64), np.full(7, 0.5, dtype=np.float32), (0.1,) * 7,
              [np.float64(0.2)] * 7, [np.int32(0)] * 7],
)
def test_set_tax_rates_takes_any_real_numbers(rates):
    env = gtb_mod.parallel_env()
    env.reset(seed=0)
    env.set_tax_rates(rates)
    _, _, _, _, infos = env.step(dict.fromkeys(env.agents, 0))
    assert infos["agent_0"]["marginal_rates"].tolist() == np.asarray(rates, dtype=np.float64).tolist()


def test_set_tax_rates_after_the_episode_ended_raises():
    """The rates could never apply (reset restores the initial rates), so they are not silently dropped."""
    env = gtb_mod.parallel_env(max_cycles=3)
    env.reset(seed=0)
    while env.agents:
        env.step(dict.fromkeys(env.agents, 0))
    with pytest.raises(RuntimeError, match=r"episode finished.*reset"):
        env.set_tax_rates([0.1] * 7)
    env.reset(seed=0)
    env.set_tax_rates([0.1] * 7)  # a fresh episode takes them
    sim = BatchedGTB(2)
    sim.set_episode_length(1)
    sim.reset(seed=0)
    sim.step(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(RuntimeError, match="episode finished"):
        sim.set_tax_rates([0.1] * 7)


@pytest.mark.parametrize("seed", [1.5, True, False, "abc", np.float64(2.0), -1, [3]])
def test_reset_rejects_bad_seeds_with_gymnasiums_error(seed):
    """Like the other envs (Gymnasium's ``seeding.np_random``): ``gymnasium.error.Error`` naming the seed's type."""
    env = gtb_mod.parallel_env()
    with pytest.raises(gymnasium.error.Error, match="Seed must be"):
        env.reset(seed=seed)


@pytest.mark.parametrize("seed", [1.5, True, "abc", [0, 1.5], [0, True], ["a", "b"], {0: 1}])
def test_batched_reset_rejects_bad_seeds(seed):
    sim = BatchedGTB(2)
    with pytest.raises(gymnasium.error.Error, match="Seed must be"):
        sim.reset(seed=seed)
    with pytest.raises(ValueError, match="one seed per world"):
        sim.reset(seed=[0, 1, 2])


def test_reset_seed_matches_other_envs_message():
    from incentive_envs import escape_room

    for seed in (1.5, "abc", -1):
        with pytest.raises(gymnasium.error.Error) as ours:
            gtb_mod.parallel_env().reset(seed=seed)
        with pytest.raises(gymnasium.error.Error) as theirs:
            escape_room.parallel_env().reset(seed=seed)
        assert str(ours.value) == str(theirs.value)


def test_integer_seeds_still_work():
    env = gtb_mod.parallel_env()
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=np.int64(3))
    c, _ = env.reset(seed=2**70)
    assert all(np.array_equal(a[k], b[k]) for k in a) and set(c) == set(a)
    sim = BatchedGTB(2)
    sim.reset(seed=(5, np.int64(6)))
    sim.reset(seed=np.array([5, 6]))


# --------------------------------------------------------------------------- rewards, infos, state
def test_reward_is_utility_change_and_rebuildable_from_infos():
    env = gtb_mod.parallel_env()
    _, infos = env.reset(seed=4)
    env.set_tax_rates(US_FEDERAL_2018_RATES)
    rng = np.random.default_rng(0)
    prev = {a: isoelastic_utility(10.0, 0.0) for a in env.agents}
    while env.agents:
        acts = {a: int(masked_random(infos[a]["action_mask"], rng)) for a in env.agents}
        _, rewards, _, _, infos = env.step(acts)
        for a, info in infos.items():
            coin = info["coin_pre_tax"] - info["tax_paid"] + info["lump_sum"]
            assert coin == pytest.approx(info["coin"], abs=1e-9)
            u = isoelastic_utility(coin, info["labour"])
            assert rewards[a] == pytest.approx(u - prev[a], abs=1e-9)
            assert u == pytest.approx((max(coin, 0.01) ** 0.77 - 1) / 0.77 - 0.21 * info["labour"], abs=1e-9)
            prev[a] = u


def test_state_is_the_full_planner_view():
    env = gtb_mod.parallel_env()
    env.reset(seed=0)
    state = env.state()
    assert state.shape == env.state_space.shape and env.state_space.contains(state)
    map_part = state[: 8 * 225].reshape(8, 15, 15)
    lay = load_layout()
    assert (map_part[2] == lay.stone).all() and (map_part[3] == lay.wood).all() and (map_part[4] == lay.water).all()
    sim = env.sim
    for i in range(4):
        r, c = sim.s.pos[0, i]
        assert map_part[7, r, c] == i + 2
    names = sim.state_names
    agent_cols = state[8 * 225 :]
    assert agent_cols[names.index("agent_3_inventory_coin")] == pytest.approx(0.1)
    assert agent_cols[names.index("agent_2_build_payment")] == pytest.approx(sim.s.payment[0, 2] / 10)


def test_egocentric_view_and_observation_layout():
    env = gtb_mod.parallel_env()
    obs, _ = env.reset(seed=0)
    sim = env.sim
    i = int(np.flatnonzero((sim.s.pos[0] == (0, 0)).all(-1))[0])
    parts = env.split_observation(obs[f"agent_{i}"])
    spatial = parts["spatial"]
    assert spatial.shape == (9, 11, 11) and len(sim.flat_names) == parts["flat"].size == 138
    assert spatial[8, 5, 5] == 1  # self at the centre
    assert spatial[6, 5, 5:].all() and not spatial[6, :5].any()  # outside the map above and left
    assert spatial[1, 5, 5] == 1 and spatial[1, 5, 6] == 1  # wood at (0, 0) and (0, 1)
    assert (parts["action_mask"] == env.sim.observe().action_mask[0, i]).all()
    d = gtb_mod.parallel_env(observation_mode="dict")
    dobs, _ = d.reset(seed=0)
    assert (dobs[f"agent_{i}"]["spatial"] == spatial).all()
    assert d.observation_space(f"agent_{i}").contains(dobs[f"agent_{i}"])


def test_render_ansi():
    env = gtb_mod.parallel_env(render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert isinstance(text, str) and text.splitlines()[1][1:3] == "WW" and "agent_3: coin 10.00" in text


# --------------------------------------------------------------------------- determinism and batching
def rollout(env, seed: int, act_seed: int):
    obs, infos = env.reset(seed=seed)
    env.set_tax_rates(US_FEDERAL_2018_RATES)
    rng = np.random.default_rng(act_seed)
    trace = []
    while env.agents:
        acts = {a: int(masked_random(infos[a]["action_mask"], rng)) for a in env.agents}
        obs, rewards, _, _, infos = env.step(acts)
        trace.append((acts, {a: o.copy() for a, o in obs.items()}, rewards, infos))
    return trace


def test_multi_step_determinism_and_seed_sensitivity():
    a, b = rollout(gtb_mod.parallel_env(), 7, 1), rollout(gtb_mod.parallel_env(), 7, 1)
    assert len(a) == len(b) == 100
    for t, (x, y) in enumerate(zip(a, b)):
        assert x[0] == y[0] and x[2] == y[2], t
        for agent in x[1]:
            assert np.array_equal(x[1][agent], y[1][agent]), (t, agent)
    c = rollout(gtb_mod.parallel_env(), 8, 1)
    assert any(not np.array_equal(x[1]["agent_0"], z[1]["agent_0"]) for x, z in zip(a, c))


def test_batched_worlds_replay_single_envs():
    seeds = [11, 12, 13]
    batch = BatchedGTB(3)
    singles = [BatchedGTB(1) for _ in seeds]
    out = batch.reset(seed=seeds)
    outs = [s.reset(seed=x) for s, x in zip(singles, seeds)]
    batch.set_tax_rates(np.array([[0.1] * 7, [0.5] * 7, US_FEDERAL_2018_RATES]))
    for s, r in zip(singles, ([0.1] * 7, [0.5] * 7, US_FEDERAL_2018_RATES)):
        s.set_tax_rates(r)
    rng = np.random.default_rng(0)
    for _ in range(100):
        acts = masked_random(out.obs.action_mask, rng)
        out = batch.step(acts)
        outs = [s.step(acts[j : j + 1]) for j, s in enumerate(singles)]
        for j, o in enumerate(outs):
            assert np.array_equal(o.reward[0], out.reward[j])
            assert np.array_equal(o.obs.flat[0], out.obs.flat[j])
            assert np.array_equal(o.obs.spatial[0], out.obs.spatial[j])
            assert np.array_equal(o.obs.action_mask[0], out.obs.action_mask[j])
    assert out.done and all(o.done for o in outs)
    assert np.array_equal(batch.state()[1], singles[1].state()[0])


def test_batched_api_errors():
    sim = BatchedGTB(2)
    with pytest.raises(RuntimeError, match="reset"):
        sim.step(np.zeros((2, 4), dtype=np.int64))
    sim.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        sim.step(np.zeros((1, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="integers"):
        sim.step(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"0\.\.49"):
        sim.step(np.full((2, 4), 50))
    with pytest.raises(ValueError, match="one seed per world"):
        sim.reset(seed=[1])
    with pytest.raises(ValueError, match="n_envs"):
        BatchedGTB(0)
    with pytest.raises(ValueError, match="regen_prob"):
        GTBConfig(regen_prob=1.5)
    sim.set_episode_length(2)
    sim.reset()
    sim.step(np.zeros((2, 4), dtype=np.int64))
    assert sim.step(np.zeros((2, 4), dtype=np.int64)).done
    with pytest.raises(RuntimeError, match="finished"):
        sim.step(np.zeros((2, 4), dtype=np.int64))


def test_env_errors_and_pickle():
    env = gtb_mod.parallel_env(max_cycles=5)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({a: 0 for a in env.possible_agents})
    env.reset(seed=0)
    with pytest.raises(KeyError, match="missing"):
        env.step({"agent_0": 0})
    with pytest.raises(ValueError, match="outside"):
        env.step({a: 50 for a in env.agents})
    with pytest.raises(ValueError, match="observation_mode"):
        gtb_mod.parallel_env(observation_mode="image")
    clone = pickle.loads(pickle.dumps(env))
    assert rollout(clone, 3, 0)[-1][2] == rollout(gtb_mod.parallel_env(max_cycles=5), 3, 0)[-1][2]


# --------------------------------------------------------------------------- properties
@given(seed=st.integers(0, 2**16), act_seed=st.integers(0, 2**16))
def test_invariants_under_random_play(seed, act_seed):
    sim = BatchedGTB(2, config=GTBConfig(episode_length=40))
    out = sim.reset(seed=seed)
    sim.set_tax_rates([0.3] * 7)
    rng = np.random.default_rng(act_seed)
    for _ in range(40):
        s = sim.s
        before = s.total_coin.sum(-1)
        owner_before = s.owner.copy()
        out = sim.step(masked_random(out.obs.action_mask, rng))
        built = (s.owner >= 0) & (owner_before < 0)  # new houses: only build payments create coin
        earned = np.array([s.payment[b, s.owner[b][built[b]]].sum() for b in range(2)])
        assert np.allclose(s.total_coin.sum(-1) - before, earned, atol=1e-9)
        assert (s.agent >= 0).all()  # inventories, escrow and labour never negative
        assert (out.obs.action_mask[..., 0] == 1).all()
        kinds = s.order_kind
        assert np.array_equal((kinds == BID).sum(-1).sum(-1), s.my_bids.sum((1, 3)).round())
        assert np.array_equal((kinds == ASK).sum(-1).sum(-1), s.my_asks.sum((1, 3)).round())
        escrow = np.where(kinds == BID, s.order_price, 0).sum((1, 3))
        assert np.allclose(escrow, s.escrow_coin)
        assert ((s.occupant >= 0).sum((1, 2)) == 4).all()


# --------------------------------------------------------------------------- conformance (no warnings)
def test_pettingzoo_conformance_without_warnings():
    no_warnings(parallel_api_test, gtb_mod.parallel_env(), num_cycles=150)
    no_warnings(api_test, gtb_mod.env(), num_cycles=150)
    # Dict observations are supported too; PettingZoo's AEC api_test warns that they are not a Box (by design).
    no_warnings(parallel_api_test, gtb_mod.parallel_env(observation_mode="dict"), num_cycles=20)
    api_test(parallel_to_aec(gtb_mod.parallel_env(observation_mode="dict")), num_cycles=20)
    no_warnings(seed_test, lambda: gtb_mod.env(max_cycles=30), num_cycles=60)
    no_warnings(parallel_seed_test, lambda: gtb_mod.parallel_env(max_cycles=30), num_cycles=60)
    no_warnings(max_cycles_test, gtb_mod)
    no_warnings(render_test, lambda render_mode=None: gtb_mod.env(render_mode=render_mode))
    no_warnings(state_test, gtb_mod.env(), gtb_mod.parallel_env(), num_cycles=30)


def test_gymnasium_and_sb3_checks_without_warnings():
    from gymnasium.utils.env_checker import check_env

    no_warnings(check_env, gymnasium.make("incentive_envs/GatherTradeBuild-v0").unwrapped)
    no_warnings(check_env, gymnasium.make("incentive_envs/GatherTradeBuildSingleAgent-v0").unwrapped)
    no_warnings(sb3_check_env, JointActionEnv(gtb_mod.parallel_env))
    no_warnings(sb3_check_env, SingleAgentEnv(gtb_mod.parallel_env))


def test_other_layouts_run_conformance(tmp_path):
    no_warnings(parallel_api_test, gtb_mod.parallel_env(layout="env-pure_and_mixed-25x25", max_cycles=30), 30)
    env = gtb_mod.parallel_env(layout="env-pure_and_mixed-25x25")
    obs, _ = env.reset(seed=0)
    assert env.state().shape == (8 * 625 + 83 + 4 * 13,) and obs["agent_0"].shape == (1089 + 138 + 50,)
    assert {tuple(p) for p in env.sim.s.pos[0]} == {(0, 24), (24, 0), (0, 0), (24, 24)}
    path = tmp_path / "tiny.txt"
    path.write_text("W.....\n......\n..@@..\n......\n.....S\n")
    tiny = gtb_mod.parallel_env(layout=str(path), max_cycles=10)
    tiny.reset(seed=0)
    assert tiny.sim.layout.shape == (5, 6) and tiny.state().shape == (8 * 30 + 83 + 52,)
    no_warnings(parallel_api_test, tiny, 10)


def test_editing_a_returned_mask_does_not_change_the_rules():
    sim = sim_at({})
    out = sim.step(np.zeros((1, 4), dtype=np.int64))
    out.obs.action_mask[:] = 0  # a caller scribbling on its copy
    sim.step(np.full((1, 4), A.buy(STONE, 3), dtype=np.int64))
    assert (sim.s.escrow_coin[0] == 3).all()
