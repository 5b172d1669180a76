"""The batched SSD engine: the seeding contract (game b of a batch == a single env seeded s + b), equality with the
NumPy reference engine, arrays that never change after they are handed out, shapes, errors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from incentive_envs import cleanup, harvest
from incentive_envs.ssd import BatchedSSD, SSDParallelEnv, kernels

HARVEST_SMALL = {
    "ascii_map": ("@@@@@@@@@", "@AAAAAAA@", "@AAAAAAA@", "@P  P  P@", "@@@@@@@@@"),
    "n_agents": 3,
    "view_radius": 2,
    "timeout_steps": 4,
    "max_steps": 60,
}
# Ten agents in a 4x4 room of spawn points: contested cells, chains, swaps, rotations, full spawn points.
CROWD = {
    "ascii_map": ("@@@@@@", "@PPPP@", "@PPPP@", "@PAPP@", "@PPPP@", "@@@@@@"),
    "n_agents": 10,
    "view_radius": 3,
    "timeout_steps": 2,
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


def _digest(batch: BatchedSSD, seed: int, episodes: int = 2) -> str:
    """Hash of every observation, reward, state image and info of ``episodes`` random-action episodes."""
    h = hashlib.sha256()
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        h.update(batch.reset(seed=seed if episode == 0 else None).tobytes())
        done = False
        while not done:
            obs, rew, d, info = batch.step(rng.integers(0, batch.n_actions, size=(batch.batch_size, batch.n_agents)))
            for arr in (obs, rew, batch.state(), *(info[k] for k in sorted(info))):
                h.update(arr.tobytes())
            done = bool(d[0])
    return h.hexdigest()[:16]


@pytest.mark.parametrize(
    ("module", "params", "expected"),
    [
        (cleanup, {}, "2e2ad00566e3fac2"),
        (cleanup, {"map_name": "10x10"}, "568e21091e969754"),
        (cleanup, {"map_name": "large", "max_steps": 60, "timeout_steps": 5}, "65cc21d895c00b29"),
        (harvest, HARVEST_SMALL, "39b774d085ddaa26"),
        (harvest, {"max_steps": 60}, "b7877d2ca780317a"),
        (harvest, CROWD, "f1b03a222c5b6ae4"),
    ],
)
def test_trajectories_equal_the_numpy_reference_engine(
    module: object, params: dict[str, object], expected: str
) -> None:
    """The digests were recorded with the vectorised NumPy engine (commit 89adc61) that matched the original's
    statistics; the Numba kernels reproduce its trajectories bit for bit (moves, beams, time-outs, spawns)."""
    assert _digest(module.make_batch(4, **params), seed=3) == expected  # type: ignore[attr-defined]


def test_handed_out_arrays_never_change() -> None:
    env = cleanup.parallel_env(map_name="large", max_steps=6)
    obs, _ = env.reset(seed=0)
    kept = [(obs, {a: o.copy() for a, o in obs.items()})]
    states = [(env.state(), env.state().copy())]
    for _ in range(5):
        obs, rew, _, _, info = env.step({a: 8 for a in env.agents})  # everybody cleans: beams drawn
        kept.append((obs, {a: o.copy() for a, o in obs.items()}))
        states.append((env.state(), env.state().copy()))
        assert all(type(r) is float for r in rew.values())
        assert all(type(v) is bool for a in info for k, v in info[a].items() if k != "waste_cleared")
        assert all(type(info[a]["waste_cleared"]) is int for a in info)
    env.reset(seed=1)
    for held, copy in kept:
        assert all(np.array_equal(held[a], copy[a]) for a in copy)
    for held, copy in states:
        assert np.array_equal(held, copy)
    batch = cleanup.make_batch(3, max_steps=3)
    first = batch.reset(seed=0)
    out = batch.step(np.full((3, 2), 5))
    snapshot = (first.copy(), out[0].copy(), out[1].copy(), {k: v.copy() for k, v in out[3].items()})
    batch.step(np.zeros((3, 2), dtype=np.int64))
    batch.reset(seed=2)
    assert np.array_equal(first, snapshot[0]) and np.array_equal(out[0], snapshot[1])
    assert np.array_equal(out[1], snapshot[2]) and all(np.array_equal(out[3][k], snapshot[3][k]) for k in out[3])


def test_any_integer_action_array_uses_the_one_compiled_kernel() -> None:
    batch = cleanup.make_batch(2, max_steps=10)
    batch.reset(seed=0)
    readonly = np.zeros((2, 2), dtype=np.int64)
    readonly.flags.writeable = False
    for acts in (
        readonly,
        np.asfortranarray(np.ones((2, 2), dtype=np.int32)),
        [[5, 4], [4, 5]],
        np.eye(2, dtype=np.uint8),
    ):
        batch.step(acts)
    assert len(kernels.step_games.signatures) == 1


def test_scenario_setters_reject_what_the_kernels_cannot_index() -> None:
    batch = cleanup.make_batch(2)
    batch.reset(seed=0)
    for bad in [lambda: batch.set_cells(0, [(7, 0)], 0), lambda: batch.set_cells(2, [(1, 1)], 0)]:
        with pytest.raises(ValueError, match="outside"):
            bad()
    with pytest.raises(ValueError, match="code"):
        batch.set_cells(0, [(1, 1)], 9)  # an agent's code is not a map cell
    with pytest.raises(ValueError, match="orientation"):
        batch.set_agent(0, 0, (3, 2), orientation=4)
    with pytest.raises(ValueError, match="agent index"):
        batch.set_agent(0, 2, (3, 2))
    with pytest.raises(ValueError, match="wall"):
        batch.set_agent(0, 0, (0, 0))
    with pytest.raises(ValueError, match="outside"):
        batch.set_agent(0, 0, (-1, 2))
    for live in (batch.grid, batch.pos, batch.orient, batch.present, batch.timeout):
        with pytest.raises(ValueError, match="read-only"):
            live[0, 0] = 7
    batch.set_agent(0, 0, (3, 2), orientation=2)
    assert batch.positions()[0, 0].tolist() == [3, 2] and batch.orient[0, 0] == 2  # the views follow the state
