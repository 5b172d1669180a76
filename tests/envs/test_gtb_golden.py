"""Gather-Trade-Build trajectories are pinned: the engine's speed work must not change a single bit of play.

The digests were first recorded with the plain-NumPy engine of commit 8b8abb0 (before the compiled kernels of
issue #15) and recorded again, rewards hashed at float32 (``_stable``), on an AVX2 host with the engine unchanged
(commit 32500f3's engine, which passed the full-precision digests where they were recorded). They hash every
observation, reward, info value and designer state of long random episodes (1000 steps, so orders expire, books
fill, houses get built and taxes are enacted a hundred times) of the PettingZoo env and of a batch of three
worlds. A rule change, a reordered floating-point sum or a different random draw
changes the digest; if a rule change is intended, record the new digests and say why in the commit.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from incentive_envs import gather_trade_build as gtb_mod
from incentive_envs.gtb import BatchedGTB

STEPS = 1000
PINNED_KEYS = ("action_mask", "coin", "coin_pre_tax", "equality", "equality_times_productivity", "income", "labour",
               "lump_sum", "marginal_rates", "productivity", "tax_cycle_position", "tax_enacted", "tax_paid")
"""The info keys the digests were recorded with (sorted); later keys (``houses_built``, ``trades``) are checked by
their own tests."""
# Favour the rare actions (build, moves) so that every rule (trades and expiry too) is exercised.
WEIGHTS = np.ones(50)
WEIGHTS[1], WEIGHTS[46:] = 10.0, 3.0


def weighted_masked(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One allowed action per row of ``mask`` (any leading shape), drawn with probability ∝ ``WEIGHTS``."""
    cum = np.cumsum(WEIGHTS * mask, axis=-1)
    u = rng.random((*mask.shape[:-1], 1)) * cum[..., -1:]
    return (cum <= u).sum(-1)


def _update(h: Any, *arrays: object) -> None:
    for a in arrays:
        arr = np.ascontiguousarray(np.asarray(a))
        h.update(str(arr.dtype).encode())
        h.update(arr.tobytes())


def _stable(rewards: object) -> np.ndarray:
    """Rewards at float32 precision. They are differences of ``coin ** (1 - eta)``, and NumPy's float64 power takes
    a vectorised path on AVX-512 hosts whose last bit differs from the scalar one elsewhere: hashed at full
    precision, the digests held on the machine that recorded them and failed on an AVX2 host with the same code.
    Everything else (observations, coin, taxes, metrics, state) is hashed bit for bit."""
    return np.asarray(rewards, dtype=np.float64).astype(np.float32)


def single_env_digest(seed: int) -> str:
    """sha256 of a 1000-step episode of the PettingZoo env (flat observations) under random rates and actions."""
    env = gtb_mod.parallel_env(max_cycles=STEPS)
    rng = np.random.default_rng(seed)
    obs, infos = env.reset(seed=seed)
    h = hashlib.sha256()
    for a in env.possible_agents:
        _update(h, obs[a], *(infos[a][k] for k in PINNED_KEYS))
    while env.agents:
        if env.tax_cycle_position == 1:
            env.set_tax_rates(rng.random(7))
        acts = {a: int(weighted_masked(infos[a]["action_mask"], rng)) for a in env.agents}
        obs, rewards, _, truncs, infos = env.step(acts)
        for a in env.possible_agents:
            _update(h, obs[a], _stable(rewards[a]), truncs[a])
            _update(h, *(infos[a][k] for k in PINNED_KEYS))
        if env.sim.timestep % 50 == 0:
            _update(h, env.state())
    return h.hexdigest()


def batched_digest(seed: int) -> str:
    """sha256 of a 1000-step episode of three worlds of the engine, every output of every step."""
    sim = BatchedGTB(3)
    sim.set_episode_length(STEPS)
    rng = np.random.default_rng(seed)
    out = sim.reset(seed=seed)
    h = hashlib.sha256()
    _update(h, out.obs.spatial, out.obs.flat, out.obs.action_mask, _stable(out.reward), out.coin, out.income)
    while not out.done:
        if sim.tax_cycle_position == 1:
            sim.set_tax_rates(rng.random((3, 7)))
        out = sim.step(weighted_masked(out.obs.action_mask, rng))
        _update(h, out.obs.spatial, out.obs.flat, out.obs.action_mask, _stable(out.reward), out.coin, out.coin_pre_tax,
                out.labour, out.income, out.tax_paid, out.lump_sum, out.marginal_rates, out.tax_enacted,
                out.productivity, out.equality, out.done)
        if sim.timestep % 50 == 0:
            _update(h, sim.state())
    return h.hexdigest()


SINGLE = {
    0: "8bb6d5af67906955982d4452634764389f89418eae0a04f638bc67193cbb9291",
    1: "ec925c22be25382fbfdcceafad49b2bc2b63e2bb0a8c67b423205da24c18100f",
}
BATCHED = {
    2: "f2f55d5ad09824dd41a2e2fe0f09331c1227c950659a069ff43a3141518fc284",
}


def test_single_env_trajectories_are_unchanged():
    for seed, digest in SINGLE.items():
        assert single_env_digest(seed) == digest, seed


def test_batched_trajectories_are_unchanged():
    for seed, digest in BATCHED.items():
        assert batched_digest(seed) == digest, seed


def test_editing_returned_arrays_does_not_change_play():
    """The engine reuses metrics and builds observations into fresh buffers: scribbling on every returned array
    must not leak into later steps."""
    clean, dirty = BatchedGTB(2), BatchedGTB(2)
    a, b = clean.reset(seed=5), dirty.reset(seed=5)
    rng = np.random.default_rng(1)
    for _ in range(60):
        acts = weighted_masked(a.obs.action_mask, rng)
        for arr in (b.obs.data, b.obs.action_mask, b.reward, b.coin, b.coin_pre_tax, b.labour, b.income, b.tax_paid,
                    b.lump_sum, b.marginal_rates, b.productivity, b.equality):
            arr[...] = 7
        a, b = clean.step(acts), dirty.step(acts)
        assert np.array_equal(a.obs.data, b.obs.data) and np.array_equal(a.reward, b.reward)
        assert np.array_equal(a.productivity, b.productivity) and np.array_equal(a.equality, b.equality)
        assert np.array_equal(a.coin, b.coin) and np.array_equal(a.income, b.income)
