"""Readers for node parameters that accept several JSON shapes (NODE-5, NODE-6).

Strings are interpolated against the step's context and trimmed before they
are read, so ``delay.seconds = "${ctx.wait}"`` works. *Strict* readers raise
``NodeError`` for a present but invalid value; *lenient* ones fall back to the
default. The value itself comes from a config field typed with one of the
``*Param`` aliases below; ``Absent`` marks a field the flow left out where a
JSON null counts as given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Final

from ironflow_core._compat.numbers import parse_rust_f64
from ironflow_core.errors import NodeError

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
U64_MAX = 2**64 - 1


class Absent:
    """The type of ``ABSENT``: a parameter the flow left out, where JSON null counts as given.

    Most fields default to ``None`` because upstream treats null and absent
    alike; a few (``base64_encode``'s "only one of" check, ``data_filter``'s
    ``value``, ``cache_set``'s ``value``) tell them apart and default to ``ABSENT``.
    """

    _instance: Absent | None = None

    def __new__(cls) -> Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Final = Absent()
"""The one ``Absent`` value; test with ``is ABSENT``."""

JsonValue = Any
"""Any JSON value (after the Lua table is converted): the node decides what it means."""

BoolParam = Annotated[JsonValue, "bool, or a string read by strict_bool/lenient_bool"]
"""A JSON boolean or a ``true|yes|on|1`` / ``false|no|off|0`` string, interpolated
when the step runs; read with ``strict_bool`` or ``lenient_bool``."""

NumberParam = Annotated[JsonValue, "number, or a string read by strict_float/lenient_float"]
"""A finite JSON number or a numeric string, interpolated when the step runs;
read with ``strict_float`` or ``lenient_float``."""

CountParam = Annotated[JsonValue, "u64, or a string read by strict_u64/lenient_u64"]
"""A non-negative whole number or such a string, interpolated when the step runs;
read with ``strict_u64`` or ``lenient_u64``."""


def _interpolated_trimmed(ctx: Any, value: str) -> str:
    interpolate = getattr(ctx, "interpolate", None)
    rendered = interpolate(value) if interpolate is not None else value
    return rendered.strip()


def _parse_bool(ctx: Any, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = _interpolated_trimmed(ctx, value).lower()
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
    """Like ``lenient_bool``, but a present value that is no boolean fails the step."""
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
        parsed = parse_rust_f64(_interpolated_trimmed(ctx, value))
        if parsed is None:
            return None
        number = parsed
    else:
        return None
    return number if math.isfinite(number) else None


def strict_float(ctx: Any, name: str, value: Any, default: float) -> float:
    """A finite number or numeric string; anything else present fails the step."""
    if value is None:
        return default
    parsed = _parse_float(ctx, value)
    if parsed is None:
        raise NodeError(f"'{name}' must be a finite number")
    return parsed


def lenient_float(ctx: Any, value: Any, default: float) -> float:
    """A finite number or numeric string; anything else means ``default``."""
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
        text = _interpolated_trimmed(ctx, value)
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
    """A whole number in u64 range (or such a string); anything else present fails the step."""
    if value is None:
        return default
    parsed = _parse_u64(ctx, value)
    if parsed is None:
        raise NodeError(f"'{name}' must be a non-negative whole number in u64 range")
    return parsed


def lenient_u64(ctx: Any, value: Any, default: int) -> int:
    """A whole number in u64 range (or such a string); anything else means ``default``."""
    if value is None:
        return default
    parsed = _parse_u64(ctx, value)
    return default if parsed is None else parsed


def required_str(node: str, name: str, value: str | None) -> str:
    """NODE-4: a missing required string fails the step with its name.

    The field is ``run_required(lenient=True)``, so a present value of the
    wrong type has already become None.
    """
    if value is None:
        raise NodeError(f"{node} requires '{name}'")
    return value


def source_value(ctx: Mapping[str, Any], key: str) -> Any:
    """NODE-3: a top-level context key, or ``Key '<k>' not found in context``."""
    if key not in ctx:
        raise NodeError(f"Key '{key}' not found in context")
    return ctx[key]
