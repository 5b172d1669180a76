"""Bad input raises a clear error where it enters: parallel envs, the checked AEC env and the Gymnasium views.

Also run under ``python -O`` (a subprocess), since a check written as ``assert`` would vanish there.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from incentive_envs import EnvEntry
from tests.envs.test_conformance import entries, module_of, sample_action


def bad_actions(space: spaces.Space[Any]) -> list[tuple[str, Any]]:
    """(label, action) pairs that are not elements of ``space``, for the space types our games use."""
    if isinstance(space, spaces.Discrete):
        lo, hi = int(space.start), int(space.start + space.n - 1)
        return [
            ("above range", hi + 1),
            ("below range", lo - 1),
            ("float", float(lo)),
            ("numpy float", np.float32(lo)),
            ("bool", True),
            ("numpy bool", np.bool_(False)),
            ("vector", np.array([lo, lo])),
            ("float 0-d array", np.array(float(lo))),
            ("string", "0"),
            ("None", None),
        ]
    if isinstance(space, spaces.Box):
        good = space.sample()
        return [
            ("wrong shape", np.zeros((*space.shape, 2), dtype=space.dtype)),
            ("nan", np.full(space.shape, np.nan, dtype=np.float64)),
            ("above high", np.full(space.shape, np.inf if space.is_bounded("above") else np.nan)),
            ("None", None),
            ("scalar for array", good.reshape(-1)[0] if good.size > 1 else np.zeros((2,))),
        ]
    if isinstance(space, spaces.MultiDiscrete):
        return [("above range", space.nvec + space.start), ("wrong shape", np.zeros((*space.shape, 2), int))]
    raise NotImplementedError(f"add bad actions for {space} here")  # new space types must be covered here


def good_joint(env: Any, rng: np.random.Generator) -> dict[str, Any]:
    return {a: sample_action(a, env.action_space(a), rng) for a in env.agents}


@entries
def test_out_of_space_actions_raise_value_error_naming_agent(entry: EnvEntry) -> None:
    """Every bad action, for the first and the last agent, raises ``ValueError`` naming that agent."""
    env = module_of(entry).parallel_env()
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for agent in (env.agents[0], env.agents[-1]):
        for label, action in bad_actions(env.action_space(agent)):
            joint = good_joint(env, rng)
            joint[agent] = action
            with pytest.raises(ValueError, match=agent):
                env.step(joint)
            assert env.agents, f"{label}: a rejected step must not change the episode"


@entries
def test_rejected_step_leaves_the_env_untouched(entry: EnvEntry) -> None:
    """A rejected joint action does not advance the env: the next good step matches a fresh env's."""
    mod = module_of(entry)
    env, ref = mod.parallel_env(), mod.parallel_env()
    env.reset(seed=3)
    ref.reset(seed=3)
    joint = good_joint(env, np.random.default_rng(0))
    with pytest.raises((ValueError, KeyError)):
        env.step({**joint, env.agents[0]: bad_actions(env.action_space(env.agents[0]))[0][1]})
    with pytest.raises(KeyError):
        env.step({})
    out, want = env.step(joint), ref.step(joint)
    from gymnasium.utils.env_checker import data_equivalence

    assert data_equivalence(out, want, exact=True)


@entries
def test_agent_set_mismatch_raises_key_error_listing_agents(entry: EnvEntry) -> None:
    """Missing, extra and unknown agents raise ``KeyError`` that names them."""
    env = module_of(entry).parallel_env()
    env.reset(seed=0)
    joint = good_joint(env, np.random.default_rng(0))
    first = env.agents[0]
    missing = {a: x for a, x in joint.items() if a != first}
    with pytest.raises(KeyError, match=rf"missing \['{first}'\]"):
        env.step(missing)
    with pytest.raises(KeyError, match=r"unexpected \['intruder_7'\]"):
        env.step({**joint, "intruder_7": 0})
    with pytest.raises(KeyError, match=r"missing .*unexpected \[0\]"):
        env.step({0: 0, **missing})
    with pytest.raises(TypeError, match="dict"):
        env.step([joint[a] for a in env.agents])


@entries
def test_step_before_reset_and_after_end_raise_runtime_error(entry: EnvEntry) -> None:
    mod = module_of(entry)
    env = mod.parallel_env(max_cycles=2)
    rng = np.random.default_rng(0)
    joint = {a: sample_action(a, env.action_space(a), rng) for a in env.possible_agents}
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(joint)
    env.reset(seed=0)
    while env.agents:
        env.step(good_joint(env, rng))
    with pytest.raises(RuntimeError, match="finished"):
        env.step(joint)


@entries
def test_checked_aec_env_rejects_bad_input(entry: EnvEntry) -> None:
    """The AEC ``env()``: order errors are ``RuntimeError``; bad actions ``ValueError``; done agents take None."""
    mod = module_of(entry)
    env = mod.env(max_cycles=1)
    with pytest.raises(RuntimeError, match="before reset"):
        env.step(0)
    for call in (lambda: env.observe(env.possible_agents[0]), env.state, env.agent_iter):
        with pytest.raises(RuntimeError, match="before reset"):
            call()
    env.reset(seed=0)
    agent = env.agent_selection
    for label, action in bad_actions(env.action_space(agent)):
        with pytest.raises(ValueError, match=agent):
            env.step(action)
        assert env.agent_selection == agent, label
    rng = np.random.default_rng(0)
    for a in env.agent_iter():
        done = env.terminations[a] or env.truncations[a]
        if done:
            with pytest.raises(ValueError, match="must be None"):
                env.step(sample_action(a, env.action_space(a), rng))
        env.step(None if done else sample_action(a, env.action_space(a), rng))
    with pytest.raises(RuntimeError, match="finished"):
        env.step(None)


@entries
def test_gymnasium_joint_view_rejects_bad_input(entry: EnvEntry) -> None:
    env = gymnasium.make(f"incentive_envs/{entry.gym_name}-v0").unwrapped
    space = env.action_space
    good = space.sample()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(good)
    env.reset(seed=0)
    if isinstance(space, spaces.MultiDiscrete):
        for bad in (space.nvec + space.start, good.astype(float), good.astype(bool), good[:-1], [good]):
            with pytest.raises(ValueError, match="joint action"):
                env.step(bad)
    else:
        with pytest.raises((KeyError, ValueError)):
            env.step({})
    while True:
        _, _, term, trunc, _ = env.step(space.sample())
        if term or trunc:
            break
    with pytest.raises(RuntimeError, match="finished"):
        env.step(good)


@entries
def test_gymnasium_single_agent_view_rejects_bad_input(entry: EnvEntry) -> None:
    env = gymnasium.make(f"incentive_envs/{entry.gym_name}SingleAgent-v0").unwrapped
    learner = env.learner
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    for _, action in bad_actions(env.action_space):
        with pytest.raises(ValueError, match=learner):
            env.step(action)
    while True:
        _, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            break
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_single_agent_view_rejects_unknown_learner_and_policies() -> None:
    with pytest.raises(KeyError, match="nobody"):
        gymnasium.make("incentive_envs/IPDSingleAgent-v0", learner="nobody")
    with pytest.raises(KeyError, match="ghost"):
        gymnasium.make("incentive_envs/IPDSingleAgent-v0", policies={"ghost": lambda o, r: 0})
    with pytest.raises(KeyError, match="player_0"):
        gymnasium.make("incentive_envs/IPDSingleAgent-v0", policies={"player_0": lambda o, r: 0})


def test_bad_constructor_arguments_through_the_registries() -> None:
    """Bad kwargs fail at construction through ``pettingzoo.make`` and ``gymnasium.make`` alike."""
    import pettingzoo

    with pytest.raises(ValueError, match="min_at_lever"):
        pettingzoo.make("parallel", "incentive_envs/escape_room-v0", n_agents=2, min_at_lever=2)
    with pytest.raises(ValueError, match="max_cycles"):
        pettingzoo.make("aec", "incentive_envs/ipd-v0", max_cycles=0)
    with pytest.raises(ValueError, match="n_agents"):
        gymnasium.make("incentive_envs/EscapeRoom-v0", n_agents=1)


OPTIMIZED_CHECKS = textwrap.dedent(
    """
    import sys
    import numpy as np
    from incentive_envs import escape_room, ipd, matrix_game

    def expect(error, call):
        try:
            call()
        except error as exc:
            return str(exc)
        raise SystemExit(f"no {error.__name__} from {call}")

    if sys.flags.optimize < 1:
        raise SystemExit("not running under -O")
    for mod in (escape_room, ipd):
        env = mod.parallel_env()
        expect(RuntimeError, lambda: env.step({a: 0 for a in env.possible_agents}))
        env.reset(seed=0)
        acts = {a: 0 for a in env.agents}
        for bad in (99, -1, 0.0, True, np.array([0, 1])):
            msg = expect(ValueError, lambda: env.step({**acts, env.agents[0]: bad}))
            if env.agents[0] not in msg:
                raise SystemExit(f"message does not name the agent: {msg}")
        expect(KeyError, lambda: env.step({**acts, "x": 0}))
        aec = mod.env()
        expect(RuntimeError, lambda: aec.step(0))
        aec.reset(seed=0)
        expect(ValueError, lambda: aec.step(7))
    expect(ValueError, lambda: escape_room.EscapeRoomEnv(n_agents=1))
    expect(ValueError, lambda: matrix_game.MatrixGame(np.full((2, 2, 2), np.nan)))
    import gymnasium
    g = gymnasium.make("incentive_envs/IPD-v0").unwrapped
    g.reset(seed=0)
    expect(ValueError, lambda: g.step(np.array([True, False])))
    print("all checks raised under -O")
    """
)


def test_checks_hold_under_python_dash_o() -> None:
    """The same checks raise with assertions stripped (``python -O``)."""
    out = subprocess.run(
        [sys.executable, "-O", "-c", OPTIMIZED_CHECKS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "all checks raised under -O" in out.stdout
