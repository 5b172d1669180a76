"""Optional extras: import a module that an extra provides, or fail with one line naming the extra to install.

The base install needs none of them; each feature that does calls :func:`require` when it is used::

    plt = require("matplotlib.pyplot", "plot", "plotting")
    # without matplotlib: MissingExtra('plotting needs matplotlib, which is not installed: pip install ...')
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "install_hint", "require"]


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, e.g. ``pip install "incentive-design[plot]"``."""
    return f'pip install "incentive-design[{extra}]"'


def require(module: str, extra: str, feature: str, package: str | None = None) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtra` saying that ``feature`` needs ``package`` (default: the
    module's top-level name) and how to install the ``extra`` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        name = package or module.split(".")[0]
        raise MissingExtra(f"{feature} needs {name}, which is not installed: {install_hint(extra)}") from err
