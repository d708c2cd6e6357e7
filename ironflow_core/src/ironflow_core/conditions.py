"""Conditions, switch values and simple dotted paths (semantics.md#conditions).

This is upstream's small comparison language, quirks included: the first
operator of a fixed list wins wherever it occurs, quoted numbers never compare
numerically, and ``0`` or ``""`` are truthy. The one deliberate difference
(semantics.md#design-differences) is that a boolean compares with a bare ``true``/``false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ironflow_core._compat.numbers import parse_rust_f64
from ironflow_core._compat.whitespace import rust_trim
from ironflow_core.jsonutil import dumps

__all__ = ["evaluate_condition", "parse_rust_f64", "resolve_path", "switch_value"]

_OPERATORS = ("==", "!=", ">=", "<=", ">", "<")
_EXISTS = " exists"
_EPSILON = 2.220446049250313e-16  # f64::EPSILON
_BOOLEANS = {"true": True, "false": False}

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
