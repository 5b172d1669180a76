"""The batched SSD engine: the seeding contract (game b of a batch == a single env seeded s + b), shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest

from incentive_envs import cleanup, harvest
from incentive_envs.ssd import BatchedSSD, SSDParallelEnv

HARVEST_SMALL = {
    "ascii_map": ("@@@@@@@@@", "@AAAAAAA@", "@AAAAAAA@", "@P  P  P@", "@@@@@@@@@"),
    "n_agents": 3,
    "view_radius": 2,
    "timeout_steps": 4,
    "max_steps": 60,
}
CASES = [
    (cleanup, {}),
    (cleanup, {"map_name": "10x10"}),
    (cleanup, {"map_name": "large", "max_steps": 40}),
    (harvest, HARVEST_SMALL),
]


def _actions(n_actions: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_actions, size=shape)


@pytest.mark.parametrize(("module", "params"), CASES)
def test_batch_element_equals_single_env_with_offset_seed(module: object, params: dict[str, object]) -> None:
    b_size, seed = 3, 40
    batch: BatchedSSD = module.make_batch(b_size, **params)  # type: ignore[attr-defined]
    steps = batch.config.max_steps
    n = batch.n_agents
    acts = _actions(batch.n_actions, (steps, b_size, n), seed=1)
    singles: list[SSDParallelEnv] = [module.parallel_env(**params) for _ in range(b_size)]  # type: ignore[attr-defined]
    obs_b = batch.reset(seed=seed)
    for b, env in enumerate(singles):
        obs, _ = env.reset(seed=seed + b)
        assert np.array_equal(np.stack(list(obs.values())), obs_b[b])
    for t in range(steps):
        obs_b, rew_b, done_b, info_b = batch.step(acts[t])
        state_b = batch.state()
        for b, env in enumerate(singles):
            obs, rew, _, trunc, info = env.step({f"agent_{i}": int(acts[t, b, i]) for i in range(n)})
            assert np.array_equal(np.stack(list(obs.values())), obs_b[b]), (t, b)
            assert np.array_equal(np.array(list(rew.values()), dtype=np.float32), rew_b[b])
            assert np.array_equal(env.state(), state_b[b])
            for key, arr in info_b.items():
                assert [info[f"agent_{i}"][key] for i in range(n)] == arr[b].tolist(), (t, b, key)
            assert all(trunc.values()) == bool(done_b[b])
    assert done_b.all()


def test_seed_sequence_and_shapes() -> None:
    batch = cleanup.make_batch(4)
    obs = batch.reset(seed=[7, 7, 8, 9])
    assert obs.shape == (4, 2, 9, 9, 3) and obs.dtype == np.uint8
    assert batch.state().shape == (4, 9, 9, 3) and batch.state().dtype == np.uint8
    keys = batch._keys
    assert keys[0] == keys[1] and keys[1] != keys[2]
    obs, rew, done, info = batch.step(np.full((4, 2), 5))
    assert rew.shape == (4, 2) and rew.dtype == np.float32 and done.shape == (4,) and done.dtype == bool
    assert set(info) == {"apple", "cleaned", "waste_cleared", "fired", "tagged", "present"}
    assert all(v.shape == (4, 2) for v in info.values())
    assert info["cleaned"].all() and info["waste_cleared"].dtype == np.int64


def test_games_of_one_batch_differ() -> None:
    batch = cleanup.make_batch(8)
    batch.reset(seed=0)
    acts = np.tile([[5, 4]], (8, 1))
    for _ in range(20):
        batch.step(acts)
    grids = batch.cell_grid().reshape(8, -1)
    assert len({g.tobytes() for g in grids}) > 1


def test_errors() -> None:
    batch = cleanup.make_batch(2, max_steps=2)
    with pytest.raises(RuntimeError, match="reset"):
        batch.step(np.zeros((2, 2), dtype=np.int64))
    batch.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        batch.step(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="integers"):
        batch.step(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="action 6 of agent 1 in game 0"):
        batch.step(np.array([[0, 6], [0, 0]]))
    with pytest.raises(ValueError, match="seeds"):
        batch.reset(seed=[1, 2, 3])
    with pytest.raises(ValueError, match="batch_size"):
        cleanup.make_batch(0)
    batch.step(np.zeros((2, 2), dtype=np.int64))
    _, _, done, _ = batch.step(np.zeros((2, 2), dtype=np.int64))
    assert done.all()
    with pytest.raises(RuntimeError, match="reset"):
        batch.step(np.zeros((2, 2), dtype=np.int64))
