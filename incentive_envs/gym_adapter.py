"""Single-agent Gymnasium views of any PettingZoo ``ParallelEnv``.

Gymnasium 1.x ``make`` only returns ``gymnasium.Env`` subclasses, so a multi-agent game reaches
``gymnasium.make`` through one of two views:

- :class:`JointActionEnv`: one controller picks every agent's action (the "social planner" reference).
  Reward = social welfare (sum of agents' rewards); per-agent rewards go to ``info["rewards"]``.
- :class:`SingleAgentEnv`: one agent learns, the others follow given policies (default: uniform random,
  drawn from the env's seeded RNG). Reward = the learner's own reward.

Spaces are chosen so that stable-baselines3 can train on them directly: discrete joint actions are a
``MultiDiscrete``; equal-shaped Box observations are concatenated (flat vectors end to end, images along the
channel axis).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from incentive_envs.validation import check_agent_set

__all__ = ["AgentPolicy", "JointActionEnv", "SingleAgentEnv"]

AgentPolicy = Callable[[Any, np.random.Generator], Any]
"""A fixed policy for a non-learning agent: ``policy(observation, rng) -> action``."""


def _joint_obs_space(par: ParallelEnv) -> tuple[spaces.Space[Any], Callable[[Mapping[str, Any]], Any]]:
    """Joint observation space and an encoder from the per-agent observation dict to it."""
    agents = list(par.possible_agents)
    subs = [par.observation_space(a) for a in agents]
    first = subs[0]
    same_box = all(
        isinstance(s, spaces.Box) and s.shape == first.shape and s.dtype == first.dtype for s in subs
    )
    if same_box and len(first.shape) == 3:
        low = np.concatenate([s.low for s in subs], axis=-1)
        high = np.concatenate([s.high for s in subs], axis=-1)
        space: spaces.Space[Any] = spaces.Box(low, high, dtype=first.dtype)

        def encode_image(obs: Mapping[str, Any]) -> Any:
            parts = [_obs_or_zeros(obs, a, s) for a, s in zip(agents, subs, strict=True)]
            return np.concatenate(parts, axis=-1)

        return space, encode_image
    if same_box:
        low = np.concatenate([s.low.reshape(-1) for s in subs])
        high = np.concatenate([s.high.reshape(-1) for s in subs])
        space = spaces.Box(low, high, dtype=first.dtype)

        def encode_flat(obs: Mapping[str, Any]) -> Any:
            parts = [_obs_or_zeros(obs, a, s).reshape(-1) for a, s in zip(agents, subs, strict=True)]
            return np.concatenate(parts)

        return space, encode_flat
    space = spaces.Dict({a: s for a, s in zip(agents, subs, strict=True)})

    def encode_dict(obs: Mapping[str, Any]) -> Any:
        return {a: _obs_or_zeros(obs, a, s) for a, s in zip(agents, subs, strict=True)}

    return space, encode_dict


def _obs_or_zeros(obs: Mapping[str, Any], agent: str, space: spaces.Space[Any]) -> Any:
    """Observation of ``agent``, or a zero observation of its space when the agent is gone."""
    if agent in obs:
        return obs[agent]
    if isinstance(space, spaces.Box):
        return np.zeros(space.shape, dtype=space.dtype)
    return spaces.utils.unflatten(space, np.zeros(spaces.utils.flatdim(space)))


class _ParallelView(gym.Env[Any, Any]):
    """Common plumbing: owns the parallel env, forwards seeding, rendering and closing."""

    def __init__(
        self, make_parallel: Callable[..., ParallelEnv], render_mode: str | None, **kwargs: Any
    ) -> None:
        self.parallel = make_parallel(**kwargs)
        modes = list(self.parallel.metadata.get("render_modes", []))
        if render_mode is not None and render_mode not in modes:
            # SB3's make_vec_env always asks for "rgb_array"; accept it and render nothing rather than fail.
            render_mode = None
        self.render_mode = render_mode
        if render_mode is not None:
            self.parallel.render_mode = render_mode
        self.metadata = {"render_modes": modes, "render_fps": self.parallel.metadata.get("render_fps", 4)}
        self._last_obs: dict[str, Any] = {}

    def render(self) -> Any:
        return self.parallel.render() if self.render_mode is not None else None

    def close(self) -> None:
        self.parallel.close()

    def state(self) -> Any:
        """The underlying game's global state (the designer's view)."""
        return self.parallel.state()


class JointActionEnv(_ParallelView):
    """Centralised view: the action names every agent's action, the reward is the sum of agents' rewards.

    ``info["rewards"]`` holds the per-agent rewards of the step (0.0 at reset), ``info["agent_infos"]`` the
    per-agent infos; reset and step infos have the same keys.
    """

    def __init__(
        self, make_parallel: Callable[..., ParallelEnv], render_mode: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(make_parallel, render_mode, **kwargs)
        self.agents = list(self.parallel.possible_agents)
        acts = [self.parallel.action_space(a) for a in self.agents]
        if all(isinstance(s, spaces.Discrete) for s in acts):
            self.action_space = spaces.MultiDiscrete(
                [int(s.n) for s in acts], start=[int(s.start) for s in acts]
            )
            self._decode = lambda act: {a: int(x) for a, x in zip(self.agents, np.asarray(act), strict=True)}
        else:
            self.action_space = spaces.Dict({a: s for a, s in zip(self.agents, acts, strict=True)})
            self._decode = self._decode_dict
        self.observation_space, self._encode = _joint_obs_space(self.parallel)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        obs, infos = self.parallel.reset(seed=seed, options=options)
        self._last_obs = dict(obs)
        return self._encode(obs), {"rewards": dict.fromkeys(self.parallel.agents, 0.0), "agent_infos": infos}

    def _decode_dict(self, action: Mapping[str, Any]) -> dict[str, Any]:
        check_agent_set(action, self.agents)
        return dict(action)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        live = list(self.parallel.agents)
        if not live:
            raise RuntimeError(
                "step() called before reset() or after the episode finished; call reset() first"
            )
        if isinstance(self.action_space, spaces.MultiDiscrete):
            arr = np.asarray(action)
            # MultiDiscrete.contains casts bools (and integral floats from lists) silently; demand integers.
            if not np.issubdtype(arr.dtype, np.integer) or not self.action_space.contains(arr):
                raise ValueError(
                    f"joint action {action!r} (dtype {arr.dtype}, shape {arr.shape}) is not an integer "
                    f"element of {self.action_space}"
                )
        elif not isinstance(action, Mapping):
            raise ValueError(
                f"joint action must be a dict keyed by agent for {self.action_space}, got {action!r}"
            )
        joint = self._decode(action)
        obs, rewards, terms, _, infos = self.parallel.step({a: joint[a] for a in live})
        self._last_obs.update(obs)
        terminated = bool(live) and all(terms.get(a, False) for a in live)
        truncated = (not terminated) and not self.parallel.agents
        welfare = float(sum(rewards.values()))
        return (
            self._encode(self._last_obs),
            welfare,
            terminated,
            truncated,
            {"rewards": dict(rewards), "agent_infos": infos},
        )


def uniform_random_policy(observation: Any, rng: np.random.Generator, space: spaces.Space[Any]) -> Any:
    """Sample uniformly from ``space`` using ``rng`` (so the view stays seed-deterministic)."""
    if isinstance(space, spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    sample_space = space.__class__.__new__(space.__class__)
    sample_space.__dict__.update(space.__dict__)
    sample_space._np_random = rng
    return sample_space.sample()


class SingleAgentEnv(_ParallelView):
    """One learner among fixed-policy agents.

    Args:
        make_parallel: factory of the multi-agent game.
        learner: the agent controlled through ``step`` (default: the first possible agent).
        policies: fixed policies ``policy(obs, rng) -> action`` for the other agents; missing ones act
            uniformly at random, drawn from this view's seeded RNG.
        render_mode: forwarded to the game if it supports it.
        **kwargs: forwarded to ``make_parallel``.

    ``info`` is the learner's own info plus ``info["rewards"]``, every agent's reward of the step (0.0 at reset).
    """

    def __init__(
        self,
        make_parallel: Callable[..., ParallelEnv],
        learner: str | None = None,
        policies: Mapping[str, AgentPolicy] | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(make_parallel, render_mode, **kwargs)
        agents = list(self.parallel.possible_agents)
        self.learner = agents[0] if learner is None else learner
        if self.learner not in agents:
            raise KeyError(f"learner {self.learner!r} is not one of {agents}")
        policies = dict(policies or {})
        unknown = sorted(set(policies) - set(agents) - {self.learner})
        if unknown or self.learner in policies:
            raise KeyError(
                f"policies given for unknown agents or for the learner: {unknown or [self.learner]}"
            )
        self.policies = policies
        self.action_space = self.parallel.action_space(self.learner)
        self.observation_space = self.parallel.observation_space(self.learner)
        self._policy_rng, _ = seeding.np_random(None)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._policy_rng, _ = seeding.np_random(seed + 1)
        obs, infos = self.parallel.reset(seed=seed, options=options)
        self._last_obs = dict(obs)
        info = dict(infos.get(self.learner, {}))
        info["rewards"] = dict.fromkeys(self.parallel.agents, 0.0)
        return obs[self.learner], info

    def _other_action(self, agent: str) -> Any:
        policy = self.policies.get(agent)
        if policy is None:
            return uniform_random_policy(
                self._last_obs.get(agent), self._policy_rng, self.parallel.action_space(agent)
            )
        return policy(self._last_obs.get(agent), self._policy_rng)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.learner not in self.parallel.agents:
            raise RuntimeError(f"{self.learner} is done or the episode has not started; call reset() first")
        joint = {a: self._other_action(a) for a in self.parallel.agents if a != self.learner}
        joint[self.learner] = action
        obs, rewards, terms, truncs, infos = self.parallel.step(joint)
        self._last_obs.update(obs)
        terminated = bool(terms[self.learner])
        truncated = bool(truncs[self.learner]) and not terminated
        if not terminated and not truncated and self.learner not in self.parallel.agents:
            truncated = True
        info = dict(infos[self.learner])
        info["rewards"] = dict(rewards)
        return self._last_obs[self.learner], float(rewards[self.learner]), terminated, truncated, info
