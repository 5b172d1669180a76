"""AEC views of our parallel-first envs, with order and action checks that raise instead of asserting."""

from __future__ import annotations

from typing import Any

from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import parallel_to_aec
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from incentive_envs.validation import check_joint_action

__all__ = ["CheckedAECWrapper", "aec_from_parallel", "checked_aec"]


def aec_from_parallel(par: ParallelEnv) -> AECEnv:
    """Convert a parallel env to AEC with PettingZoo's own converter (its result is order-enforcing)."""
    return parallel_to_aec(par)


class CheckedAECWrapper(OrderEnforcingWrapper):
    """PettingZoo's order enforcement, with clear exceptions where PettingZoo asserts or only logs.

    - ``step``/``observe``/``state``/``render``/``agent_iter`` before ``reset`` raise ``RuntimeError``
      (PettingZoo raises ``AssertionError``);
    - ``step`` once every agent is done raises ``RuntimeError`` (PettingZoo only logs a warning);
    - each action is validated where it enters, before PettingZoo buffers it for the parallel step
      (``AssertOutOfBoundsWrapper`` is a bare ``assert``, gone under ``python -O``): a live agent's action
      must lie in its space (``ValueError``), a done agent's action must be ``None`` (``ValueError``).

    It subclasses ``OrderEnforcingWrapper`` so that ``pettingzoo.utils.aec_to_parallel`` still recognises a
    converted parallel env and unwraps it instead of converting twice.
    """

    def _require_reset(self, call: str) -> None:
        if not self._has_reset:
            raise RuntimeError(f"{call} called before reset(); call reset() first")

    def step(self, action: Any) -> None:
        self._require_reset("step()")
        if not self.env.agents:
            raise RuntimeError("step() called after the episode finished; call reset() first")
        agent = self.env.agent_selection
        if self.env.terminations[agent] or self.env.truncations[agent]:
            if action is not None:
                raise ValueError(f"{agent} is done; its action must be None, got {action!r}")
        else:
            check_joint_action({agent: action}, [agent], self.env.action_space)
        super().step(action)

    def observe(self, agent: Any) -> Any:
        self._require_reset("observe()")
        return super().observe(agent)

    def state(self) -> Any:
        self._require_reset("state()")
        return super().state()

    def render(self) -> Any:
        self._require_reset("render()")
        return super().render()

    def agent_iter(self, max_iter: int = 2**63) -> Any:
        self._require_reset("agent_iter()")
        return super().agent_iter(max_iter)


def checked_aec(aec: AECEnv) -> AECEnv:
    """Wrap an AEC env in :class:`CheckedAECWrapper`, replacing a plain outer ``OrderEnforcingWrapper``."""
    if type(aec) is OrderEnforcingWrapper:
        aec = aec.env
    return CheckedAECWrapper(aec)
