"""Independent stable-baselines3 learners: one on-policy model per agent, stepped in lockstep.

:class:`IndependentSB3` trains one SB3 model (PPO or A2C) per agent of any ``ParallelEnv``; agents may have
different observation and action spaces. Every step it samples each model's action, steps ``n_copies`` env
copies together, and adds each agent's transitions to its own model's ``RolloutBuffer`` (bootstrapping values
at truncation, as SB3 does); each model then updates with its own ``train()``.

For one shared policy over all agents use :func:`wrappers.sb3.make_sb3_vec_env` instead. Seed layout: model
``j`` is built with ``seed + j``; env copy ``i`` is reset with ``seed + i`` at the first reset, later episodes
continue each copy's own RNG stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from incentive_envs.validation import check_positive_int, check_seed
from wrappers.sb3 import ALGOS, StepHook, build_parallel

__all__ = ["IndependentSB3"]


class _DrivenVecEnv(VecEnv):
    """Spaces-only stand-in so an SB3 model can be built for one agent; :class:`IndependentSB3` drives it."""

    render_mode = None

    def __init__(self, num_envs: int, observation_space: spaces.Space[Any], action_space: spaces.Space[Any]):
        super().__init__(num_envs, observation_space, action_space)

    def _refuse(self) -> Any:
        raise RuntimeError(
            "this model is stepped by IndependentSB3; call IndependentSB3.learn(), not model.learn()"
        )

    def reset(self) -> Any:
        return self._refuse()

    def step_async(self, actions: np.ndarray) -> None:
        self._refuse()

    def step_wait(self) -> VecEnvStepReturn:
        return self._refuse()

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None for _ in self._get_indices(indices)]
        raise AttributeError(attr_name)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(attr_name)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kw: Any
    ) -> list[Any]:
        raise AttributeError(method_name)

    def env_is_wrapped(
        self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


class _Lockstep:
    """``n_copies`` parallel envs stepped together; copy ``i`` first resets with ``seed + i``."""

    def __init__(self, env_fn: Callable[[], ParallelEnv], n_copies: int, seed: int) -> None:
        self.envs = [build_parallel(env_fn) for _ in range(n_copies)]
        self.agents = list(self.envs[0].possible_agents)
        self.seed = seed

    def _stack(self, per_copy: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        return {a: np.stack([np.asarray(obs[a]) for obs in per_copy]) for a in self.agents}

    def reset(self) -> dict[str, np.ndarray]:
        return self._stack([env.reset(seed=self.seed + i)[0] for i, env in enumerate(self.envs)])

    def step(self, actions: Mapping[str, np.ndarray]) -> tuple[Any, ...]:
        """Returns per-agent arrays ``(next_obs, rewards, terms, truncs)``, flat infos and terminal obs."""
        n, m = len(self.envs), len(self.agents)
        next_obs, rewards = [], np.zeros((n, m), dtype=np.float32)
        terms, truncs = np.zeros((n, m), dtype=bool), np.zeros((n, m), dtype=bool)
        infos: list[dict[str, Any]] = []
        terminal: dict[int, Mapping[str, Any]] = {}
        for c, env in enumerate(self.envs):
            obs, rew, term, trunc, info = env.step({a: _scalar(actions[a][c]) for a in self.agents})
            left = [a for a in self.agents if a not in env.agents]
            if left and env.agents:
                raise RuntimeError(
                    f"IndependentSB3 needs every agent to act until the episode ends, but {left} left early; "
                    "wrap the env with wrappers.sb3.BlackDeath"
                )
            for j, a in enumerate(self.agents):
                rewards[c, j], terms[c, j], truncs[c, j] = rew[a], term[a], trunc[a]
                infos.append(dict(info.get(a, {})))
            if not env.agents:
                terminal[c] = obs
                obs, _ = env.reset()
            next_obs.append(obs)
        return self._stack(next_obs), rewards, terms, truncs, infos, terminal


def _scalar(action: np.ndarray) -> Any:
    return action.item() if action.shape == () else action


class IndependentSB3:
    """One SB3 on-policy model per agent, trained in lockstep on ``n_copies`` copies of a ``ParallelEnv``.

    Each model collects its agent's transitions into its own ``RolloutBuffer`` (with SB3's value
    bootstrapping on truncation) and updates with its own ``train()``. Agents may have different spaces; every
    agent must act until the episode ends (wrap with :class:`BlackDeath` otherwise). Model ``j`` is built
    with ``seed + j``; env copy ``i`` first resets with ``seed + i``. Same seed => same parameters (CPU).

    Args:
        env_fn: builds the ``ParallelEnv`` (called ``n_copies + 1`` times).
        n_copies: env copies (each model sees ``n_copies`` sub-envs).
        seed: base seed (required: independent learners must be reproducible).
        algo: ``"ppo"`` or ``"a2c"``.
        policy: SB3 policy name or class.
        model_kwargs: keyword arguments for every model (``n_steps``, ``learning_rate``...).
    """

    def __init__(
        self,
        env_fn: Callable[[], ParallelEnv],
        n_copies: int,
        seed: int,
        *,
        algo: str = "ppo",
        policy: str | type[Any] = "MlpPolicy",
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if algo not in ALGOS:
            raise ValueError(f"algo must be one of {sorted(ALGOS)}, got {algo!r}")
        seed_checked = check_seed(seed)
        if seed_checked is None:
            raise ValueError("IndependentSB3 needs an integer seed")
        self.seed = seed_checked
        self.n_copies = check_positive_int("n_copies", n_copies, 1)
        self.env_fn = env_fn
        spec = build_parallel(env_fn)
        self.agents: list[str] = list(spec.possible_agents)
        kwargs = dict(model_kwargs or {})
        kwargs.setdefault("device", "cpu")
        self.models: dict[str, OnPolicyAlgorithm] = {}
        for j, agent in enumerate(self.agents):
            stand_in = _DrivenVecEnv(self.n_copies, spec.observation_space(agent), spec.action_space(agent))
            model = ALGOS[algo](policy, stand_in, seed=self.seed + j, **kwargs)
            model.set_logger(Logger(folder=None, output_formats=[]))
            self.models[agent] = model
        steps = {model.n_steps for model in self.models.values()}
        if len(steps) != 1:
            raise ValueError(f"every model needs the same n_steps, got {sorted(steps)}")
        self.n_steps = steps.pop()
        self.num_timesteps = 0
        self._lockstep: _Lockstep | None = None
        self._obs: dict[str, np.ndarray] = {}
        self._starts = np.ones((self.n_copies, len(self.agents)), dtype=bool)

    def learn(
        self, total_timesteps: int, *, hook: StepHook | None = None, progress_bar: bool = False
    ) -> IndependentSB3:
        """Train every model for ``total_timesteps`` env steps per agent (rounded up to whole rollouts).

        ``hook(rewards, dones, infos)`` sees each step flat over ``copy * n_agents + agent`` (the layout of
        :class:`SB3VecEnv`), so one episode tracker serves both training paths.
        """
        total = check_positive_int("total_timesteps", total_timesteps, 1)
        if self._lockstep is None:
            self._lockstep = _Lockstep(self.env_fn, self.n_copies, self.seed)
            self._obs = self._lockstep.reset()
        iterations = math.ceil(total / (self.n_steps * self.n_copies))
        goal = self.num_timesteps + iterations * self.n_steps * self.n_copies
        bar = None
        if progress_bar:
            from tqdm.auto import tqdm

            bar = tqdm(total=goal - self.num_timesteps, desc="IndependentSB3")
        for _ in range(iterations):
            self._collect(hook)
            for model in self.models.values():
                model.num_timesteps = self.num_timesteps
                model._update_current_progress_remaining(self.num_timesteps, goal)
                model.train()
            if bar is not None:
                bar.update(self.n_steps * self.n_copies)
        if bar is not None:
            bar.close()
        return self

    def _collect(self, hook: StepHook | None) -> None:
        """One rollout of ``n_steps`` lockstep steps into every model's buffer (as SB3's collect_rollouts)."""
        lockstep = self._lockstep
        if lockstep is None:
            raise RuntimeError("_collect() before learn() set up the envs")
        for model in self.models.values():
            model.policy.set_training_mode(False)
            model.rollout_buffer.reset()
        for _ in range(self.n_steps):
            sampled, env_actions = {}, {}
            with torch.no_grad():
                for agent, model in self.models.items():
                    actions, values, log_probs = model.policy(obs_as_tensor(self._obs[agent], model.device))
                    actions_np = actions.cpu().numpy()
                    sampled[agent] = (actions_np, values, log_probs)
                    env_actions[agent] = _env_action(model, actions_np)
            next_obs, rewards, terms, truncs, infos, terminal = lockstep.step(env_actions)
            dones = terms | truncs
            self.num_timesteps += self.n_copies
            if hook is not None:
                hook(rewards.reshape(-1), dones.reshape(-1), infos)
            for j, (agent, model) in enumerate(self.models.items()):
                actions_np, values, log_probs = sampled[agent]
                reward = rewards[:, j].copy()
                for c in np.flatnonzero(truncs[:, j] & ~terms[:, j]):  # bootstrap at the time limit
                    terminal_obs = model.policy.obs_to_tensor(np.asarray(terminal[c][agent]))[0]
                    with torch.no_grad():
                        reward[c] += model.gamma * float(model.policy.predict_values(terminal_obs)[0])
                if isinstance(model.action_space, spaces.Discrete):
                    actions_np = actions_np.reshape(-1, 1)
                model.rollout_buffer.add(
                    self._obs[agent], actions_np, reward, self._starts[:, j], values, log_probs
                )
            self._obs = next_obs
            self._starts = dones
        for j, (agent, model) in enumerate(self.models.items()):
            with torch.no_grad():
                last_values = model.policy.predict_values(obs_as_tensor(self._obs[agent], model.device))
            model.rollout_buffer.compute_returns_and_advantage(
                last_values=last_values, dones=self._starts[:, j]
            )

    def predict(self, observations: Mapping[str, Any], deterministic: bool = False) -> dict[str, Any]:
        """Actions for the live agents named in ``observations`` (one observation each, not batched)."""
        unknown = sorted(set(observations) - set(self.models))
        if unknown:
            raise KeyError(f"no model for agents {unknown}; known: {self.agents}")
        out = {}
        for agent, obs in observations.items():
            action, _ = self.models[agent].predict(obs, deterministic=deterministic)
            out[agent] = _scalar(np.asarray(action))
        return out


def _env_action(model: OnPolicyAlgorithm, actions: np.ndarray) -> np.ndarray:
    """SB3's action post-processing: unsquash or clip Box actions, pass others through."""
    if isinstance(model.action_space, spaces.Box):
        if model.policy.squash_output:
            return model.policy.unscale_action(actions)
        return np.clip(actions, model.action_space.low, model.action_space.high)
    return actions
