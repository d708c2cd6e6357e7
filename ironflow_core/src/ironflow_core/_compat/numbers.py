"""Numbers as Rust's ``str::parse::<f64>`` and serde_json read them."""

from __future__ import annotations

import math
import re

I64_MIN = -(2**63)
"""The smallest integer serde_json keeps as an integer."""

U64_MAX = 2**64 - 1
"""The largest integer serde_json keeps as an integer (and u64 parameters accept)."""

# What `str::parse::<f64>` accepts: a sign, then digits with an optional
# fraction and exponent (at least one digit before or after the point), or
# inf / infinity / nan in any case. No spaces, underscores or hex.
_RUST_F64 = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))\Z"
)


def parse_rust_f64(text: str) -> float | None:
    """Parse ``text`` with Rust ``f64`` syntax, or None when Rust would reject it."""
    if _RUST_F64.match(text) is None:
        return None
    return float(text)


def rust_f64_display(value: int | float) -> str:
    """A number as Rust's ``f64`` Display prints it: ``2``, ``0.05``, ``NaN``, ``inf``.

    Used wherever upstream prints a number into text: timeouts in error
    messages (``timed out after 2s``), ``env(1)`` keys, ``log`` arguments.
    """
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))


def serde_int(number: int) -> int | float:
    """An integer as serde_json holds it: within i64/u64 an integer, wider a float."""
    return number if I64_MIN <= number <= U64_MAX else float(number)


def serde_int_text(text: str) -> int | float:
    """``json.loads(parse_int=...)``: a JSON integer literal as serde_json reads it."""
    number = int(text)
    return number if I64_MIN <= number <= U64_MAX else float(text)
