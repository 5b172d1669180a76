"""AEC views of our parallel-first envs, with action checks that raise instead of asserting."""

from __future__ import annotations

from typing import Any

from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import BaseWrapper, parallel_to_aec, wrappers

from incentive_envs._validation import check_joint_action

__all__ = ["CheckedAECWrapper", "aec_from_parallel", "checked_aec"]


def aec_from_parallel(par: ParallelEnv) -> AECEnv:
    """Convert a parallel env to AEC with PettingZoo's own converter."""
    return parallel_to_aec(par)


class CheckedAECWrapper(BaseWrapper):
    """Validate each AEC action where it enters, before PettingZoo buffers it for the parallel step.

    PettingZoo's ``AssertOutOfBoundsWrapper`` uses ``assert`` (gone under ``python -O``) and stepping a finished
    AEC env only logs a warning; both become clear exceptions here.
    """

    def step(self, action: Any) -> None:
        if not self.env.agents:
            raise RuntimeError("step() called after the episode finished (or before reset()); call reset() first")
        agent = self.env.agent_selection
        if self.env.terminations.get(agent, False) or self.env.truncations.get(agent, False):
            if action is not None:
                raise ValueError(f"{agent} is done; its action must be None, got {action!r}")
        else:
            check_joint_action({agent: action}, [agent], self.env.action_space)
        super().step(action)


def checked_aec(aec: AECEnv) -> AECEnv:
    """Order enforcement (reset before step) plus raising action checks."""
    return wrappers.OrderEnforcingWrapper(CheckedAECWrapper(aec))
