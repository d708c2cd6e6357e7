"""Readers for node parameters that accept several JSON shapes (NODE-5, NODE-6).

Strings are interpolated against the step's context and trimmed before they
are read, so ``delay.seconds = "${ctx.wait}"`` works. *Strict* readers raise
``NodeError`` for a present but invalid value; *lenient* ones fall back to the
default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ironflow_core.conditions import parse_rust_f64
from ironflow_core.errors import NodeError

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
U64_MAX = 2**64 - 1


def _text(ctx: Any, value: str) -> str:
    interpolate = getattr(ctx, "interpolate", None)
    rendered = interpolate(value) if interpolate is not None else value
    return rendered.strip()


def _parse_bool(ctx: Any, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = _text(ctx, value).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def lenient_bool(ctx: Any, value: Any, default: bool) -> bool:
    """JSON booleans or ``true|yes|on|1`` / ``false|no|off|0``; anything else = default."""
    if value is None:
        return default
    parsed = _parse_bool(ctx, value)
    return default if parsed is None else parsed


def strict_bool(ctx: Any, name: str, value: Any, default: bool) -> bool:
    if value is None:
        return default
    parsed = _parse_bool(ctx, value)
    if parsed is None:
        raise NodeError(f"'{name}' must be a boolean")
    return parsed


def _parse_float(ctx: Any, value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        parsed = parse_rust_f64(_text(ctx, value))
        if parsed is None:
            return None
        number = parsed
    else:
        return None
    return number if math.isfinite(number) else None


def strict_float(ctx: Any, name: str, value: Any, default: float) -> float:
    if value is None:
        return default
    parsed = _parse_float(ctx, value)
    if parsed is None:
        raise NodeError(f"'{name}' must be a finite number")
    return parsed


def lenient_float(ctx: Any, value: Any, default: float) -> float:
    if value is None:
        return default
    parsed = _parse_float(ctx, value)
    return default if parsed is None else parsed


def _parse_u64(ctx: Any, value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None
        number = int(value)
    elif isinstance(value, str):
        text = _text(ctx, value)
        try:
            number = int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                return None
            if not math.isfinite(as_float) or as_float != int(as_float):
                return None
            number = int(as_float)
    else:
        return None
    return number if 0 <= number <= U64_MAX else None


def strict_u64(ctx: Any, name: str, value: Any, default: int) -> int:
    if value is None:
        return default
    parsed = _parse_u64(ctx, value)
    if parsed is None:
        raise NodeError(f"'{name}' must be a non-negative whole number in u64 range")
    return parsed


def lenient_u64(ctx: Any, value: Any, default: int) -> int:
    if value is None:
        return default
    parsed = _parse_u64(ctx, value)
    return default if parsed is None else parsed


def source_value(ctx: Mapping[str, Any], key: str) -> Any:
    """NODE-3: a top-level context key, or ``Key '<k>' not found in context``."""
    if key not in ctx:
        raise NodeError(f"Key '{key}' not found in context")
    return ctx[key]
