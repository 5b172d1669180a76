"""SB3 adapter (wrappers.sb3): each SuperSuit 3.11 problem is shown on plain SuperSuit, then fixed here.

Also the independent learners built on it (designer.sb3.IndependentSB3).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pytest
import supersuit as ss
import torch
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import incentive_envs  # registers the Gymnasium ids
from designer.sb3 import IndependentSB3
from incentive_envs.escape_room import parallel_env as escape_room
from wrappers.sb3 import BlackDeath, SB3VecEnv, make_sb3_vec_env

SMALL_PPO: dict[str, Any] = {"n_steps": 16, "batch_size": 32, "n_epochs": 2, "device": "cpu"}


class Toy(ParallelEnv):
    """Two agents, reward 1 per step, truncated at ``max_cycles``; ``leave_at[agent] = t`` terminates it at t.

    Observation: ``[t / max_cycles, noise...]`` with noise from the seeded RNG (``obs_dims`` per agent).
    """

    metadata = {"name": "toy_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, max_cycles: int = 3, leave_at: dict[str, int] | None = None, obs_dims=(3, 3)) -> None:
        self.possible_agents = ["agent_0", "agent_1"]
        self.max_cycles, self.leave_at = max_cycles, dict(leave_at or {})
        self._obs = {
            a: spaces.Box(-1.0, 2.0, (d,), np.float32)
            for a, d in zip(self.possible_agents, obs_dims, strict=True)
        }
        self.np_random, _ = seeding.np_random(None)
        self.render_mode = None
        self.agents: list[str] = []

    @functools.cache
    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs[agent]

    @functools.cache
    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(2)

    def _observe(self) -> dict[str, np.ndarray]:
        out = {}
        for a in self.agents:
            noise = self.np_random.random(self._obs[a].shape[0] - 1)
            out[a] = np.concatenate([[self.t / self.max_cycles], noise]).astype(np.float32)
        return out

    def reset(self, seed: int | None = None, options: Any = None) -> tuple[dict, dict]:
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        self.t, self.agents = 0, list(self.possible_agents)
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, ...]:
        if set(actions) != set(self.agents):
            raise KeyError(f"actions {sorted(actions)} != live {self.agents}")
        self.t += 1
        obs = self._observe()
        rew = {a: 1.0 for a in self.agents}
        term = {a: self.leave_at.get(a) == self.t for a in self.agents}
        trunc = {a: self.t >= self.max_cycles and not term[a] for a in self.agents}
        infos = {a: {"t": self.t} for a in self.agents}
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rew, term, trunc, infos


def er3(**kw: Any) -> ParallelEnv:
    return escape_room(n_agents=3, min_at_lever=2, randomize=True, **kw)


def per_copy(obs: np.ndarray, n_agents: int) -> list[np.ndarray]:
    return [obs[i : i + n_agents] for i in range(0, len(obs), n_agents)]


def reference_reset(seed: int) -> np.ndarray:
    env = er3()
    obs, _ = env.reset(seed=seed)
    return np.stack([obs[a] for a in env.possible_agents])


def plain_supersuit(env_fn, n_copies: int, num_cpus: int = 0, base_class: str = "gymnasium") -> Any:
    return ss.concat_vec_envs_v1(ss.pettingzoo_env_to_vec_env_v1(env_fn()), n_copies, num_cpus, base_class)


def params(model: Any) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


# -- 1. PPO(seed=...) and reset(seed=...) ---------------------------------------------------------------


def test_plain_supersuit_crashes_on_seed() -> None:
    venv = plain_supersuit(er3, 2, base_class="stable_baselines3")
    with pytest.raises(AttributeError, match="seed"):
        venv.reset(seed=0)
    with pytest.raises(AttributeError, match="seed"):
        PPO("MlpPolicy", venv, seed=0, **SMALL_PPO)


def test_ppo_seed_works_and_training_is_reproducible() -> None:
    runs = []
    for _ in range(2):
        model = PPO("MlpPolicy", make_sb3_vec_env(er3, 2, seed=None), seed=7, **SMALL_PPO)
        model.learn(2 * 16 * 6)
        runs.append(params(model))
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    other = PPO("MlpPolicy", make_sb3_vec_env(er3, 2, seed=None), seed=8, **SMALL_PPO).learn(2 * 16 * 6)
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], params(other), strict=True))


def test_reset_seed_argument_seeds_copy_i_with_seed_plus_i() -> None:
    venv = make_sb3_vec_env(er3, 4, seed=None)
    assert venv.seed(10) == [10, 10, 10, 11, 11, 11, 12, 12, 12, 13, 13, 13]
    for base in (0, 100):
        obs = venv.reset(seed=base)
        for i, copy_obs in enumerate(per_copy(obs, 3)):
            np.testing.assert_array_equal(copy_obs, reference_reset(base + i))
    # a pending seed is used once; the next reset continues each copy's stream
    first = venv.reset(seed=5)
    assert not np.array_equal(venv.reset(), first) or not np.array_equal(venv.reset(), first)


# -- 2. unseeded copies ----------------------------------------------------------------------------------


def test_unseeded_copies_are_clones_on_plain_supersuit_but_distinct_here() -> None:
    # Toy is not EzPickle, so SuperSuit's cloudpickle clones share one RNG state (EzPickle re-runs __init__)
    plain_obs, _ = plain_supersuit(Toy, 4).reset()
    plain = per_copy(plain_obs, 2)
    assert all(np.array_equal(c, plain[0]) for c in plain)
    ours = per_copy(make_sb3_vec_env(Toy, 4, seed=None).reset(), 2)
    assert not all(np.array_equal(c, ours[0]) for c in ours)


# -- 3. multiprocess seeds and infos -------------------------------------------------------------------


def test_multiprocess_seed_overlap_and_compressed_infos_on_plain_supersuit() -> None:
    venv = plain_supersuit(er3, 4, num_cpus=2)
    try:
        obs, infos = venv.reset(seed=0)
    finally:
        venv.close()
    copies = per_copy(obs, 3)
    np.testing.assert_array_equal(copies[1], copies[2])  # worker 1's first copy reuses seed 0 + 1
    assert len(infos) == 2 and isinstance(infos[0], list)  # compressed (index, info) pairs per worker


def test_multiprocess_matches_in_process_exactly() -> None:
    single = make_sb3_vec_env(er3, 4, seed=3)
    multi = make_sb3_vec_env(er3, 4, seed=3, num_cpus=2)
    try:
        np.testing.assert_array_equal(single.reset(), multi.reset())
        assert multi.reset_infos == single.reset_infos and len(multi.reset_infos) == 12
        assert all(isinstance(info, dict) and "position" in info for info in multi.reset_infos)
        rng = np.random.default_rng(0)
        for _ in range(12):
            actions = rng.integers(0, 3, size=12)
            out_s, out_m = single.step(actions), multi.step(actions)
            for a, b in zip(out_s[:3], out_m[:3], strict=True):
                np.testing.assert_array_equal(a, b)
            for info_s, info_m in zip(out_s[3], out_m[3], strict=True):
                assert info_s.keys() == info_m.keys()
                assert info_s.get("TimeLimit.truncated") == info_m.get("TimeLimit.truncated")
    finally:
        multi.close()


# -- 4. black death ------------------------------------------------------------------------------------


def steps_until_done(venv: Any, n: int) -> tuple[int, Any, Any, Any]:
    venv.reset(seed=0)
    for t in range(1, 10):
        _, _, terms, truncs, infos = venv.step(np.zeros(n, dtype=np.int64))
        if np.all(terms | truncs):
            return t, terms, truncs, infos
    raise AssertionError("never done")


def test_black_death_v3_adds_a_phantom_step_but_ours_ends_at_max_cycles() -> None:
    plain = ss.pettingzoo_env_to_vec_env_v1(ss.black_death_v3(Toy(max_cycles=3)))
    t, terms, truncs, _ = steps_until_done(plain, 2)
    assert t == 4 and terms.all() and truncs.all()  # one step too many, truncation reported as termination

    ours = ss.pettingzoo_env_to_vec_env_v1(BlackDeath(Toy(max_cycles=3)))
    t, terms, truncs, _ = steps_until_done(ours, 2)
    assert t == 3 and not terms.any() and truncs.all()


def test_black_death_keeps_leavers_as_ghosts_until_the_end() -> None:
    env = BlackDeath(Toy(max_cycles=4, leave_at={"agent_1": 2}))
    env.reset(seed=0)
    history = [env.step({"agent_0": 0, "agent_1": 1}) for _ in range(4)]
    assert [h[1]["agent_1"] for h in history] == [1.0, 1.0, 0.0, 0.0]  # real reward on its last step
    np.testing.assert_array_equal(history[2][0]["agent_1"], np.zeros(3, np.float32))
    assert [h[2]["agent_1"] or h[3]["agent_1"] for h in history] == [False, False, False, True]
    assert history[-1][2] == {"agent_0": False, "agent_1": True}  # each agent reports how it ended
    assert history[-1][3] == {"agent_0": True, "agent_1": False}
    assert env.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"agent_0": 0, "agent_1": 0})


def test_agents_leaving_need_black_death() -> None:
    venv = make_sb3_vec_env(lambda: Toy(max_cycles=4, leave_at={"agent_1": 2}), 1, seed=0, black_death=True)
    venv.reset()
    dones = [venv.step(np.zeros(2, dtype=np.int64))[2] for _ in range(4)]
    assert [d.all() for d in dones] == [False, False, False, True]
    with pytest.raises(ValueError, match="Box"):
        BlackDeath(_DiscreteObs())


class _DiscreteObs(Toy):
    @functools.cache
    def observation_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(3)


# -- 5. TimeLimit.truncated and value bootstrapping ---------------------------------------------------


def test_truncation_flag_and_terminal_observation() -> None:
    plain = plain_supersuit(lambda: Toy(max_cycles=2), 1, base_class="stable_baselines3")
    plain.reset()
    plain.step(np.zeros(2, dtype=np.int64))
    _, _, dones, infos = plain.step(np.zeros(2, dtype=np.int64))
    assert dones.all() and all("TimeLimit.truncated" not in info for info in infos)

    ours = make_sb3_vec_env(lambda: Toy(max_cycles=2), 1, seed=0)
    ours.reset()
    ours.step(np.zeros(2, dtype=np.int64))
    _, _, dones, infos = ours.step(np.zeros(2, dtype=np.int64))
    assert dones.all() and all(info["TimeLimit.truncated"] is True for info in infos)
    assert all(info["terminal_observation"][0] == 1.0 for info in infos)

    # Escape Room ending by escape is a termination: no bootstrap
    er = make_sb3_vec_env(lambda: escape_room(n_agents=2, min_at_lever=1), 1, seed=0)
    er.reset()
    _, rewards, dones, infos = er.step(np.array([0, 2]))  # lever + door: escape
    assert dones.all() and [info["TimeLimit.truncated"] for info in infos] == [False, False]
    np.testing.assert_array_equal(rewards, [-1.0, 10.0])


def rollout_rewards(venv: Any) -> np.ndarray:
    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=8, gamma=0.9, device="cpu")
    _, callback = model._setup_learn(8)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=4)
    return model.rollout_buffer.rewards.copy()


def test_sb3_bootstraps_at_max_cycles_only_with_our_adapter() -> None:
    plain = rollout_rewards(plain_supersuit(lambda: Toy(max_cycles=2), 1, base_class="stable_baselines3"))
    np.testing.assert_array_equal(plain, np.ones((4, 2)))  # the time limit is treated as terminal
    ours = rollout_rewards(make_sb3_vec_env(lambda: Toy(max_cycles=2), 1, seed=0))
    np.testing.assert_array_equal(ours[[0, 2]], np.ones((2, 2)))
    assert np.all(ours[[1, 3]] != 1.0)  # r + gamma * V(terminal_observation) at each truncation


# -- argument checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_copies": 0}, ValueError, "n_copies"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, ValueError, "seed"),
        ({"num_cpus": -1}, ValueError, "num_cpus"),
        ({"env_fn": lambda: Toy(obs_dims=(3, 4))}, ValueError, "identical spaces"),
        ({"env_fn": lambda: "not an env"}, TypeError, "ParallelEnv"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    args: dict[str, Any] = {"env_fn": er3, "n_copies": 2, "seed": 0, **kwargs}
    with pytest.raises(error, match=match):
        make_sb3_vec_env(args.pop("env_fn"), args.pop("n_copies"), args.pop("seed"), **args)


def test_vec_env_contract_for_sb3_helpers() -> None:
    venv = make_sb3_vec_env(er3, 2, seed=0)
    assert isinstance(venv, SB3VecEnv) and venv.num_envs == 6 and venv.render_mode is None
    assert venv.get_attr("n_agents") == [3] * 6 and venv.env_is_wrapped(object) == [False] * 6
    model = PPO("MlpPolicy", venv, seed=0, **SMALL_PPO)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "not wrapped with a Monitor"
        mean, _ = evaluate_policy(model, venv, n_eval_episodes=4)
    assert np.isfinite(mean)
    with pytest.raises(ValueError, match="options"):
        venv.set_options([{"a": 1}] + [{}] * 5)
        venv.reset()


# -- independent learners -----------------------------------------------------------------------------


def test_independent_learners_are_reproducible_and_seed_sensitive() -> None:
    def train(seed: int) -> list[torch.Tensor]:
        ind = IndependentSB3(er3, 2, seed, model_kwargs=SMALL_PPO).learn(2 * 16 * 2)
        return [p for m in ind.models.values() for p in params(m)]

    a, b, c = train(0), train(0), train(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_independent_learners_handle_different_spaces_and_bootstrap() -> None:
    ind = IndependentSB3(
        lambda: Toy(max_cycles=2, obs_dims=(2, 5)),
        1,
        0,
        model_kwargs={**SMALL_PPO, "n_steps": 4, "batch_size": 4},
    )
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    ind.learn(4, hook=lambda rewards, dones, infos: seen.append((rewards.copy(), dones.copy())))
    assert [m.observation_space.shape for m in ind.models.values()] == [(2,), (5,)]
    assert [d.tolist() for _, d in seen] == [[False, False], [True, True]] * 2
    for model in ind.models.values():
        buffer = model.rollout_buffer.rewards[:, 0]
        assert buffer[0] == 1.0 and buffer[1] != 1.0  # bootstrapped at the time limit
    actions = ind.predict({"agent_0": np.zeros(2, np.float32), "agent_1": np.zeros(5, np.float32)})
    assert set(actions) == {"agent_0", "agent_1"} and all(a in (0, 1) for a in actions.values())
    with pytest.raises(KeyError, match="agent_9"):
        ind.predict({"agent_9": np.zeros(2)})
    with pytest.raises(RuntimeError, match=r"IndependentSB3\.learn"):
        ind.models["agent_0"].learn(10)


def test_independent_learners_reject_early_leavers_and_bad_args() -> None:
    ind = IndependentSB3(lambda: Toy(max_cycles=4, leave_at={"agent_1": 1}), 2, 0, model_kwargs=SMALL_PPO)
    with pytest.raises(RuntimeError, match="BlackDeath"):
        ind.learn(16)
    ghosts = IndependentSB3(
        lambda: BlackDeath(Toy(max_cycles=4, leave_at={"agent_1": 1})), 2, 0, model_kwargs=SMALL_PPO
    )
    ghosts.learn(16)
    with pytest.raises(ValueError, match="seed"):
        IndependentSB3(er3, 1, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="algo"):
        IndependentSB3(er3, 1, 0, algo="dqn")


# -- Gymnasium joint view straight into SB3 ------------------------------------------------------------


@pytest.mark.slow
def test_ppo_on_joint_escape_room_reaches_the_social_optimum() -> None:
    kwargs = {"n_agents": 2, "min_at_lever": 1}
    venv = make_vec_env("incentive_envs/EscapeRoom-v0", n_envs=4, seed=0, env_kwargs=kwargs)
    model = PPO("MlpPolicy", venv, seed=0, n_steps=64, batch_size=64, ent_coef=0.01, device="cpu")
    model.learn(15_000)
    mean, _ = evaluate_policy(model, venv, n_eval_episodes=20, deterministic=True)
    assert mean >= 0.95 * incentive_envs.optimal_welfare(2, 1)  # 9: one at the lever, one through the door
