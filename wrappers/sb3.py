"""stable-baselines3 on PettingZoo parallel envs: a parameter-sharing vector env and independent learners.

Two ways to train off-the-shelf SB3 agents on any ``ParallelEnv`` (for example one wrapped with a frozen
incentive):

- :func:`make_sb3_vec_env`: **parameter sharing**. Every agent of every env copy is one SB3 sub-env, so one
  policy acts for all agents (needs identical spaces). Built on SuperSuit's ``pettingzoo_env_to_vec_env_v1`` +
  ``concat_vec_envs_v1(base_class="gymnasium")``; :class:`SB3VecEnv` replaces SuperSuit's ``SB3VecEnvWrapper``
  and fixes SuperSuit 3.11's problems:

  * ``PPO(seed=...)`` and ``reset(seed=...)`` work (SuperSuit: ``AttributeError: ... no attribute 'seed'``);
  * env copy ``i`` is seeded with ``seed + i``, also across processes (``num_cpus > 0``; SuperSuit overlaps
    the seeds of neighbouring workers), and unseeded copies get distinct seeds too (SuperSuit: identical
    clones);
  * reset infos come back as one flat dict per sub-env also with ``num_cpus > 0``;
  * ``info["TimeLimit.truncated"]`` is set on every done sub-env, so SB3 bootstraps values at ``max_cycles``.

- :class:`BlackDeath`: our own OR-logic replacement for ``supersuit.black_death_v3`` (which ANDs terminations
  with truncations and so adds a phantom step after a truncation), for envs where agents leave mid-episode.
- :class:`IndependentSB3`: one SB3 on-policy model per agent (agents may differ), stepped in lockstep through
  the shared envs; rollouts go into each model's own ``RolloutBuffer`` and each model updates with its own
  ``train()``.

Seed layout (both paths): env copy ``i`` is reset with ``seed + i`` at the first reset after seeding; later
episodes continue each copy's own RNG stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
import supersuit as ss
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils import BaseParallelWrapper
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn
from supersuit.vector import ConcatVecEnv, ProcConcatVec
from supersuit.vector.multiproc_vec import decompress_info, numpy_deepcopy

__all__ = ["ALGOS", "BlackDeath", "IndependentSB3", "SB3VecEnv", "StepHook", "make_sb3_vec_env"]

ALGOS: dict[str, type[OnPolicyAlgorithm]] = {"ppo": PPO, "a2c": A2C}
"""On-policy SB3 algorithms accepted by name."""

StepHook = Callable[[np.ndarray, np.ndarray, Sequence[Mapping[str, Any]]], None]
"""``hook(rewards, dones, infos)`` after every vector step, flat over ``copy * n_agents + agent``."""


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be None or an integer >= 0, got {seed!r}")
    return int(seed)


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _fresh_seed() -> int:
    """A base seed from OS entropy, for callers who pass ``seed=None`` (copies must still differ)."""
    return int(np.random.SeedSequence().generate_state(1)[0] >> 1)


def _build_parallel(env_fn: Callable[[], ParallelEnv]) -> ParallelEnv:
    env = env_fn()
    if not isinstance(env, ParallelEnv):
        raise TypeError(f"env_fn must return a pettingzoo ParallelEnv, got {type(env).__name__}")
    return env


class BlackDeath(BaseParallelWrapper):
    """Keep agents that left the episode as "ghosts" (zero observation, zero reward) until everyone is done.

    An agent is done once it is terminated OR truncated; the episode ends on the step where the last agent is
    done, so a ``max_cycles`` truncation ends it at exactly ``max_cycles`` steps (``supersuit.black_death_v3``
    3.11 ANDs the flags and adds a phantom step). On that final step each agent reports how *it* ended:
    ``terminated`` if it terminated (earlier or now), else ``truncated``; before it, nobody is reported done.
    Ghost actions are accepted and ignored. Needs ``Box`` observation spaces (the ghost observation is zeros).
    """

    def __init__(self, env: ParallelEnv) -> None:
        super().__init__(env)
        for agent in env.possible_agents:
            space = env.observation_space(agent)
            if not isinstance(space, spaces.Box):
                raise ValueError(f"BlackDeath needs Box observation spaces; {agent!r} has {space}")
        self.agents: list[str] = []
        self._ended: dict[str, tuple[bool, bool]] = {}

    def _ghost_obs(self, agent: str) -> np.ndarray:
        space = self.env.observation_space(agent)
        return np.zeros(space.shape, dtype=space.dtype)

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        obs, infos = self.env.reset(seed=seed, options=options)
        self.agents = list(self.env.possible_agents)
        self._ended = {}
        return {a: obs[a] if a in obs else self._ghost_obs(a) for a in self.agents}, dict(infos)

    def step(self, actions: dict[str, Any]) -> tuple[dict[str, Any], ...]:  # type: ignore[override]
        if not self.agents:
            raise RuntimeError(
                "BlackDeath.step() called before reset() or after the episode finished; call reset()"
            )
        missing = sorted(set(self.agents) - set(actions))
        if missing:
            raise KeyError(f"joint action is missing agents {missing}")
        obs, rews, terms, truncs, infos = self.env.step({a: actions[a] for a in self.env.agents})
        for agent in terms:
            if terms[agent] or truncs[agent]:  # OR: either flag ends this agent
                self._ended[agent] = (bool(terms[agent]), bool(truncs[agent]))
        done = all(a in self._ended for a in self.agents)
        out_terms = {a: done and self._ended[a][0] for a in self.agents}
        out_truncs = {a: done and not self._ended[a][0] and self._ended[a][1] for a in self.agents}
        out = (
            {a: obs[a] if a in obs else self._ghost_obs(a) for a in self.agents},
            {a: float(rews.get(a, 0.0)) for a in self.agents},
            out_terms,
            out_truncs,
            {a: dict(infos.get(a, {})) for a in self.agents},
        )
        if done:
            self.agents = []
        return out


class SB3VecEnv(VecEnv):
    """SB3 ``VecEnv`` over SuperSuit's per-agent vector env; build it with :func:`make_sb3_vec_env`.

    Sub-env ``k`` is copy ``k // n_agents``, agent ``agents[k % n_agents]``.

    ``seed(s)`` (which ``PPO(seed=s)`` calls) schedules copy ``i`` to reset with ``s + i`` at the next
    ``reset()``; ``reset(seed=s)`` does both at once.
    """

    def __init__(
        self, venv: ConcatVecEnv | ProcConcatVec, *, n_copies: int, agents: Sequence[str], seed: int | None
    ) -> None:
        self.venv = venv
        self.agents = tuple(agents)
        self.n_agents = len(self.agents)
        self.n_copies = n_copies
        if venv.num_envs != n_copies * self.n_agents:
            raise ValueError(
                f"vector env has {venv.num_envs} sub-envs, expected {n_copies} x {self.n_agents}"
            )
        super().__init__(venv.num_envs, venv.observation_space, venv.action_space)
        self._pending_seed: int | None = None
        self._ever_reset = False
        if seed is not None:
            self.seed(seed)

    # -- seeding and reset -------------------------------------------------------------------------
    def seed(self, seed: int | None = None) -> list[int | None]:
        """Schedule copy ``i`` to reset with ``seed + i`` (a fresh entropy seed if None); per-sub-env list."""
        base = _check_seed(seed)
        self._pending_seed = _fresh_seed() if base is None else base
        self._seeds = [self._pending_seed + k // self.n_agents for k in range(self.num_envs)]
        return list(self._seeds)

    def reset(self, seed: int | None = None) -> np.ndarray:  # type: ignore[override]
        """Reset every copy; ``seed`` (or the one from :meth:`seed`) seeds copy ``i`` with ``seed + i``."""
        if seed is not None or (self._pending_seed is None and not self._ever_reset):
            self.seed(seed)  # first reset without a seed: distinct entropy seeds rather than identical clones
        options = self._options[0] or None
        if any(opt != self._options[0] for opt in self._options):
            raise ValueError("per-sub-env reset options must be equal: one reset serves all agents of a copy")
        seed_now, self._pending_seed = self._pending_seed, None
        if isinstance(self.venv, ProcConcatVec):
            obs, infos = self._reset_processes(seed_now, options)
        else:
            obs, infos = self.venv.reset(seed=seed_now, options=options)
        self.reset_infos = [dict(info) for info in infos]
        self._ever_reset = True
        self._reset_seeds()
        self._reset_options()
        return obs

    def _reset_processes(
        self, seed: int | None, options: dict[str, Any] | None
    ) -> tuple[Any, list[dict[str, Any]]]:
        """Reset each worker with the seed of its first copy (``ProcConcatVec.reset`` sends ``seed + worker``,
        which overlaps the copies of neighbouring workers) and decompress the returned infos."""
        venv = self.venv
        starts = venv.idx_starts
        for worker, pipe in enumerate(venv.pipes):
            first_copy = starts[worker] // self.n_agents
            pipe.send(("reset", (None if seed is None else seed + first_copy, options)))
        compressed = venv._receive_info()
        infos = decompress_info(venv.num_envs, starts, compressed)
        return numpy_deepcopy(venv.observations_buffers), infos

    # -- stepping ----------------------------------------------------------------------------------
    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terms, truncs, raw_infos = self.venv.step_wait()
        terms = np.asarray(terms, dtype=bool)
        truncs = np.asarray(truncs, dtype=bool)
        dones = terms | truncs
        infos = [dict(info) for info in raw_infos]  # ProcConcatVec aliases one {} across sub-envs
        for k in np.flatnonzero(dones):
            infos[k]["TimeLimit.truncated"] = bool(truncs[k] and not terms[k])
            if "terminal_observation" not in infos[k]:
                raise RuntimeError(
                    f"sub-env {k} ({self.agents[k % self.n_agents]}) is done without a terminal observation; "
                    "agents that leave mid-episode need make_sb3_vec_env(..., black_death=True)"
                )
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    # -- attribute access (in-process copies only) -------------------------------------------------
    def _parallel_envs(self, indices: VecEnvIndices) -> list[ParallelEnv]:
        if not isinstance(self.venv, ConcatVecEnv):
            raise AttributeError("env attributes are not reachable across processes (num_cpus > 0)")
        return [self.venv.vec_envs[k // self.n_agents].par_env for k in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            return [getattr(self.venv, "render_mode", None) for _ in self._get_indices(indices)]
        return [getattr(env, attr_name) for env in self._parallel_envs(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        for env in self._parallel_envs(indices):
            setattr(env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kw: Any
    ) -> list[Any]:
        return [getattr(env, method_name)(*method_args, **kw) for env in self._parallel_envs(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        return [False for _ in self._get_indices(indices)]  # PettingZoo envs are never gymnasium wrappers


def make_sb3_vec_env(
    env_fn: Callable[[], ParallelEnv],
    n_copies: int,
    seed: int | None,
    *,
    num_cpus: int = 0,
    black_death: bool = False,
) -> SB3VecEnv:
    """Parameter-sharing SB3 vector env: ``n_copies`` copies of ``env_fn()``, one sub-env per agent per copy.

    Args:
        env_fn: builds the ``ParallelEnv`` (called once; SuperSuit clones it into the copies). All agents must
            share one observation and one action space (else use :class:`IndependentSB3`).
        n_copies: number of env copies; ``num_envs = n_copies * len(possible_agents)``.
        seed: copy ``i`` is reset with ``seed + i``; None draws a fresh base seed (copies still differ).
        num_cpus: worker processes (0 or 1: in-process). Seeds and infos are identical to the in-process case.
        black_death: wrap with :class:`BlackDeath` so agents may leave mid-episode.

    Example:
        >>> from incentive_envs.escape_room import parallel_env
        >>> venv = make_sb3_vec_env(lambda: parallel_env(n_agents=3, min_at_lever=2), n_copies=2, seed=0)
        >>> venv.num_envs, venv.reset().shape
        (6, (6, 9))
    """
    n_copies = _check_count("n_copies", n_copies, 1)
    num_cpus = _check_count("num_cpus", num_cpus, 0)
    seed = _check_seed(seed)
    par = _build_parallel(env_fn)
    agents = list(par.possible_agents)
    obs0, act0 = par.observation_space(agents[0]), par.action_space(agents[0])
    differing = [a for a in agents if par.observation_space(a) != obs0 or par.action_space(a) != act0]
    if differing:
        raise ValueError(
            f"parameter sharing needs identical spaces, but {differing} differ from {agents[0]!r}; "
            "use IndependentSB3 or SuperSuit's pad_observations_v0/pad_action_space_v0"
        )
    if black_death:
        par = BlackDeath(par)
    markov = ss.pettingzoo_env_to_vec_env_v1(par)
    venv = ss.concat_vec_envs_v1(markov, n_copies, num_cpus=num_cpus, base_class="gymnasium")
    return SB3VecEnv(venv, n_copies=n_copies, agents=agents, seed=seed)


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
        self.envs = [_build_parallel(env_fn) for _ in range(n_copies)]
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
        seed_checked = _check_seed(seed)
        if seed_checked is None:
            raise ValueError("IndependentSB3 needs an integer seed")
        self.seed = seed_checked
        self.n_copies = _check_count("n_copies", n_copies, 1)
        self.env_fn = env_fn
        spec = _build_parallel(env_fn)
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
        total = _check_count("total_timesteps", total_timesteps, 1)
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
