"""Incentive and tax wrappers over any PettingZoo or Gymnasium env.

- :func:`incentive` / :class:`IncentiveWrapper`: a designer pays agents on top of the env's reward.
- :class:`TaxWrapper`: periodic bracket income tax with lump-sum redistribution.
- :class:`TaxRatesWrapper` / :class:`BatchedTaxRatesWrapper`: a tax designer's control point (rates set at each
  period start), for one env or a batch of copies.

Both record the env's own reward next to what they changed, so welfare and designer cost can always be
measured separately. Wrappers know envs only through the PettingZoo/Gymnasium APIs; what they share (step
context, episode guard, payment rules and accounts) is :mod:`wrappers.core`, the ready-made incentive
functions are :mod:`wrappers.functions`.
"""

from __future__ import annotations

from wrappers.core import ADDED_INFO_KEYS, IncentiveBooks, IncentiveFunction, PaymentRules, StepContext
from wrappers.functions import ActionTable, AgentValues, ModuleIncentive, joint_action_features
from wrappers.incentive import (
    AECIncentiveWrapper,
    GymIncentiveWrapper,
    IncentiveAECView,
    IncentiveWrapper,
    incentive,
)
from wrappers.tax import TAX_INFO_KEYS, TaxWrapper
from wrappers.tax_rates import TaxRatesWrapper
from wrappers.vector import (
    BatchedActionTable,
    BatchedAgentValues,
    BatchedIncentiveFunction,
    BatchedIncentiveWrapper,
    BatchedModuleIncentive,
    BatchedStepContext,
    PerCopy,
    batched_joint_action_features,
)
from wrappers.vector_tax import BatchedTaxRatesWrapper, PerCopyRates

__all__ = [
    "ADDED_INFO_KEYS",
    "TAX_INFO_KEYS",
    "AECIncentiveWrapper",
    "ActionTable",
    "AgentValues",
    "BatchedActionTable",
    "BatchedAgentValues",
    "BatchedIncentiveFunction",
    "BatchedIncentiveWrapper",
    "BatchedModuleIncentive",
    "BatchedStepContext",
    "BatchedTaxRatesWrapper",
    "GymIncentiveWrapper",
    "IncentiveAECView",
    "IncentiveBooks",
    "IncentiveFunction",
    "IncentiveWrapper",
    "ModuleIncentive",
    "PaymentRules",
    "PerCopy",
    "PerCopyRates",
    "StepContext",
    "TaxRatesWrapper",
    "TaxWrapper",
    "batched_joint_action_features",
    "incentive",
    "joint_action_features",
]
