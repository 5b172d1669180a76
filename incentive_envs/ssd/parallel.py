"""PettingZoo ``ParallelEnv`` over the batched engine with a batch of one (one implementation of the rules)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle, seeding
from numpy.typing import NDArray
from pettingzoo import ParallelEnv

from incentive_envs.ssd import kernels
from incentive_envs.ssd.config import SSDConfig, make_config
from incentive_envs.ssd.engine import BatchedSSD
from incentive_envs.validation import check_positive_int, coerce_joint_discrete, require_started

__all__ = ["SSDParallelEnv"]

_RENDER_MODES = ("rgb_array", "ansi")


class SSDParallelEnv(ParallelEnv[str, NDArray[np.uint8], int], EzPickle):
    """One Cleanup or Harvest game as a PettingZoo ``ParallelEnv`` (see ``incentive_envs.cleanup``).

    Args:
        game: ``"cleanup"`` or ``"harvest"`` (set by the subclasses).
        map_name: preset (``CLEANUP_PRESETS`` / ``HARVEST_PRESETS``) giving the defaults.
        ascii_map: a custom map replacing the preset's.
        render_mode: None, ``"rgb_array"`` or ``"ansi"`` (``"human"`` is accepted and renders nothing, as
            PettingZoo's ``render_test`` builds every env with it first).
        render_scale: pixels per cell of ``"rgb_array"`` frames.
        max_cycles: alias of ``max_steps`` (PettingZoo's registry and ``max_cycles_test`` use it).
        **params: any :class:`SSDConfig` field.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "ssd_v0",
        "render_modes": list(_RENDER_MODES),
        "is_parallelizable": True,
        "render_fps": 5,
    }
    default_game: ClassVar[str] = "cleanup"
    default_map: ClassVar[str] = "small"

    def __init__(
        self,
        map_name: str | None = None,
        ascii_map: Sequence[str] | None = None,
        render_mode: str | None = None,
        render_scale: int = 16,
        max_cycles: int | None = None,
        **params: Any,
    ) -> None:
        EzPickle.__init__(
            self,
            map_name=map_name,
            ascii_map=ascii_map,
            render_mode=render_mode,
            render_scale=render_scale,
            max_cycles=max_cycles,
            **params,
        )
        if max_cycles is not None:
            if "max_steps" in params and params["max_steps"] != max_cycles:
                raise ValueError(f"max_cycles={max_cycles} contradicts max_steps={params['max_steps']}")
            params["max_steps"] = max_cycles
        self.config: SSDConfig = make_config(
            self.default_game, self.default_map if map_name is None else map_name, ascii_map, **params
        )
        if render_mode is not None and render_mode not in (*_RENDER_MODES, "human"):
            raise ValueError(f"render_mode must be None, 'rgb_array', 'ansi' or 'human', got {render_mode!r}")
        self.render_mode = render_mode
        self.render_scale = check_positive_int("render_scale", render_scale, 1)
        self.engine = BatchedSSD(self.config, batch_size=1)
        self.max_steps = self.config.max_steps
        self.possible_agents = [f"agent_{i}" for i in range(self.config.n_agents)]
        self.agent_name_mapping = {a: i for i, a in enumerate(self.possible_agents)}
        self.action_names = self.config.action_names
        self._obs_space = spaces.Box(0, 255, shape=self.engine.view_shape, dtype=np.uint8)
        self._act_space = spaces.Discrete(self.engine.n_actions)
        self.state_space = spaces.Box(0, 255, shape=self.engine.state_shape(), dtype=np.uint8)
        self.np_random, _ = seeding.np_random(None)
        self.agents: list[str] = []
        self._started = False
        # Step buffers reused across steps: their contents are turned into Python values before step returns
        # (observations are fresh arrays every step, as callers may keep them).
        n = self.config.n_agents
        self._spaces = (self._act_space,) * n
        self._actions = np.zeros((1, n), dtype=np.int64)
        self._rewards = np.zeros((1, n), dtype=np.float32)
        self._flags = np.zeros((kernels.N_FLAGS, 1, n), dtype=bool)
        self._cleared = np.zeros((1, n), dtype=np.int64)

    @functools.cache
    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    @functools.cache
    def action_space(self, agent: str) -> spaces.Discrete:
        return self._act_space

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[np.uint8]], dict[str, dict[str, Any]]]:
        if seed is not None:
            self.np_random, _ = seeding.np_random(seed)
        obs = self.engine.reset(generators=[self.np_random])
        self.agents = list(self.possible_agents)
        self._started = True
        infos = {
            a: {"apple": False, "cleaned": False, "waste_cleared": 0, "fired": False, "tagged": False, "present": True}
            for a in self.agents
        }
        return dict(zip(self.agents, obs[0])), infos

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, NDArray[np.uint8]],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        if self._started and not self.agents and not actions:
            return {}, {}, {}, {}, {}  # PettingZoo convention: step({}) on a finished env is a no-op
        require_started(self._started, self.agents)
        self._actions[0] = coerce_joint_discrete(actions, self.agents, self._spaces)
        engine = self.engine
        obs = np.empty((1, engine.n_agents, *engine.view_shape), dtype=np.uint8)
        truncated = engine._advance(self._actions, obs, self._rewards, self._flags, self._cleared)
        agents = self.possible_agents
        flags = self._flags[:, 0].T.tolist()  # per agent: apple, cleaned, fired, tagged, present (kernels.FLAG_*)
        infos = {
            a: {"apple": f[0], "cleaned": f[1], "waste_cleared": c, "fired": f[2], "tagged": f[3], "present": f[4]}
            for a, f, c in zip(agents, flags, self._cleared[0].tolist())
        }
        observations = dict(zip(agents, obs[0]))
        rewards = dict(zip(agents, self._rewards[0].tolist()))
        terms = dict.fromkeys(agents, False)
        truncs = dict.fromkeys(agents, truncated)
        if truncated:
            self.agents = []
        return observations, rewards, terms, truncs, infos

    def state(self) -> NDArray[np.uint8]:
        """The designer's view: the whole map with a one-cell black border, agents and beams drawn (uint8)."""
        return self.engine.state()[0]

    def render(self) -> NDArray[np.uint8] | str | None:
        if self.render_mode is None or self.render_mode == "human":
            return None
        if self.render_mode == "ansi":
            return self.engine.ascii(0)
        img = self.engine.state()[0]
        k = self.render_scale
        return np.repeat(np.repeat(img, k, axis=0), k, axis=1)

    def close(self) -> None:
        pass
