"""Checkpoint files: atomic writes, a format version, and strict loading with ``weights_only=True``.

A checkpoint is a dict of tensors, state dicts and plain Python values (NumPy arrays are not allowed, since
``torch.load(weights_only=True)`` refuses them), so loading never runs arbitrary pickled code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["FORMAT_VERSION", "load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 1
_REQUIRED = ("format_version", "library_version", "train_config", "designer_config", "learner_config")


def library_version() -> str:
    """The installed ``incentive-design`` version (or ``"unknown"`` when running from a source tree)."""
    try:
        from importlib.metadata import version

        return version("incentive-design")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "unknown"


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus version fields) to ``path`` atomically: a temp file, then ``os.replace``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = {"format_version": FORMAT_VERSION, "library_version": library_version(), **payload}
    tmp = target.with_suffix(target.suffix + ".tmp")
    torch.save(data, tmp)
    os.replace(tmp, target)
    return target


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a checkpoint of this library, or of an incompatible format version.
    """
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no checkpoint at {target}")
    try:
        data = torch.load(target, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises pickle/zip/runtime errors depending on how the file is broken
        raise ValueError(f"{target} is not a readable incentive-design checkpoint: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{target} is not an incentive-design checkpoint (got {type(data).__name__})")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"{target} is not an incentive-design checkpoint: missing {missing}")
    if data["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{target} has checkpoint format {data['format_version']}, this library reads {FORMAT_VERSION}"
        )
    return data
