"""What GTB publishes for designers (incentive_envs.gtb.schema) equals what the env itself does.

- :class:`GTBSchema` sizes equal the env's spaces; its decoders equal the engine's internal values (NumPy and
  torch) over random play with random tax rates.
- :data:`STEP_INFO_KEYS` are exactly the keys of the env's infos.
- The env's reward at every step equals ``agent_reward(coin_pre_tax - paid + lump, labour, utility_before)``
  with ``(paid, lump) = period_tax(income, rates, coin_pre_tax - escrow_after_step)`` on enactment steps: the
  contract a designer's (differentiable) reward rebuild relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from incentive_envs import gather_trade_build as gtb_mod
from incentive_envs.economics import US_FEDERAL_2018_CUTOFFS, isoelastic_utility
from incentive_envs.gtb import (
    STEP_INFO_KEYS,
    BatchedGTB,
    GTBConfig,
    GTBSchema,
    agent_reward,
    packaged_layouts,
    period_tax,
    utility,
)

TOL = 1e-9
CONFIGS = {
    "default": GTBConfig(),
    "small_view_few_prices_3_brackets": GTBConfig(view_radius=3, max_price=5, max_orders=3,
                                                  tax_cutoffs=(0.0, 10.0, 50.0)),
}
# GTBConfig fixes n_agents = len(build_payments) = 4 (one agent per start corner), so it is not varied here.


@pytest.mark.parametrize("layout", packaged_layouts())
@pytest.mark.parametrize("config_name", sorted(CONFIGS))
def test_schema_sizes_equal_the_env_spaces(layout: str, config_name: str) -> None:
    config = CONFIGS[config_name]
    env = gtb_mod.parallel_env(layout=layout, config=config)
    schema = env.schema
    assert schema == GTBSchema.of(config, layout)
    assert schema.config is config and schema.n_agents == len(env.possible_agents) == 4
    assert env.observation_space("agent_0").shape == (schema.obs_size,)
    assert env.state_space.shape == (schema.state_size,)
    assert env.action_space("agent_0").n == schema.mask_size
    assert schema.map_shape[1:] == env.sim.layout.shape
    assert (schema.tax_period, schema.tax_cutoffs) == (config.tax_period, tuple(config.tax_cutoffs))
    obs, _ = env.reset(seed=0)
    assert schema.n_brackets == env.tax_rates.shape[0]
    dict_env = gtb_mod.parallel_env(layout=layout, config=config, observation_mode="dict")
    parts, _ = dict_env.reset(seed=0)
    part = parts["agent_0"]
    assert part["spatial"].shape == schema.spatial_shape
    assert part["flat"].shape == (schema.flat_size,)
    assert part["action_mask"].shape == (schema.mask_size,)
    # The flat observation packs exactly these parts in this order.
    packed = np.concatenate([part["spatial"].reshape(-1), part["flat"], part["action_mask"]])
    np.testing.assert_array_equal(obs["agent_0"], packed)
    # The state is the map then the features: the map part is what the schema says.
    h, w = env.sim.layout.shape
    assert schema.state_size - schema.state_flat == schema.map_shape[0] * h * w


@dataclass
class Episode:
    """One random-play episode, logged at reset (row 0) and after every step: ``[T + 1, ...]`` arrays."""

    config: GTBConfig
    schema: GTBSchema
    state: np.ndarray  # [T+1, S] env.state()
    escrow: np.ndarray  # [T+1, N] the engine's own escrow coin
    payment: np.ndarray  # [T+1, N]
    first_day: np.ndarray  # [T+1] tax_cycle_position == 1
    rates_in_force: np.ndarray  # [T+1, K] the engine's rates
    rates_set: np.ndarray  # [T+1, K] the rates this test set for the period of each step (row 0: initial)
    reward: np.ndarray  # [T+1, N] (row 0: 0)
    info: dict[str, np.ndarray]  # per key [T+1, N] (per-agent floats) or [T+1] (scalars)


def _play(seed: int, config: GTBConfig | None = None, layout: str = "env-pure_and_mixed-15x15") -> Episode:
    """Masked random play; at every period start new uniform random rates are set."""
    env = gtb_mod.parallel_env(config=config, layout=layout, max_cycles=60)
    rng = np.random.default_rng(seed)
    _, infos = env.reset(seed=seed)
    schema = env.schema
    rows: list[dict] = []
    current = env.tax_rates.copy()

    def log(infos: dict, rewards: dict | None, rates_set: np.ndarray) -> None:
        s = env.sim.s
        agents = env.possible_agents
        rows.append({
            "state": env.state(), "escrow": s.escrow_coin[0].copy(), "payment": s.payment[0].copy(),
            "first_day": env.tax_cycle_position == 1, "rates_in_force": env.tax_rates.copy(),
            "rates_set": rates_set,
            "reward": np.array([0.0] * len(agents) if rewards is None else [rewards[a] for a in agents]),
            **{f"info_{k}": np.array([float(infos[a][k]) for a in agents])
               for k in ("coin", "coin_pre_tax", "labour", "income", "tax_paid", "lump_sum")},
            **{f"info_{k}": infos[agents[0]][k] for k in ("tax_enacted", "tax_cycle_position", "productivity",
                                                           "equality", "equality_times_productivity")},
            "info_marginal_rates": np.asarray(infos[agents[0]]["marginal_rates"], dtype=np.float64),
        })

    log(infos, None, current)
    while env.agents:
        if env.tax_cycle_position == 1:  # a period starts with this step: its rates are set now
            current = rng.random(schema.n_brackets)
            env.set_tax_rates(current)
        actions = {a: int((rng.random(schema.mask_size) * infos[a]["action_mask"]).argmax()) for a in env.agents}
        _, rewards, _, _, infos = env.step(actions)
        log(infos, rewards, current)
    stacked = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    info = {k[len("info_"):]: v for k, v in stacked.items() if k.startswith("info_")}
    return Episode(env.sim.config, schema, stacked["state"], stacked["escrow"], stacked["payment"],
                   stacked["first_day"], stacked["rates_in_force"], stacked["rates_set"], stacked["reward"], info)


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    eps = [_play(seed) for seed in range(3)]
    eps.append(_play(7, CONFIGS["small_view_few_prices_3_brackets"], "env-pure_and_mixed-25x25"))
    return eps


def test_step_infos_have_exactly_the_published_keys() -> None:
    env = gtb_mod.parallel_env(max_cycles=12)
    _, infos = env.reset(seed=0)
    assert all(tuple(i) == STEP_INFO_KEYS for i in infos.values())
    rng = np.random.default_rng(0)
    while env.agents:
        actions = {a: int((rng.random(50) * infos[a]["action_mask"]).argmax()) for a in env.agents}
        _, _, _, _, infos = env.step(actions)
        assert all(tuple(i) == STEP_INFO_KEYS for i in infos.values())


def test_step_infos_mean_what_the_published_table_says(episodes: list[Episode]) -> None:
    for ep in episodes:
        info, period = ep.info, ep.config.tax_period
        t = np.arange(len(ep.reward))
        np.testing.assert_array_equal(info["tax_enacted"], (t > 0) & (t % period == 0))
        np.testing.assert_array_equal(info["tax_cycle_position"], t % period + 1)
        np.testing.assert_array_equal(ep.first_day, info["tax_cycle_position"] == 1)
        np.testing.assert_array_equal(info["marginal_rates"], ep.rates_in_force)
        last_enactment = (t - 1) // period * period  # row of the coin the period's income is measured from
        np.testing.assert_allclose(info["income"][1:], info["coin_pre_tax"][1:] - info["coin"][last_enactment[1:]],
                                   rtol=0, atol=TOL)
        np.testing.assert_allclose(info["productivity"], info["coin"].sum(-1), rtol=0, atol=TOL)
        np.testing.assert_allclose(info["equality_times_productivity"], info["equality"] * info["productivity"],
                                   rtol=0, atol=TOL)
        assert info["equality"][0] == 1.0 and info["tax_paid"][0].sum() == info["lump_sum"][0].sum() == 0


def test_the_episodes_exercise_escrow_taxes_and_the_inventory_cap(episodes: list[Episode]) -> None:
    """Guards the tests below against vacuity: escrow, positive taxes and the inventory cap all occur."""
    escrow = sum(int((ep.escrow > 0).sum()) for ep in episodes)
    paid = sum(int((ep.info["tax_paid"] > 0).sum()) for ep in episodes)
    capped = 0
    for ep in episodes:
        due = period_tax(ep.info["income"], ep.rates_set, np.full_like(ep.info["income"], np.inf), ep.config)[0]
        capped += int(((ep.info["tax_paid"] < due - 1e-6) & ep.info["tax_enacted"][:, None]).sum())
    assert escrow > 50 and paid > 5 and capped > 0, (escrow, paid, capped)


def test_decoders_equal_the_engine_values_numpy(episodes: list[Episode]) -> None:
    for ep in episodes:
        sch = ep.schema
        np.testing.assert_array_equal(sch.escrow_coin(ep.state), ep.escrow)
        np.testing.assert_array_equal(sch.build_payment(ep.state), ep.payment.astype(np.float32))
        np.testing.assert_array_equal(sch.build_payment(ep.state.astype(np.float64)), ep.payment)
        np.testing.assert_array_equal(sch.period_starts_next(ep.state), ep.first_day)
        np.testing.assert_allclose(sch.rates(ep.state), ep.rates_in_force, rtol=0, atol=1e-7)
        np.testing.assert_allclose(ep.rates_in_force, ep.rates_set, rtol=0, atol=0)
        # One state vector (no leading axes) and a list decode the same.
        assert sch.escrow_coin(ep.state[-1]).shape == (sch.n_agents,)
        assert sch.rates(ep.state[-1].tolist()).shape == (sch.n_brackets,)
        assert sch.period_starts_next(ep.state[0]).shape == ()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decoders_equal_the_engine_values_torch(episodes: list[Episode], dtype: torch.dtype) -> None:
    for ep in episodes:
        sch = ep.schema
        state = torch.as_tensor(ep.state).to(dtype).reshape(1, *ep.state.shape)  # [1, T+1, S]: leading axes
        escrow = sch.escrow_coin(state)
        assert escrow.dtype == dtype and escrow.shape == (1, *ep.escrow.shape)
        np.testing.assert_array_equal(escrow[0].double().numpy(), ep.escrow)
        np.testing.assert_array_equal(sch.build_payment(state)[0].numpy(), ep.payment.astype(_np_dtype(dtype)))
        flag = sch.period_starts_next(state)
        assert flag.dtype == torch.bool
        np.testing.assert_array_equal(flag[0].numpy(), ep.first_day)
        np.testing.assert_allclose(sch.rates(state)[0].double().numpy(), ep.rates_in_force, rtol=0, atol=1e-7)


def _np_dtype(dtype: torch.dtype) -> type:
    return np.float32 if dtype == torch.float32 else np.float64


def test_decoders_on_a_batch_of_worlds() -> None:
    sim = BatchedGTB(3)
    sim.reset(seed=5)
    schema = GTBSchema.of(sim.config, sim.layout)
    rng = np.random.default_rng(5)
    for _ in range(25):
        if sim.tax_cycle_position == 1:
            sim.set_tax_rates(rng.random((3, schema.n_brackets)))
        sim.step((rng.random(sim._mask.shape) * sim._mask).argmax(-1))
        state = sim.state()
        np.testing.assert_array_equal(schema.escrow_coin(state), sim.s.escrow_coin)
        np.testing.assert_array_equal(schema.build_payment(state.astype(np.float64)), sim.s.payment)
        np.testing.assert_array_equal(schema.period_starts_next(state), np.full(3, sim.tax_cycle_position == 1))
        np.testing.assert_allclose(schema.rates(state), sim.s.rates, atol=1e-7, rtol=0)


def _rebuild(ep: Episode, xp_rates, escrow_after, info: dict) -> tuple:
    """The designer's reward rebuild from logged step data, written with the published functions only.

    Rows 1..T are the steps; ``utility_before`` of step t is the utility of row t-1 (row 0: reset).
    """
    cfg = ep.config
    before = utility(info["coin"][:-1], info["labour"][:-1], cfg)
    pre, labour, income = info["coin_pre_tax"][1:], info["labour"][1:], info["income"][1:]
    paid, lump = period_tax(income, xp_rates, pre - escrow_after, cfg)
    enacted = info["tax_enacted"][1:, None]
    transfer = enacted * (lump - paid)
    return agent_reward(pre + transfer, labour, before, cfg), paid * enacted, lump * enacted


def test_env_rewards_equal_the_published_reward_rule_numpy(episodes: list[Episode]) -> None:
    for ep in episodes:
        info = {k: np.asarray(v, dtype=np.float64) for k, v in ep.info.items()}
        escrow_after = ep.schema.escrow_coin(ep.state[1:]).astype(np.float64)
        reward, paid, lump = _rebuild(ep, ep.rates_set[1:], escrow_after, info)
        np.testing.assert_allclose(reward, ep.reward[1:], rtol=0, atol=TOL)
        np.testing.assert_allclose(paid, info["tax_paid"][1:], rtol=0, atol=TOL)
        np.testing.assert_allclose(lump, info["lump_sum"][1:], rtol=0, atol=TOL)
        coin = info["coin_pre_tax"][1:] - paid + lump
        np.testing.assert_allclose(coin, info["coin"][1:], rtol=0, atol=TOL)
        # Off enactment steps there is no transfer: pre-tax coin is the coin.
        off = ~ep.info["tax_enacted"][1:]
        np.testing.assert_array_equal(info["coin_pre_tax"][1:][off], info["coin"][1:][off])


def test_env_rewards_equal_the_published_reward_rule_torch_with_gradients(episodes: list[Episode]) -> None:
    for ep in episodes:
        info = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)) for k, v in ep.info.items()}
        rates = torch.as_tensor(ep.rates_set[1:]).requires_grad_(True)
        escrow_after = ep.schema.escrow_coin(torch.as_tensor(ep.state[1:]).double())
        reward, _, _ = _rebuild(ep, rates, escrow_after, info)
        np.testing.assert_allclose(reward.detach().numpy(), ep.reward[1:], rtol=0, atol=TOL)
        reward.sum().backward()
        assert rates.grad is not None and torch.isfinite(rates.grad).all()
        enacted = ep.info["tax_enacted"][1:]
        assert (rates.grad[~enacted] == 0).all()  # rates only matter on enactment steps
        if (ep.info["tax_paid"][1:] > 0).any():
            assert (rates.grad[enacted] != 0).any()


def test_the_rules_by_hand() -> None:
    """The published rules pinned to hand-computed numbers (so that a change of the rule itself is noticed)."""
    cfg = GTBConfig()
    coin, labour = np.array([10.0, 0.0, 30.0, 5.0]), np.array([0.0, 2.0, 10.0, 1.0])
    expected = (np.maximum(coin, 0.01) ** 0.77 - 1.0) / 0.77 - 0.21 * labour
    np.testing.assert_allclose(utility(coin, labour, cfg), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(utility(coin, labour, cfg), isoelastic_utility(coin, labour), rtol=0, atol=0)
    np.testing.assert_allclose(agent_reward(coin, labour, expected - 1.0, cfg), np.ones(4), rtol=0, atol=1e-12)
    assert cfg.tax_cutoffs == US_FEDERAL_2018_CUTOFFS
    rates = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    income = np.array([5.0, 20.0, -3.0, 100.0])
    # 20: 0.1 * 9.7 + 0.2 * 10.3; 100: 0.1 * 9.7 + 0.2 * 29.775 + 0.3 * 44.725 + 0.4 * 15.8
    due = np.array([0.5, 0.97 + 2.06, 0.0, 0.97 + 5.955 + 13.4175 + 6.32])
    paid, lump = period_tax(income, rates, np.array([100.0, 100.0, 100.0, 2.0]), cfg)
    np.testing.assert_allclose(paid, [due[0], due[1], 0.0, 2.0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(lump, np.full(4, paid.sum() / 4), rtol=0, atol=1e-12)
    # Leading axes: one schedule per world, applied to every agent of that world.
    paid2, _ = period_tax(np.stack([income, income]), np.stack([rates, 0 * rates]), np.full((2, 4), 1e9), cfg)
    np.testing.assert_allclose(paid2, [due, np.zeros(4)], rtol=0, atol=1e-12)
