"""The canonical JSON text and timestamps used everywhere (JSON-1, JSON-7).

Every persisted or printed object has its keys sorted by code point; integers
and floats stay distinct; non-ASCII is emitted raw.

Encoding goes through ``orjson`` (measured 10-80x faster than the standard
library here, and faster than ``msgspec`` for indented output), with the
standard library as the reference: whatever orjson refuses (integers beyond
64 bits, non-string keys, lone surrogates, subclasses of the JSON types) is
encoded by ``json`` exactly as before, and a text containing ``null`` is
checked by ``json`` too, because orjson writes NaN and infinities as
``null`` where JSON-3 wants an error. Float exponents are spelled the short
way (``1e+16`` becomes ``1e16``), which JSON-6 allows. One leniency: orjson
writes ``enum.Enum`` and ``uuid.UUID`` values as their value, where the
standard library refuses them.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from ironflow_core._compat.numbers import rust_f64_display

JSON = Any
"""A JSON value: dict[str, JSON] | list[JSON] | str | int | float | bool | None."""

_compact = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


_FAST = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME \
    | orjson.OPT_PASSTHROUGH_DATACLASS
_FAST_PRETTY = _FAST | orjson.OPT_INDENT_2


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _fast(value: JSON, option: int) -> bytes | None:
    """orjson's text, or None when the standard library must decide."""
    try:
        text = orjson.dumps(value, default=_refuse, option=option)
    except (orjson.JSONEncodeError, TypeError):
        return None
    if b"null" in text:
        _compact(value)  # raises ValueError for NaN/inf (JSON-3), as the reference does
    return text


def dumps(value: JSON) -> str:
    """Compact, key-sorted JSON: the only serializer for node-visible text (PY-10)."""
    text = _fast(value, _FAST)
    return _compact(value) if text is None else text.decode()


def compact_json(value: JSON, what: str, error: Callable[[str], Exception]) -> str:
    """:func:`dumps`, or ``error("<what> is not JSON: ...")`` when ``value`` is not JSON.

    Stores call it on what they are asked to write, so a bad value is refused
    with the caller's error type before anything is stored.
    """
    return compact_json_bytes(value, what, error).decode()


def compact_json_bytes(value: JSON, what: str, error: Callable[[str], Exception]) -> bytes:
    """:func:`compact_json` as UTF-8 bytes (what a store writes anyway)."""
    try:
        return dumps_bytes(value)
    except RecursionError:
        raise error(f"{what} is not JSON: it nests too deeply") from None
    except (TypeError, ValueError) as exc:
        raise error(f"{what} is not JSON: {exc}") from None


def dumps_bytes(value: JSON) -> bytes:
    """:func:`dumps` as UTF-8 bytes, without a decode/encode round trip."""
    text = _fast(value, _FAST)
    return _compact(value).encode() if text is None else text


def dumps_pretty(value: JSON) -> str:
    """Two-space indented, key-sorted JSON for humans (CLI output, store files)."""
    text = _fast(value, _FAST_PRETTY)
    if text is None:
        return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return text.decode()


def dumps_pretty_bytes(value: JSON) -> bytes:
    """:func:`dumps_pretty` as UTF-8 bytes: a large result is printed without a decode."""
    text = _fast(value, _FAST_PRETTY)
    return dumps_pretty(value).encode() if text is None else text


TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
)
"""An RFC 3339 date-time with 0–9 fractional digits; groups: date, time, fraction, offset."""


def is_timestamp(text: object) -> bool:
    """An RFC 3339 date-time with 0–9 fractional digits (JSON-7 readers)."""
    return isinstance(text, str) and TIMESTAMP.fullmatch(text) is not None


def format_timestamp(moment: _dt.datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z`` (JSON-7)."""
    moment = moment.astimezone(_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_second_text: tuple[int, str] = (-1, "")
"""The last whole second ``now_timestamp`` formatted, and its text (one tuple: thread-safe)."""


def now_timestamp() -> str:
    """The current time as JSON-7 text, to the microsecond (floored, as ``datetime.now``).

    Two per step: the date and time of the second are formatted once per
    second, so a call costs an integer split and one short f-string.
    """
    global _second_text
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _second_text
    if cached[0] != second:
        cached = _second_text = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{micros:06d}Z"


def parse_timestamp(text: str) -> _dt.datetime:
    """Accept RFC 3339 with 0/3/6/9 fractional digits, ``Z`` or a numeric offset."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if "." in value:
        head, _, rest = value.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits += rest[0]
            rest = rest[1:]
        value = f"{head}.{(digits + '000000')[:6]}{rest}"
    moment = _dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.astimezone(_dt.UTC)


def timestamp_micros(text: str) -> int:
    """Microseconds since the epoch, truncated (ST-20)."""
    moment = parse_timestamp(text)
    delta = moment - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


format_seconds = rust_f64_display
"""Seconds in messages (``timed out after 2s``), printed as upstream prints them (ENG-74)."""


MAX_DEPTH = 128
"""How deeply arrays and objects may nest in a value the engine accepts or reads
back (upstream's JSON parser has the same limit); deeper input is refused at the
edge instead of overflowing the interpreter's stack further in."""


class JsonNestingError(ValueError):
    """JSON nested past what the parser can walk: callers word this refusal their own way."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def finite_float(text: str) -> float:
    """A JSON number as a float, refusing literals beyond float range (``1e999``)."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is out of range for a JSON number")
    return number


def check_value(value: JSON, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse what no store can keep and no printer can print (``ValueError``, with a path).

    Non-finite floats, non-string object keys, non-JSON types and nesting
    deeper than ``max_depth``. Iterative, so a deep value cannot overflow.
    """
    stack: list[tuple[Any, str, int]] = [(value, "$", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= max_depth:
                raise ValueError(f"value nests deeper than {max_depth} levels at {path}")
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ValueError(f"object key {key!r} at {path} is not a string")
                stack.append((child, f"{path}.{key}", depth + 1))
        elif isinstance(item, list):
            if depth >= max_depth:
                raise ValueError(f"value nests deeper than {max_depth} levels at {path}")
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{item} at {path} is not a finite JSON number")
        elif not (item is None or isinstance(item, (str, bool, int))):
            raise ValueError(f"{type(item).__name__} at {path} is not a JSON value")


def loads_strict(
    text: str | bytes,
    *,
    max_depth: int | None = MAX_DEPTH,
    parse_int: Callable[[str], Any] | None = None,
    parse_float: Callable[[str], Any] = finite_float,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> JSON:
    """The one JSON reader for text from outside (files, stores, requests, Lua, HTTP bodies).

    ``NaN``/``Infinity``/``-Infinity`` are not JSON and numbers beyond float
    range are refused (``ValueError``). With ``max_depth`` the parsed value is
    also checked with :func:`check_value`; ``max_depth=None`` leaves nesting to
    the parser, whose overflow becomes :class:`JsonNestingError`. The hooks
    are ``json.loads``'s, for readers that keep serde's integer range or
    refuse duplicate members.
    """
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=parse_float,
            parse_int=parse_int,
            object_pairs_hook=object_pairs_hook,
        )
    except RecursionError:
        if max_depth is None:
            raise JsonNestingError("a value nests too deeply to be read") from None
        raise JsonNestingError(f"value nests deeper than {max_depth} levels") from None
    if max_depth is not None:
        check_value(value, max_depth=max_depth)
    return value
