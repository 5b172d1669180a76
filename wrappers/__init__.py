"""Incentive and tax wrappers over any PettingZoo or Gymnasium env.

- :func:`incentive` / :class:`IncentiveWrapper`: a designer pays agents on top of the env's reward.
- :class:`TaxWrapper`: periodic bracket income tax with lump-sum redistribution.

Both record the env's own reward next to what they changed, so welfare and designer cost can always be
measured separately. Wrappers know envs only through the PettingZoo/Gymnasium APIs.
"""

from __future__ import annotations

from wrappers._accounting import ADDED_INFO_KEYS, IncentiveBooks, PaymentRules
from wrappers.incentive import (
    ActionTable,
    AECIncentiveWrapper,
    AgentValues,
    GymIncentiveWrapper,
    IncentiveFunction,
    IncentiveWrapper,
    ModuleIncentive,
    StepContext,
    incentive,
    joint_action_features,
)
from wrappers.tax import TAX_INFO_KEYS, TaxWrapper
from wrappers.tax_rates import TaxRatesWrapper

__all__ = [
    "ADDED_INFO_KEYS",
    "TAX_INFO_KEYS",
    "AECIncentiveWrapper",
    "ActionTable",
    "AgentValues",
    "GymIncentiveWrapper",
    "IncentiveBooks",
    "IncentiveFunction",
    "IncentiveWrapper",
    "ModuleIncentive",
    "PaymentRules",
    "StepContext",
    "TaxRatesWrapper",
    "TaxWrapper",
    "incentive",
    "joint_action_features",
]
