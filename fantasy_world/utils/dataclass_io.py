"""Typed dataclass configs ↔ plain JSON dicts, so model folders carry their full config."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from fantasy_world.errors import CheckpointError

T = TypeVar("T")


def config_to_dict(obj: Any) -> Any:
    """Recursively turn dataclasses (and tuples) into JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: config_to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [config_to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: config_to_dict(v) for k, v in obj.items()}
    return obj


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except (TypeError, ValueError, CheckpointError):
                continue
        raise CheckpointError(f"config field {where}: value {value!r} does not fit {tp}")
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise CheckpointError(f"config field {where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise CheckpointError(f"config field {where}: expected {len(args)} values, got {len(value)}")
        return (
            tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
            if args
            else tuple(value)
        )
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise CheckpointError(f"config field {where}: expected a list, got {type(value).__name__}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise CheckpointError(f"config field {where}: expected an object, got {type(value).__name__}")
        return dict(value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise CheckpointError(f"config field {where}: expected {tp.__name__}, got {value!r}")
    if tp is int and isinstance(value, bool):
        raise CheckpointError(f"config field {where}: expected int, got {value!r}")
    return value


def config_from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown or ill-typed fields raise a CheckpointError."""
    if not isinstance(data, dict):
        raise CheckpointError(
            f"config {where or cls.__name__}: expected an object, got {type(data).__name__}"
        )
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CheckpointError(f"config {where or cls.__name__}: unknown field(s) {', '.join(unknown)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)
