"""The non-learning designers: ``none`` (agents learn on env rewards alone) and ``fixed`` (a constant table)."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from designer.algorithms.base import Designer, IncentiveCall
from designer.batched_rollout import BatchedIncentiveInputs, BatchedIncentivePolicy
from designer.config import DesignerConfig
from designer.registry import register_algorithm
from designer.rollout import IncentiveInputs
from designer.task import BatchedSlotRule, SlotRule, Task
from wrappers import BatchedStepContext, StepContext

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


class _BatchedSlotTable:
    """:class:`_SlotTable` for the batched rollout: ``values[slot]`` of every agent of every copy."""

    def __init__(self, values: tuple[float, ...], slot_rule: BatchedSlotRule) -> None:
        self.values = np.asarray(values, dtype=np.float64)
        self.slot_rule = slot_rule

    def inputs(self, ctx: BatchedStepContext) -> BatchedIncentiveInputs:
        return np.zeros((ctx.shape[0], 0), dtype=np.float32), self.slot_rule(ctx)

    def pay(self, inputs: BatchedIncentiveInputs) -> NDArray[np.float64]:
        return self.values[inputs[1]]


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

    def batched_incentive(self, generator: torch.Generator | None = None) -> BatchedIncentivePolicy | None:
        if not self._batches_own_rule(FixedDesigner, "__init__"):
            return super().batched_incentive(generator)
        return _BatchedSlotTable(tuple(self.config.fixed_values), self.task.output(self.config.output).batched_rule)
