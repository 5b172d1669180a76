"""Checkpoint files: atomic writes, a format version, a content hash, and strict loading with ``weights_only=True``.

A checkpoint is a dict of tensors, state dicts and plain Python values (NumPy arrays are not allowed, since
``torch.load(weights_only=True)`` refuses them), so loading never runs arbitrary pickled code.

Format 3 (this library's) stores that dict serialised (``torch.save`` bytes) and zlib-compressed inside an envelope
``{"format_version": 3, "library_version", "sha256", "compression": "zlib", "payload"}`` (``payload``: the stored
bytes as a uint8 tensor); ``sha256`` is the digest of the stored bytes, checked before they are decompressed and
unpickled, so a file damaged after it was written (disk, copy, transfer) is refused instead of resumed. Compression
matters for the pending batch of image-like observations (a Gather-Trade-Build checkpoint: 52 MB raw, 7 MB
stored, about half a second to compress). Format 2 (the same envelope, uncompressed) is still read as it was, and
format 1 (the dict itself, no digest) with a warning that it cannot be verified: ``weights_only`` makes reading it
safe from code execution, not from damaged values.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["FORMAT_VERSION", "check_state_like", "load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 3
_UNCOMPRESSED_FORMAT = 2
_UNVERIFIED_FORMAT = 1
_ZLIB_LEVEL = 1  # level 6 stores ~10% less at ~1.5x the time
_REQUIRED = ("format_version", "library_version", "train_config", "designer_config", "learner_config")


def library_version() -> str:
    """The installed ``incentive-design`` version (or ``"unknown"`` when running from a source tree)."""
    try:
        from importlib.metadata import version

        return version("incentive-design")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "unknown"


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` (plus version fields; compressed, with the sha256 of the stored bytes) to ``path``
    atomically: a temp file, flushed to disk, then ``os.replace``, so ``path`` always holds either the old or the
    new complete checkpoint."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, "library_version": library_version(), **payload}, buffer)
    stored = zlib.compress(buffer.getvalue(), _ZLIB_LEVEL)
    envelope = {"format_version": FORMAT_VERSION, "library_version": library_version(),
                "sha256": hashlib.sha256(stored).hexdigest(), "compression": "zlib",
                # a uint8 tensor is stored as its raw bytes (pickled ``bytes`` would be re-encoded by protocol 2)
                "payload": torch.frombuffer(bytearray(stored), dtype=torch.uint8)}
    tmp = target.with_suffix(target.suffix + ".tmp")
    with tmp.open("wb") as fh:
        torch.save(envelope, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return target


def _load(source: Any, what: Path) -> Any:
    try:
        return torch.load(source, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises pickle/zip/runtime errors depending on how the file is broken
        raise ValueError(f"{what} is not a readable incentive-design checkpoint: {err}") from err


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (formats 3 and 2, verified; format 1 with a warning).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a checkpoint of this library, of an unknown format version, or damaged (its sha256 differs).
    """
    target = Path(path)
    if not target.is_file():
        raise FileNotFoundError(f"no checkpoint at {target}")
    data = _load(target, target)
    if not isinstance(data, dict) or "format_version" not in data:
        raise ValueError(f"{target} is not an incentive-design checkpoint (got {type(data).__name__} "
                         f"{sorted(data)[:5] if isinstance(data, dict) else ''})")
    version = data["format_version"]
    if version in (FORMAT_VERSION, _UNCOMPRESSED_FORMAT):
        payload, stored = data.get("payload"), data.get("sha256")
        if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8 or not isinstance(stored, str):
            raise ValueError(f"{target} is not an incentive-design checkpoint: no payload and sha256")
        raw = payload.numpy().tobytes()
        digest = hashlib.sha256(raw).hexdigest()
        if digest != stored:
            raise ValueError(f"{target} is damaged: the sha256 of its payload is {digest[:16]}..., the file records "
                             f"{stored[:16]}...; it changed after it was written (disk, copy or transfer): use "
                             "another copy or an earlier checkpoint")
        if version == FORMAT_VERSION:
            if data.get("compression") != "zlib":
                raise ValueError(f"{target} has compression {data.get('compression')!r}, this library reads 'zlib'")
            raw = zlib.decompress(raw)
        data = _load(io.BytesIO(raw), target)
        if not isinstance(data, dict) or data.get("format_version") != version:
            raise ValueError(f"{target} is not an incentive-design checkpoint: its payload is not a format "
                             f"{version} dict")
    elif version == _UNVERIFIED_FORMAT:
        warnings.warn(f"{target} is a format 1 checkpoint with no checksum: its contents cannot be verified "
                      "(saving it again writes format 2)", UserWarning, stacklevel=2)
    else:
        raise ValueError(f"{target} has checkpoint format {version}, this library reads {FORMAT_VERSION} "
                         f"(and {_UNCOMPRESSED_FORMAT}, {_UNVERIFIED_FORMAT})")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"{target} is not an incentive-design checkpoint: missing {missing}")
    return data


# ------------------------------------------------------------------------------------- structure checks
_VERSION_KEYS = frozenset({"format_version", "library_version"})
_OPTIONAL = frozenset({"progress.train_metrics"})  # absent from checkpoints of older versions
# free-form, run-dependent or lazily filled contents (Adam moments appear at the first step): only presence is checked
_OPAQUE = frozenset({"train_config", "designer_config", "learner_config", "pending", "progress.train_metrics",
                     "learner.exp_avg", "learner.exp_avg_sq"})


def check_state_like(expected: Mapping[str, Any], state: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``state`` has the structure of ``expected`` (a fresh trainer's state dict).

    Dicts must have the same keys (the message lists missing and unexpected ones per place, e.g. ``learner``);
    tensors of module state dicts (dicts holding only tensors: agent parameters, networks) must have the same
    shapes; optimizer state dicts must have the same parameter groups. Values that vary between
    runs (lists, scalars, the pending batch, other tensors) are not compared.
    """
    problems: list[str] = []
    _compare(expected, state, "", problems)
    if problems:
        shown = problems[:8] + ([f"... and {len(problems) - 8} more"] if len(problems) > 8 else [])
        raise ValueError("checkpoint does not fit this trainer: " + "; ".join(shown))


def _compare(expected: Any, got: Any, where: str, problems: list[str]) -> None:
    if expected is None or not isinstance(expected, Mapping):
        return  # optional values and leaves: compared by their parent (tensor shapes) or not at all
    if not isinstance(got, Mapping):
        problems.append(f"{where or 'checkpoint'}: expected a dict, got {type(got).__name__}")
        return
    if set(expected) == {"state", "param_groups"}:  # an optimizer: its per-parameter state is empty until a step
        sizes = [len(g["params"]) for g in expected["param_groups"]]
        got_sizes = [len(g.get("params", ())) for g in got.get("param_groups", ())]
        if sizes != got_sizes:
            problems.append(f"{where}: optimizer parameter groups of sizes {got_sizes}, model {sizes}")
        return
    prefix = f"{where}." if where else ""
    ignore = _VERSION_KEYS if not where else frozenset()
    missing = sorted(str(k) for k in set(expected) - set(got) if f"{prefix}{k}" not in _OPTIONAL)
    unexpected = sorted(str(k) for k in set(got) - set(expected) - ignore)
    if missing or unexpected:
        problems.append(f"{where or 'checkpoint'}: missing {missing}, unexpected {unexpected}")
    tensors_only = all(isinstance(v, torch.Tensor) for v in expected.values())
    for key in expected:
        name = f"{prefix}{key}"
        if key not in got or name in _OPAQUE:
            continue
        value, want = got[key], expected[key]
        if tensors_only:
            if not isinstance(value, torch.Tensor):
                problems.append(f"{name}: expected a tensor, got {type(value).__name__}")
            elif value.shape != want.shape:
                problems.append(f"{name}: checkpoint shape {tuple(value.shape)}, model {tuple(want.shape)}")
        else:
            _compare(want, value, name, problems)
