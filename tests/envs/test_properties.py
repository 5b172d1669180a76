"""Hypothesis properties of every registered game: agent-set algebra, spaces, finiteness, seeding, call order."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from incentive_envs import EnvEntry
from tests.envs.test_conformance import ENTRIES, entries, module_of, sample_action


def check_step_output(env: Any, live: list[str], out: tuple[Any, ...], seen_dead: set[str]) -> None:
    """The per-step contract: dict keys = agents live before the step, values of the right types and spaces."""
    obs, rewards, terms, truncs, infos = out
    for name, d in (
        ("obs", obs),
        ("rewards", rewards),
        ("terms", terms),
        ("truncs", truncs),
        ("infos", infos),
    ):
        assert set(d) == set(live), f"{name} keys {sorted(d)} != live agents {sorted(live)}"
    for a in live:
        space = env.observation_space(a)
        assert isinstance(obs[a], np.ndarray) and obs[a].dtype == space.dtype, (a, type(obs[a]))
        assert space.contains(obs[a]), (a, obs[a])
        assert type(rewards[a]) is float and math.isfinite(rewards[a]), (a, rewards[a])
        assert type(terms[a]) is bool and type(truncs[a]) is bool
        assert isinstance(infos[a], dict)
        assert (a in env.agents) == (not (terms[a] or truncs[a])), f"{a} done but live (or the reverse)"
    assert set(env.agents) <= set(env.possible_agents)
    assert not set(env.agents) & seen_dead, f"revived: {set(env.agents) & seen_dead}"
    seen_dead.update(a for a in live if a not in env.agents)


def episode(mod: Any, seed: int, action_seed: int, max_cycles: int) -> list[Any]:
    env = mod.parallel_env(max_cycles=max_cycles)
    rng = np.random.default_rng(action_seed)
    obs, infos = env.reset(seed=seed)
    assert set(obs) == set(infos) == set(env.agents) == set(env.possible_agents)
    trace: list[Any] = [(obs, infos)]
    dead: set[str] = set()
    while env.agents:
        live = list(env.agents)
        actions = {a: sample_action(a, env.action_space(a), rng) for a in live}
        out = env.step(actions)
        check_step_output(env, live, out, dead)
        trace.append(out)
    assert len(trace) - 1 <= max_cycles
    with pytest.raises(RuntimeError):
        env.step({a: sample_action(a, env.action_space(a), rng) for a in env.possible_agents})
    return trace


@entries
@given(seed=st.integers(0, 2**31 - 1), action_seed=st.integers(0, 2**16), max_cycles=st.integers(1, 12))
def test_episode_contract_and_same_seed_same_trajectory(
    entry: EnvEntry, seed: int, action_seed: int, max_cycles: int
) -> None:
    """Random episodes keep the step contract, end within ``max_cycles`` and replay bit-identically."""
    mod = module_of(entry)
    first = episode(mod, seed, action_seed, max_cycles)
    assert data_equivalence(first, episode(mod, seed, action_seed, max_cycles), exact=True)


def _machine_for(entry: EnvEntry) -> type[RuleBasedStateMachine]:
    """A state machine over reset / step / misuse for one game."""

    class EnvMachine(RuleBasedStateMachine):
        @initialize(max_cycles=st.integers(1, 6))
        def build(self, max_cycles: int) -> None:
            self.env = module_of(entry).parallel_env(max_cycles=max_cycles)
            self.max_cycles = max_cycles
            self.started = False
            self.steps = 0
            self.dead: set[str] = set()
            self.rng = np.random.default_rng(0)

        @rule(seed=st.one_of(st.none(), st.integers(0, 2**16)))
        def reset(self, seed: int | None) -> None:
            obs, _ = self.env.reset(seed=seed)
            assert set(obs) == set(self.env.possible_agents) == set(self.env.agents)
            self.started, self.steps, self.dead = True, 0, set()

        @precondition(lambda self: self.started and bool(self.env.agents))
        @rule()
        def step(self) -> None:
            live = list(self.env.agents)
            out = self.env.step({a: sample_action(a, self.env.action_space(a), self.rng) for a in live})
            check_step_output(self.env, live, out, self.dead)
            self.steps += 1

        @precondition(lambda self: not self.started or not self.env.agents)
        @rule()
        def step_when_not_running_raises(self) -> None:
            acts = {a: sample_action(a, self.env.action_space(a), self.rng) for a in self.env.possible_agents}
            with pytest.raises(RuntimeError, match="reset"):
                self.env.step(acts)

        @invariant()
        def within_horizon(self) -> None:
            if hasattr(self, "env"):
                assert self.steps <= self.max_cycles
                assert set(self.env.agents) <= set(self.env.possible_agents)

    EnvMachine.__name__ = f"EnvMachine_{entry.name}"
    EnvMachine.TestCase.settings = settings(stateful_step_count=25)
    return EnvMachine


for _entry in ENTRIES:
    globals()[f"TestStateMachine_{_entry.name}"] = _machine_for(_entry).TestCase
