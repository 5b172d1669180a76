"""Gather-Trade-Build for the designer: the task, its tax designers, networks and records (one module each).

- :mod:`.game`: :class:`GTBTask` (what the designers know about the economy) and the tax options;
- :mod:`.task`: the registered :func:`gtb_task` factory and :func:`evaluate_taxes`;
- :mod:`.designers`: MetaGrad, dual-RL and fixed-model tax designers acting through the tax-rate control point;
- :mod:`.networks`: the paper's image+vector networks;
- :mod:`.records`: the step data the designers log, the differentiable reward rebuild and the tax report.
"""

from __future__ import annotations

from designer.tasks.gather_trade_build.designers import (
    BatchedStepLog,
    StepLog,
    TaxDualRLDesigner,
    TaxMetaGradDesigner,
    TaxModelDesigner,
)
from designer.tasks.gather_trade_build.game import GTBTask, GTBTaxOptions
from designer.tasks.gather_trade_build.networks import PlannerNet, SpatialFlatNet, StateCritic, TaxNet
from designer.tasks.gather_trade_build.records import StepFeatures, rebuild_rewards, schedule_of, tax_report
from designer.tasks.gather_trade_build.task import evaluate_taxes, gtb_task

__all__ = [
    "BatchedStepLog",
    "GTBTask",
    "GTBTaxOptions",
    "PlannerNet",
    "SpatialFlatNet",
    "StateCritic",
    "StepFeatures",
    "StepLog",
    "TaxDualRLDesigner",
    "TaxMetaGradDesigner",
    "TaxModelDesigner",
    "TaxNet",
    "evaluate_taxes",
    "gtb_task",
    "rebuild_rewards",
    "schedule_of",
    "tax_report",
]
