"""Designer algorithms, one module each, behind the one registry of :mod:`designer.registry`.

==================== ==============================================================================
module               algorithms
==================== ==============================================================================
``base``             the :class:`Designer` interface and shared training-loop helpers
``metagrad``         ``metagrad``, ``metagrad_m2``: the paper's meta-gradient designer
``dual_rl``          ``dual_rl``: the designer as a standard RL agent
``amd``              ``amd``: Adaptive Mechanism Design (Baumann et al. 2018)
``fixed``            ``fixed``, ``none``: a constant incentive table, and no designer
==================== ==============================================================================

Importing the package imports every module in it, so a new module with a ``@register_algorithm`` designer is
all it takes to add one.
"""

from __future__ import annotations

import importlib
import pkgutil

from designer.algorithms.base import Designer, IncentiveCall

from designer.algorithms.metagrad import MetaGradDesigner  # isort: skip  (registration order = --help order)
from designer.algorithms.dual_rl import DualRLDesigner  # isort: skip
from designer.algorithms.amd import AMDDesigner  # isort: skip
from designer.algorithms.fixed import FixedDesigner, NoDesigner  # isort: skip
from designer.registry import make_designer

__all__ = [
    "AMDDesigner",
    "Designer",
    "DualRLDesigner",
    "FixedDesigner",
    "IncentiveCall",
    "MetaGradDesigner",
    "NoDesigner",
    "make_designer",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
