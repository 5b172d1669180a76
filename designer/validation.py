"""Typed fields for the configuration dataclasses: every value is checked against its annotation.

:func:`check_fields` is the one type check shared by :class:`~designer.config.DesignerConfig`,
:class:`~designer.config.TrainConfig` and :class:`~designer.learners.LearnerConfig` (each then checks its value
ranges). The rules are strict, because a config silently reinterpreting a value trains the wrong experiment:

- ``bool``: only ``True``/``False`` (not ``"no"``, not ``1``);
- ``int``: an ``int`` but not a ``bool``;
- ``float``: a finite ``int`` or ``float`` (not a ``bool``, NaN or an infinity): ``1`` is fine where ``1.0`` is;
- ``str``; ``Literal[...]``: one of the choices; ``X | None``; ``Any``: anything;
- ``tuple[X, ...]`` and ``tuple[X, Y]``: a tuple (not a list) of the right length whose items fit;
- ``dict[K, V]``: a dict whose keys and values fit.
"""

from __future__ import annotations

import math
import types
from dataclasses import fields
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

__all__ = ["check_fields"]


def check_fields(obj: Any) -> None:
    """Raise ``ValueError`` naming the first field of the dataclass ``obj`` whose value does not fit its type.

    The message reads ``"<field> must be <what the type allows>, got <value> (<its type>)"``.
    """
    for name, hint in _field_types(type(obj)):
        value = getattr(obj, name)
        if not _fits(hint, value):
            raise ValueError(f"{name} must be {_describe(hint)}, got {value!r} ({type(value).__name__})")


_FIELD_TYPES: dict[type[Any], tuple[tuple[str, Any], ...]] = {}


def _field_types(cls: type[Any]) -> tuple[tuple[str, Any], ...]:
    """``(name, resolved annotation)`` of each field of ``cls``, computed once per class."""
    if cls not in _FIELD_TYPES:
        hints = get_type_hints(cls)
        _FIELD_TYPES[cls] = tuple((f.name, hints[f.name]) for f in fields(cls))
    return _FIELD_TYPES[cls]


def _fits(hint: Any, value: Any) -> bool:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and (isinstance(value, int) or math.isfinite(value)))
    if hint in (str, type(None)):
        return isinstance(value, hint)
    if origin is Literal:
        return any(isinstance(value, type(choice)) and value == choice for choice in args)
    if origin in (Union, types.UnionType):
        return any(_fits(option, value) for option in args)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(args[0], item) for item in value)
        return len(value) == len(args) and all(_fits(a, item) for a, item in zip(args, value))
    if origin is dict:
        return isinstance(value, dict) and all(_fits(args[0], k) and _fits(args[1], v) for k, v in value.items())
    raise TypeError(f"check_fields does not know the annotation {hint!r}")


_NAMES = {bool: "a bool", int: "an int", float: "a finite number", str: "a string", type(None): "None", Any: "anything"}


def _describe(hint: Any) -> str:
    """``"a tuple of ints"``, ``"a finite number or None"``, ``"one of ('sum', 'mean')"``..."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return f"one of {args}"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(option) for option in args)
    if origin is tuple:
        count = "" if len(args) == 2 and args[1] is Ellipsis else f"{len(args)} "
        return f"a tuple of {count}{_plural(args[0])}"
    if origin is dict:
        return f"a dict with {_plural(args[0])} for keys"
    return _NAMES[hint]


def _plural(hint: Any) -> str:
    """``int`` -> ``"ints"``, ``float`` -> ``"finite numbers"`` (the article of :func:`_describe` dropped)."""
    return _describe(hint).split(" ", 1)[-1] + "s"
