"""stable-baselines3 adaptors for PettingZoo parallel envs: a parameter-sharing vector env and ghost agents.

Off-the-shelf SB3 agents on any ``ParallelEnv`` (for example one wrapped with a frozen incentive):

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
- :data:`ALGOS` (on-policy algorithms by name) and :data:`StepHook` (a per-step callback signature), shared
  with the learners built on these adaptors.

One model per agent (agents may differ) is a learner, not an adaptor: ``designer.sb3.IndependentSB3``.

Seed layout: env copy ``i`` is reset with ``seed + i`` at the first reset after seeding; later episodes
continue each copy's own RNG stream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
import supersuit as ss
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pettingzoo.utils import BaseParallelWrapper
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn
from supersuit.vector import ConcatVecEnv, ProcConcatVec
from supersuit.vector.multiproc_vec import decompress_info, numpy_deepcopy

from incentive_envs.validation import check_positive_int, check_seed

__all__ = ["ALGOS", "BlackDeath", "SB3VecEnv", "StepHook", "build_parallel", "make_sb3_vec_env"]

ALGOS: dict[str, type[OnPolicyAlgorithm]] = {"ppo": PPO, "a2c": A2C}
"""On-policy SB3 algorithms accepted by name."""

StepHook = Callable[[np.ndarray, np.ndarray, Sequence[Mapping[str, Any]]], None]
"""``hook(rewards, dones, infos)`` after every vector step, flat over ``copy * n_agents + agent``."""


def _fresh_seed() -> int:
    """A base seed from OS entropy, for callers who pass ``seed=None`` (copies must still differ)."""
    return int(np.random.SeedSequence().generate_state(1)[0] >> 1)


def build_parallel(env_fn: Callable[[], ParallelEnv]) -> ParallelEnv:
    """``env_fn()``, checked to be a PettingZoo ``ParallelEnv`` (SB3 paths take env factories)."""
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

    def step(self, actions: dict[str, Any]) -> tuple[dict[str, Any], ...]:
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
        base = check_seed(seed)
        self._pending_seed = _fresh_seed() if base is None else base
        self._seeds = [self._pending_seed + k // self.n_agents for k in range(self.num_envs)]
        return list(self._seeds)

    def reset(self, seed: int | None = None) -> np.ndarray:
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
            share one observation and one action space (else use ``designer.sb3.IndependentSB3``).
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
    n_copies = check_positive_int("n_copies", n_copies, 1)
    num_cpus = check_positive_int("num_cpus", num_cpus, 0)
    seed = check_seed(seed)
    par = build_parallel(env_fn)
    agents = list(par.possible_agents)
    obs0, act0 = par.observation_space(agents[0]), par.action_space(agents[0])
    differing = [a for a in agents if par.observation_space(a) != obs0 or par.action_space(a) != act0]
    if differing:
        raise ValueError(
            f"parameter sharing needs identical spaces, but {differing} differ from {agents[0]!r}; "
            "use designer.sb3.IndependentSB3 or SuperSuit's pad_observations_v0/pad_action_space_v0"
        )
    if black_death:
        par = BlackDeath(par)
    markov = ss.pettingzoo_env_to_vec_env_v1(par)
    venv = ss.concat_vec_envs_v1(markov, n_copies, num_cpus=num_cpus, base_class="gymnasium")
    return SB3VecEnv(venv, n_copies=n_copies, agents=agents, seed=seed)
