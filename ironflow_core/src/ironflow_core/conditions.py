"""Conditions, switch values and simple dotted paths (semantics.md#conditions).

This is upstream's small comparison language, quirks included: the first
operator of a fixed list wins wherever it occurs, quoted numbers never compare
numerically, and ``0`` or ``""`` are truthy. The one deliberate difference
(semantics.md#design-differences) is that a boolean compares with a bare ``true``/``false``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ironflow_core.jsonutil import dumps

__all__ = ["evaluate_condition", "parse_rust_f64", "resolve_path", "switch_value"]

_OPERATORS = ("==", "!=", ">=", "<=", ">", "<")
_EXISTS = " exists"
_EPSILON = 2.220446049250313e-16  # f64::EPSILON
_BOOLEANS = {"true": True, "false": False}

# Rust's `char::is_whitespace` (Unicode White_Space); Python's str.strip()
# also strips U+001C..U+001F, which Rust keeps.
_RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# What `str::parse::<f64>` accepts: a sign, then digits with an optional
# fraction and exponent (at least one digit before or after the point), or
# inf / infinity / nan in any case. No spaces, underscores or hex.
_RUST_F64 = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))\Z"
)


def rust_trim(text: str) -> str:
    """Trim as Rust's ``str::trim`` does."""
    return text.strip(_RUST_WHITESPACE)


def parse_rust_f64(text: str) -> float | None:
    """Parse ``text`` with Rust ``f64`` syntax, or None when Rust would reject it."""
    if _RUST_F64.match(text) is None:
        return None
    return float(text)


def resolve_path(ctx: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """Resolve ``[ctx.]key.sub.sub`` through objects only (CND-1, CND-2).

    Returns ``(found, value)``; a key present with null is found. Arrays are
    never indexed (``items.0`` is not found).
    """
    if path.startswith("ctx."):
        path = path[4:]
    first, *rest = path.split(".")
    if first not in ctx:
        return False, None
    value = ctx[first]
    for part in rest:
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def evaluate_condition(condition: str, ctx: Mapping[str, Any]) -> bool:
    """Evaluate an ``if_node`` / ``step_if`` condition (CND-10..14)."""
    condition = rust_trim(condition)
    if condition.endswith(_EXISTS):
        # Upstream strips the suffix repeatedly (`x exists exists` checks `x`).
        while condition.endswith(_EXISTS):
            condition = condition[: -len(_EXISTS)]
        return resolve_path(ctx, rust_trim(condition))[0]
    for operator in _OPERATORS:
        position = condition.find(operator)
        if position >= 0:
            left = rust_trim(condition[:position])
            right = rust_trim(condition[position + len(operator) :])
            found, value = resolve_path(ctx, left)
            if not found:
                return operator == "!="
            return _compare(value, operator, right)
    found, value = resolve_path(ctx, condition)
    if isinstance(value, bool):
        return value
    return found and value is not None


def _compare(left: Any, operator: str, right: str) -> bool:
    """CND-12: numbers numerically, strings by equality, everything else false."""
    if isinstance(left, bool):
        # semantics.md#design-differences: `ctx.flag == true` compares booleans (upstream: false).
        literal = _BOOLEANS.get(right)
        if literal is None or operator not in ("==", "!="):
            return False
        return (left == literal) == (operator == "==")
    if isinstance(left, (int, float)):
        number = parse_rust_f64(right)
        if number is not None:
            return _numeric(_as_f64(left), operator, number)
    if not isinstance(left, str):
        return False
    text = right.strip('"').strip("'")
    if operator == "==":
        return left == text
    if operator == "!=":
        return left != text
    return False


def _as_f64(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond f64 range
        return float("inf") if value > 0 else float("-inf")


def _numeric(left: float, operator: str, right: float) -> bool:
    if operator == "==":
        return abs(left - right) < _EPSILON
    if operator == "!=":
        return abs(left - right) >= _EPSILON
    if operator == ">":
        return left > right
    if operator == "<":
        return left < right
    if operator == ">=":
        return left >= right
    return left <= right


def switch_value(ctx: Mapping[str, Any], path: str) -> str:
    """The text a ``switch_node`` looks up in its cases (CND-20)."""
    found, value = resolve_path(ctx, path)
    if not found:
        return ""
    return value if isinstance(value, str) else dumps(value)
