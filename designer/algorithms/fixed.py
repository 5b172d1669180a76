"""The non-learning designers: ``none`` (agents learn on env rewards alone) and ``fixed`` (a constant table)."""

from __future__ import annotations

import numpy as np
import torch

from designer.algorithms.base import Designer, IncentiveCall
from designer.config import DesignerConfig
from designer.registry import register_algorithm
from designer.rollout import IncentiveInputs
from designer.task import SlotRule, Task
from wrappers import StepContext

__all__ = ["FixedDesigner", "NoDesigner"]


@register_algorithm("none", summary="no designer: the agents learn on env rewards alone")
class NoDesigner(Designer):
    """Agents learn on env rewards alone."""


class _SlotTable(IncentiveCall):
    """Pays ``values[slot(agent)]`` under the task's slot rule (picklable, unlike a lambda)."""

    def __init__(self, values: tuple[float, ...], slot_rule: SlotRule) -> None:
        self.values = values
        self.slot_rule = slot_rule

    def inputs(self, ctx: StepContext) -> IncentiveInputs:
        return np.zeros(0, dtype=np.float32), self.slot_rule(ctx)

    def pay(self, inputs: IncentiveInputs) -> dict[str, float]:
        return {a: float(self.values[s]) for a, s in inputs[1].items()}


@register_algorithm("fixed", summary="a constant incentive table (fixed_values: one payment per slot)",
                    required=("fixed_values",))
class FixedDesigner(Designer):
    """A constant incentive table, one (already scaled) value per slot."""

    def __init__(self, task: Task, config: DesignerConfig, generator: torch.Generator | None = None) -> None:
        super().__init__(task, config)
        n = task.output(config.output).n_slots
        if len(config.fixed_values) != n:
            raise ValueError(f"fixed_values needs {n} values for output {config.output!r}, got {config.fixed_values}")
        self._incentive = _SlotTable(tuple(config.fixed_values), self.require_slot_rule())
