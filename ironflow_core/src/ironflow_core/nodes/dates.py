"""``date_format``: parse a date, optionally move it to a fixed offset, format it (semantics.md#text-nodes).

Upstream formats and parses with Rust's chrono, whose strftime dialect differs
from Python's in the corners flows use (``%.3f``, ``%:z``, ``%P``, ``%-d``,
``%Z`` printing the offset, lenient numeric widths when parsing). This module
is a small chrono-compatible engine: one tokenizer shared by the formatter and
the parser, chrono's field resolution rules, and its error texts, so the same
patterns give the same text and the same errors.

A moment is kept as chrono keeps a ``DateTime<FixedOffset>``: the local wall
time to the second, nanoseconds apart (``>= 10**9`` marks a leap second) and
the offset in seconds.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import attrs

from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.nodes.encoding import str_or, text_input
from ironflow_core.specs import NodeSpec

RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What Rust's ``trim_start`` strips (Unicode White_Space), narrower than ``str.strip()``."""

SHORT_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
LONG_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)  # fmt: skip
SHORT_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # Monday first, like date.weekday()
LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EPOCH = dt.datetime(1970, 1, 1)


class ChronoError(Exception):
    """A parse failure worded like chrono's ``ParseError`` display."""


OUT_OF_RANGE = "input is out of range"
IMPOSSIBLE = "no possible date and time matching input"
NOT_ENOUGH = "input is not enough for unique date and time"
INVALID = "input contains invalid characters"
TOO_SHORT = "premature end of input"
TOO_LONG = "trailing input"
BAD_FORMAT = "bad or unsupported format string"


@attrs.frozen
class Moment:
    local: dt.datetime
    """Naive wall-clock time at ``offset``, whole seconds."""
    nanos: int
    offset: int
    """Seconds east of UTC."""

    def timestamp(self) -> int:
        delta = self.local - _EPOCH
        return delta.days * 86_400 + delta.seconds - self.offset

    def at_offset(self, offset: int) -> Moment:
        try:
            local = self.local + dt.timedelta(seconds=offset - self.offset)
        except OverflowError:
            raise NodeError(
                "date_format: the date is out of range after timezone conversion"
            ) from None
        return Moment(local, self.nanos, offset)


# -- tokenizer (chrono's StrftimeItems) -----------------------------------------------

Item = tuple[Any, ...]
"""("lit", text) | ("space", text) | ("num", kind, pad) | ("fixed", kind) | ("error",)."""

_ZERO, _SPACE, _NONE = "0", " ", ""


def _num(kind: str, pad: str = _ZERO) -> Item:
    return ("num", kind, pad)


def _fixed(kind: str) -> Item:
    return ("fixed", kind)


_SINGLE: dict[str, Item] = {
    "A": _fixed("long_weekday"),
    "B": _fixed("long_month"),
    "C": _num("year_div_100"),
    "G": _num("iso_year"),
    "H": _num("hour"),
    "I": _num("hour12"),
    "M": _num("minute"),
    "P": _fixed("lower_ampm"),
    "S": _num("second"),
    "U": _num("week_from_sun"),
    "V": _num("iso_week"),
    "W": _num("week_from_mon"),
    "Y": _num("year"),
    "Z": _fixed("tz_name"),
    "a": _fixed("short_weekday"),
    "b": _fixed("short_month"),
    "h": _fixed("short_month"),
    "d": _num("day"),
    "e": _num("day", _SPACE),
    "f": _num("nanosecond"),
    "g": _num("iso_year_mod_100"),
    "j": _num("ordinal"),
    "k": _num("hour", _SPACE),
    "l": _num("hour12", _SPACE),
    "m": _num("month"),
    "n": ("space", "\n"),
    "p": _fixed("upper_ampm"),
    "q": _num("quarter", _NONE),
    "s": _num("timestamp", _NONE),
    "t": ("space", "\t"),
    "u": _num("weekday_from_mon", _NONE),
    "w": _num("days_from_sun", _NONE),
    "y": _num("year_mod_100"),
    "z": _fixed("offset"),
    "+": _fixed("rfc3339"),
    "%": ("lit", "%"),
}
_HMS = [_num("hour"), ("lit", ":"), _num("minute"), ("lit", ":"), _num("second")]
_COMPOSITE: dict[str, list[Item]] = {
    "D": [_num("month"), ("lit", "/"), _num("day"), ("lit", "/"), _num("year_mod_100")],
    "x": [_num("month"), ("lit", "/"), _num("day"), ("lit", "/"), _num("year_mod_100")],
    "F": [_num("year"), ("lit", "-"), _num("month"), ("lit", "-"), _num("day")],
    "R": [_num("hour"), ("lit", ":"), _num("minute")],
    "T": _HMS,
    "X": _HMS,
    "r": [
        _num("hour12"), ("lit", ":"), _num("minute"), ("lit", ":"), _num("second"),
        ("space", " "), _fixed("upper_ampm"),
    ],
    "v": [_num("day", _SPACE), ("lit", "-"), _fixed("short_month"), ("lit", "-"), _num("year")],
    "c": [
        _fixed("short_weekday"), ("space", " "), _fixed("short_month"), ("space", " "),
        _num("day", _SPACE), ("space", " "), *_HMS, ("space", " "), _num("year"),
    ],
}  # fmt: skip
_PAD_FLAGS = {"-": _NONE, "0": _ZERO, "_": _SPACE}
_FRACTIONS = {".f": "nanos_auto", ".3f": "nanos3", ".6f": "nanos6", ".9f": "nanos9",
              "3f": "nanos3_nodot", "6f": "nanos6_nodot", "9f": "nanos9_nodot"}  # fmt: skip


def strftime_items(pattern: str) -> list[Item]:
    """Split a chrono strftime pattern into items; unknown specifiers become ``("error",)``."""
    items: list[Item] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char != "%":
            j = i
            is_space = char in RUST_WHITESPACE
            while j < n and pattern[j] != "%" and (pattern[j] in RUST_WHITESPACE) == is_space:
                j += 1
            items.append(("space" if is_space else "lit", pattern[i:j]))
            i = j
            continue
        i += 1
        if i >= n:
            items.append(("error",))
            break
        pad = _PAD_FLAGS.get(pattern[i])
        alternate = pattern[i] == "#"
        if pad is not None or alternate:
            i += 1
            if i >= n:
                items.append(("error",))
                break
        spec = pattern[i]
        i += 1
        if alternate:
            items.append(_fixed("offset_permissive") if spec == "z" else ("error",))
            continue
        produced: list[Item]
        if spec in _SINGLE:
            produced = [_SINGLE[spec]]
        elif spec in _COMPOSITE:
            produced = list(_COMPOSITE[spec])
        elif spec == ":":
            rest = pattern[i:]
            if rest.startswith("::z"):
                produced, i = [_fixed("offset_hours")], i + 3
            elif rest.startswith(":z"):
                produced, i = [_fixed("offset_seconds")], i + 2
            elif rest.startswith("z"):
                produced, i = [_fixed("offset_colon")], i + 1
            else:
                produced = [("error",)]
        elif spec in ".369":
            key = next((k for k in _FRACTIONS if pattern.startswith(k, i - 1)), None)
            if key is None:
                items.append(("error",))
                break
            produced, i = [_fixed(_FRACTIONS[key])], i - 1 + len(key)
        else:
            produced = [("error",)]
        if pad is not None:
            if len(produced) == 1 and produced[0][0] == "num":
                produced = [("num", produced[0][1], pad)]
            else:
                produced = [("error",)]
        items.extend(produced)
    return items


# -- formatting (chrono's DelayedFormat) ----------------------------------------------


class FormatError(Exception):
    pass


def _pad(value: int, width: int, pad: str) -> str:
    """Rust's ``{v}`` / ``{v:0w}`` / ``{v:w}``: a sign goes before the zeros."""
    if pad == _NONE:
        return str(value)
    return f"{value:0{width}d}" if pad == _ZERO else f"{value:>{width}d}"


def _year(year: int, pad: str) -> str:
    return f"{year:04d}" if 1000 <= year <= 9999 else _pad(year, 4, pad)


def _weeks_from(day: dt.datetime, first: int) -> int:
    """chrono ``weeks_from``: week number where weeks start on ``first`` (0 = Monday)."""
    ordinal = day.timetuple().tm_yday
    return (ordinal - (day.weekday() - first) % 7 + 6) // 7


def _offset_text(offset: int, *, colons: bool, precision: str) -> str:
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    if precision == "hours":
        return f"{sign}{offset // 3600:02d}"
    if precision == "minutes":
        minutes = min((offset + 30) // 60, 24 * 60 - 1)
        hours, mins = divmod(minutes, 60)
        return f"{sign}{hours:02d}:{mins:02d}" if colons else f"{sign}{hours:02d}{mins:02d}"
    hours, rest = divmod(offset, 3600)
    mins, secs = divmod(rest, 60)
    return f"{sign}{hours:02d}:{mins:02d}:{secs:02d}"


def _offset_name(offset: int) -> str:
    """chrono's ``FixedOffset`` display, which ``%Z`` prints: ``+02:00`` (seconds if any)."""
    sign = "-" if offset < 0 else "+"
    hours, rest = divmod(abs(offset), 3600)
    mins, secs = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{mins:02d}"
    return f"{text}:{secs:02d}" if secs else text


def _fraction(nanos: int) -> str:
    if nanos == 0:
        return ""
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}"
    return f".{nanos:09d}"


def _format_num(moment: Moment, kind: str, pad: str) -> str:
    day = moment.local
    if kind == "year":
        return _year(day.year, pad)
    if kind == "year_div_100":
        return _pad(day.year // 100, 2, pad)
    if kind == "year_mod_100":
        return _pad(day.year % 100, 2, pad)
    if kind == "iso_year":
        return _year(day.isocalendar()[0], pad)
    if kind == "iso_year_mod_100":
        return _pad(day.isocalendar()[0] % 100, 2, pad)
    if kind == "quarter":
        return str((day.month - 1) // 3 + 1)
    if kind == "month":
        return _pad(day.month, 2, pad)
    if kind == "day":
        return _pad(day.day, 2, pad)
    if kind == "week_from_sun":
        return _pad(_weeks_from(day, 6), 2, pad)
    if kind == "week_from_mon":
        return _pad(_weeks_from(day, 0), 2, pad)
    if kind == "iso_week":
        return _pad(day.isocalendar()[1], 2, pad)
    if kind == "days_from_sun":
        return str((day.weekday() + 1) % 7)
    if kind == "weekday_from_mon":
        return str(day.weekday() + 1)
    if kind == "ordinal":
        return _pad(day.timetuple().tm_yday, 3, pad)
    if kind == "hour":
        return _pad(day.hour, 2, pad)
    if kind == "hour12":
        return _pad((day.hour + 11) % 12 + 1, 2, pad)
    if kind == "minute":
        return _pad(day.minute, 2, pad)
    if kind == "second":
        return _pad(day.second + moment.nanos // 1_000_000_000, 2, pad)
    if kind == "nanosecond":
        return _pad(moment.nanos % 1_000_000_000, 9, pad)
    if kind == "timestamp":
        return _pad(moment.timestamp(), 9, pad)
    raise FormatError(kind)  # pragma: no cover - every kind is listed above


def _format_fixed(moment: Moment, kind: str) -> str:
    day, nanos = moment.local, moment.nanos % 1_000_000_000
    simple = {
        "short_month": lambda: SHORT_MONTHS[day.month - 1],
        "long_month": lambda: LONG_MONTHS[day.month - 1],
        "short_weekday": lambda: SHORT_DAYS[day.weekday()],
        "long_weekday": lambda: LONG_DAYS[day.weekday()],
        "lower_ampm": lambda: "pm" if day.hour >= 12 else "am",
        "upper_ampm": lambda: "PM" if day.hour >= 12 else "AM",
        "nanos_auto": lambda: _fraction(nanos),
        "nanos3": lambda: f".{nanos // 1_000_000:03d}",
        "nanos6": lambda: f".{nanos // 1_000:06d}",
        "nanos9": lambda: f".{nanos:09d}",
        "nanos3_nodot": lambda: f"{nanos // 1_000_000:03d}",
        "nanos6_nodot": lambda: f"{nanos // 1_000:06d}",
        "nanos9_nodot": lambda: f"{nanos:09d}",
        "tz_name": lambda: _offset_name(moment.offset),
        "offset": lambda: _offset_text(moment.offset, colons=False, precision="minutes"),
        "offset_colon": lambda: _offset_text(moment.offset, colons=True, precision="minutes"),
        "offset_seconds": lambda: _offset_text(moment.offset, colons=True, precision="seconds"),
        "offset_hours": lambda: _offset_text(moment.offset, colons=False, precision="hours"),
        "rfc3339": lambda: (
            f"{day.year:04d}-{day.month:02d}-{day.day:02d}T{day.hour:02d}:{day.minute:02d}:"
            f"{day.second + moment.nanos // 1_000_000_000:02d}{_fraction(nanos)}"
            f"{_offset_text(moment.offset, colons=True, precision='minutes')}"
        ),
    }
    render = simple.get(kind)
    if render is None:  # "%#z" is a parse-only specifier
        raise FormatError(kind)
    return render()


def format_moment(moment: Moment, items: list[Item]) -> str:
    out: list[str] = []
    for item in items:
        tag = item[0]
        if tag in ("lit", "space"):
            out.append(item[1])
        elif tag == "num":
            out.append(_format_num(moment, item[1], item[2]))
        elif tag == "fixed":
            out.append(_format_fixed(moment, item[1]))
        else:
            raise FormatError("error")
    return "".join(out)


# -- parsing (chrono's parse + Parsed) -------------------------------------------------


@attrs.define
class Parsed:
    """Fields seen while parsing; setting a field twice must agree (else IMPOSSIBLE)."""

    fields: dict[str, int] = attrs.field(factory=dict)

    def set(self, name: str, value: int, low: int | None = None, high: int | None = None) -> None:
        if (low is not None and value < low) or (high is not None and value > high):
            raise ChronoError(OUT_OF_RANGE)
        old = self.fields.get(name)
        if old is not None and old != value:
            raise ChronoError(IMPOSSIBLE)
        self.fields[name] = value

    def get(self, name: str) -> int | None:
        return self.fields.get(name)


_I32 = (-(2**31), 2**31 - 1)
_SETTERS: dict[str, tuple[str, int | None, int | None]] = {
    "year": ("year", *_I32),
    "year_div_100": ("year_div_100", 0, _I32[1]),
    "year_mod_100": ("year_mod_100", 0, 99),
    "iso_year": ("iso_year", *_I32),
    "iso_year_mod_100": ("iso_year_mod_100", 0, 99),
    "quarter": ("quarter", 1, 4),
    "month": ("month", 1, 12),
    "day": ("day", 1, 31),
    "week_from_sun": ("week_from_sun", 0, 53),
    "week_from_mon": ("week_from_mon", 0, 53),
    "iso_week": ("iso_week", 1, 53),
    "ordinal": ("ordinal", 1, 366),
    "minute": ("minute", 0, 59),
    "second": ("second", 0, 60),
    "nanosecond": ("nanosecond", 0, 999_999_999),
    "timestamp": ("timestamp", None, None),
}
_WIDTHS = {
    "year": 4, "iso_year": 4, "year_div_100": 2, "year_mod_100": 2, "iso_year_mod_100": 2,
    "quarter": 1, "month": 2, "day": 2, "week_from_sun": 2, "week_from_mon": 2, "iso_week": 2,
    "days_from_sun": 1, "weekday_from_mon": 1, "ordinal": 3, "hour": 2, "hour12": 2,
    "minute": 2, "second": 2, "nanosecond": 9, "timestamp": 10**9,
}  # fmt: skip
_I64_MAX = 2**63 - 1


def _number(s: str, low: int, high: int) -> tuple[str, int]:
    """chrono ``scan::number``: ``low``..``high`` ASCII digits."""
    if len(s.encode("utf-8")) < low:
        raise ChronoError(TOO_SHORT)
    value = 0
    count = 0
    for char in s[:high]:
        if not ("0" <= char <= "9"):
            break
        value = value * 10 + ord(char) - 48
        if value > _I64_MAX:
            raise ChronoError(OUT_OF_RANGE)
        count += 1
    if count < low:
        raise ChronoError(INVALID)
    return s[count:], value


def _set_weekday(parsed: Parsed, monday_based: int) -> None:
    parsed.set("weekday", monday_based)


def _set_hour(parsed: Parsed, value: int) -> None:
    if not 0 <= value <= 23:
        raise ChronoError(OUT_OF_RANGE)
    parsed.set("hour_div_12", value // 12)
    parsed.set("hour_mod_12", value % 12)


def _parse_numeric(parsed: Parsed, s: str, kind: str) -> str:
    s, value = _number(s.lstrip(RUST_WHITESPACE), 1, _WIDTHS[kind])
    if kind == "days_from_sun":
        if not 0 <= value <= 6:
            raise ChronoError(OUT_OF_RANGE)
        _set_weekday(parsed, (value + 6) % 7)
    elif kind == "weekday_from_mon":
        if not 1 <= value <= 7:
            raise ChronoError(OUT_OF_RANGE)
        _set_weekday(parsed, value - 1)
    elif kind == "hour":
        _set_hour(parsed, value)
    elif kind == "hour12":
        if not 1 <= value <= 12:
            raise ChronoError(OUT_OF_RANGE)
        parsed.set("hour_mod_12", value % 12)
    else:
        name, low, high = _SETTERS[kind]
        parsed.set(name, value, low, high)
    return s


def _parse_signed_year(parsed: Parsed, s: str, kind: str) -> str:
    s = s.lstrip(RUST_WHITESPACE)
    if s[:1] == "-":
        s, value = _number(s[1:], 1, 10**9)
        value = -value
    elif s[:1] == "+":
        s, value = _number(s[1:], 1, 10**9)
    else:
        s, value = _number(s, 1, 4)
    name, low, high = _SETTERS[kind]
    parsed.set(name, value, low, high)
    return s


def _short_name(s: str, names: tuple[str, ...]) -> tuple[str, int]:
    if len(s.encode("utf-8")) < 3:
        raise ChronoError(TOO_SHORT)
    head = s[:3].lower()
    for index, name in enumerate(names):
        if name[:3].lower() == head:
            return s[3:], index
    raise ChronoError(INVALID)


def _short_or_long(s: str, short: tuple[str, ...], long: tuple[str, ...]) -> tuple[str, int]:
    s, index = _short_name(s, short)
    suffix = long[index][3:].lower()
    if s[: len(suffix)].lower() == suffix:
        s = s[len(suffix) :]
    return s, index


def _nanosecond(s: str) -> tuple[str, int]:
    before = len(s)
    s, value = _number(s, 1, 9)
    digits = before - len(s)
    value *= 10 ** (9 - digits)
    return s.lstrip("0123456789"), value


def _nanosecond_fixed(s: str, digits: int) -> tuple[str, int]:
    s, value = _number(s, digits, digits)
    return s, value * 10 ** (9 - digits)


def _timezone_offset(
    s: str, *, colon: str, allow_zulu: bool, allow_missing_minutes: bool
) -> tuple[str, int]:
    """chrono ``scan::timezone_offset``.

    ``colon`` says what may sit between hours and minutes: ``"required"`` (one
    ``:``), ``"colon_or_space"`` (any run of ``:`` and whitespace) or ``"none"``.
    Only RFC 2822 refuses the Unicode minus sign.
    """
    if allow_zulu and s[:1] in ("Z", "z"):
        return s[1:], 0
    if not s:
        raise ChronoError(TOO_SHORT)
    sign = s[0]
    if sign not in ("+", "-") and not (sign == "\u2212" and colon != "none"):
        raise ChronoError(INVALID)
    negative = sign != "+"
    s = s[1:]
    if len(s) < 2:
        raise ChronoError(TOO_SHORT)
    if not (s[0].isascii() and s[0].isdigit() and s[1].isascii() and s[1].isdigit()):
        raise ChronoError(INVALID)
    hours = int(s[:2])
    s = s[2:]
    if colon == "required":
        if not s:
            raise ChronoError(TOO_SHORT)
        if s[0] != ":":
            raise ChronoError(INVALID)
        s = s[1:]
    elif colon == "colon_or_space":
        s = s.lstrip(":" + RUST_WHITESPACE)
    if len(s) >= 2:
        first, second = s[0], s[1]
        if "0" <= first <= "5" and "0" <= second <= "9":
            minutes = int(s[:2])
        elif "6" <= first <= "9" and "0" <= second <= "9":
            raise ChronoError(OUT_OF_RANGE)
        else:
            raise ChronoError(INVALID)
        s = s[2:]
    elif allow_missing_minutes:
        minutes = 0
        if len(s) == 1:
            raise ChronoError(TOO_SHORT)
    else:
        raise ChronoError(TOO_SHORT)
    seconds = hours * 3600 + minutes * 60
    return s, -seconds if negative else seconds


_RFC3339_RELAXED_DATE: list[Item] = [
    _num("year"), ("space", ""), ("lit", "-"), _num("month"), ("space", ""), ("lit", "-"),
    _num("day"),
]  # fmt: skip
_RFC3339_RELAXED_TIME: list[Item] = [
    _num("hour"), ("space", ""), ("lit", ":"), _num("minute"), ("space", ""), ("lit", ":"),
    _num("second"), _fixed("nanos_auto"), ("space", ""),
]  # fmt: skip


def _parse_fixed(parsed: Parsed, s: str, kind: str) -> str:
    if kind == "short_month":
        s, index = _short_name(s, SHORT_MONTHS)
        parsed.set("month", index + 1)
    elif kind == "long_month":
        s, index = _short_or_long(s, SHORT_MONTHS, LONG_MONTHS)
        parsed.set("month", index + 1)
    elif kind == "short_weekday":
        s, index = _short_name(s, SHORT_DAYS)
        _set_weekday(parsed, index)
    elif kind == "long_weekday":
        s, index = _short_or_long(s, SHORT_DAYS, LONG_DAYS)
        _set_weekday(parsed, index)
    elif kind in ("lower_ampm", "upper_ampm"):
        if len(s.encode("utf-8")) < 2:
            raise ChronoError(TOO_SHORT)
        head = s[:2].lower()
        if head not in ("am", "pm"):
            raise ChronoError(INVALID)
        parsed.set("hour_div_12", 1 if head == "pm" else 0)
        s = s[2:]
    elif kind == "nanos_auto":
        if s.startswith("."):
            s, value = _nanosecond(s[1:])
            parsed.set("nanosecond", value, 0, 999_999_999)
    elif kind in ("nanos3", "nanos6", "nanos9"):
        if s.startswith("."):
            s, value = _nanosecond_fixed(s[1:], int(kind[-1]))
            parsed.set("nanosecond", value, 0, 999_999_999)
    elif kind.endswith("_nodot"):
        digits = int(kind[5])
        if len(s.encode("utf-8")) < digits:
            raise ChronoError(TOO_SHORT)
        s, value = _nanosecond_fixed(s, digits)
        parsed.set("nanosecond", value, 0, 999_999_999)
    elif kind == "tz_name":
        index = 0
        while index < len(s) and s[index] not in RUST_WHITESPACE:
            index += 1
        s = s[index:]
    elif kind in ("offset", "offset_colon", "offset_seconds", "offset_hours"):
        s, offset = _timezone_offset(
            s.lstrip(RUST_WHITESPACE),
            colon="colon_or_space",
            allow_zulu=False,
            allow_missing_minutes=False,
        )
        parsed.set("offset", offset, *_I32)
    elif kind == "offset_permissive":
        s, offset = _timezone_offset(
            s.lstrip(RUST_WHITESPACE),
            colon="colon_or_space",
            allow_zulu=True,
            allow_missing_minutes=True,
        )
        parsed.set("offset", offset, *_I32)
    elif kind == "rfc3339":
        s = _parse_items(parsed, s, _RFC3339_RELAXED_DATE)
        if not s:
            raise ChronoError(TOO_SHORT)
        if s[0] not in ("T", "t", " "):
            raise ChronoError(INVALID)
        s = _parse_items(parsed, s[1:], _RFC3339_RELAXED_TIME)
        s = s.lstrip(RUST_WHITESPACE)
        if s[:3].upper() == "UTC":
            s, offset = s[3:], 0
        else:
            s, offset = _timezone_offset(
                s, colon="colon_or_space", allow_zulu=True, allow_missing_minutes=False
            )
        parsed.set("offset", offset, *_I32)
    return s


def _parse_items(parsed: Parsed, s: str, items: list[Item]) -> str:
    for item in items:
        tag = item[0]
        if tag == "lit":
            prefix = item[1]
            if len(s.encode("utf-8")) < len(prefix.encode("utf-8")):
                raise ChronoError(TOO_SHORT)
            if not s.startswith(prefix):
                raise ChronoError(INVALID)
            s = s[len(prefix) :]
        elif tag == "space":
            s = s.lstrip(RUST_WHITESPACE)
        elif tag == "num":
            kind = item[1]
            if kind in ("year", "iso_year"):
                s = _parse_signed_year(parsed, s, kind)
            else:
                s = _parse_numeric(parsed, s, kind)
        elif tag == "fixed":
            s = _parse_fixed(parsed, s, item[1])
        else:
            raise ChronoError(BAD_FORMAT)
    return s


def parse_fields(text: str, items: list[Item]) -> Parsed:
    parsed = Parsed()
    rest = _parse_items(parsed, text, items)
    if rest:
        raise ChronoError(TOO_LONG)
    return parsed


def _resolve_year(year: int | None, div: int | None, mod: int | None) -> int | None:
    if div is None and mod is None:
        return year
    if year is not None:
        if year < 0:
            raise ChronoError(IMPOSSIBLE)
        if (div is not None and div != year // 100) or (mod is not None and mod != year % 100):
            raise ChronoError(IMPOSSIBLE)
        return year
    if div is not None and mod is not None:
        return div * 100 + mod
    if mod is not None:
        return mod + (2000 if mod < 70 else 1900)
    raise ChronoError(NOT_ENOUGH)


def _make_date(year: int, month: int, day: int) -> dt.date:
    try:
        return dt.date(year, month, day)
    except (ValueError, OverflowError):
        raise ChronoError(OUT_OF_RANGE) from None


def _from_ordinal(year: int, ordinal: int) -> dt.date:
    start = _make_date(year, 1, 1)
    try:
        result = start + dt.timedelta(days=ordinal - 1)
    except OverflowError:
        raise ChronoError(OUT_OF_RANGE) from None
    if result.year != year:
        raise ChronoError(OUT_OF_RANGE)
    return result


def _week_date(year: int, week: int, weekday: int, week_start: int) -> dt.date:
    first = _make_date(year, 1, 1)
    first_week_start = 1 + (week_start - first.weekday()) % 7
    ordinal = first_week_start + (week - 1) * 7 + (weekday - week_start) % 7
    if ordinal <= 0:
        raise ChronoError(IMPOSSIBLE)
    try:
        return _from_ordinal(year, ordinal)
    except ChronoError:
        raise ChronoError(IMPOSSIBLE) from None


def to_date(parsed: Parsed) -> dt.date:
    """chrono ``Parsed::to_naive_date``: build a date, then check every other given field."""
    get = parsed.get
    year = _resolve_year(get("year"), get("year_div_100"), get("year_mod_100"))
    iso_year = _resolve_year(get("iso_year"), None, get("iso_year_mod_100"))
    weekday = get("weekday")
    if year is not None and get("month") is not None and get("day") is not None:
        date = _make_date(year, get("month"), get("day"))  # type: ignore[arg-type]
    elif year is not None and get("ordinal") is not None:
        date = _from_ordinal(year, get("ordinal"))  # type: ignore[arg-type]
    elif year is not None and get("week_from_sun") is not None and weekday is not None:
        date = _week_date(year, get("week_from_sun"), weekday, 6)  # type: ignore[arg-type]
    elif year is not None and get("week_from_mon") is not None and weekday is not None:
        date = _week_date(year, get("week_from_mon"), weekday, 0)  # type: ignore[arg-type]
    elif iso_year is not None and get("iso_week") is not None and weekday is not None:
        try:
            date = dt.date.fromisocalendar(iso_year, get("iso_week"), weekday + 1)  # type: ignore[arg-type]
        except ValueError:
            raise ChronoError(OUT_OF_RANGE) from None
    else:
        raise ChronoError(NOT_ENOUGH)
    iso = date.isocalendar()
    moment = dt.datetime(date.year, date.month, date.day)
    expected = {
        "year": date.year,
        "year_div_100": date.year // 100,
        "year_mod_100": date.year % 100,
        "month": date.month,
        "day": date.day,
        "iso_year": iso[0],
        "iso_year_mod_100": iso[0] % 100,
        "iso_week": iso[1],
        "weekday": date.weekday(),
        "ordinal": date.timetuple().tm_yday,
        "week_from_sun": _weeks_from(moment, 6),
        "week_from_mon": _weeks_from(moment, 0),
        "quarter": (date.month - 1) // 3 + 1,
    }
    for name, value in expected.items():
        given = get(name)
        if given is not None and given != value:
            raise ChronoError(IMPOSSIBLE)
    return date


def to_time(parsed: Parsed) -> tuple[dt.time, int]:
    """chrono ``Parsed::to_naive_time``: hour and minute required, seconds optional."""
    div, mod, minute = parsed.get("hour_div_12"), parsed.get("hour_mod_12"), parsed.get("minute")
    if div is None or mod is None or minute is None:
        raise ChronoError(NOT_ENOUGH)
    second = parsed.get("second")
    nanos = parsed.get("nanosecond")
    if nanos is not None and second is None:
        raise ChronoError(NOT_ENOUGH)
    sec = second or 0
    extra = 0
    if sec == 60:
        sec, extra = 59, 1_000_000_000
    return dt.time(div * 12 + mod, minute, sec), extra + (nanos or 0)


def to_naive_datetime(parsed: Parsed, offset: int) -> tuple[dt.datetime, int]:
    """chrono ``to_naive_datetime_with_offset``, including the ``%s`` timestamp path."""
    date_error = time_error = None
    try:
        date = to_date(parsed)
    except ChronoError as exc:
        date_error = exc
    try:
        clock, nanos = to_time(parsed)
    except ChronoError as exc:
        time_error = exc
    timestamp = parsed.get("timestamp")
    if date_error is None and time_error is None:
        naive = dt.datetime.combine(date, clock)
        if timestamp is not None:
            delta = naive - _EPOCH
            actual = delta.days * 86_400 + delta.seconds - offset
            leap = nanos >= 1_000_000_000
            if timestamp != actual and not (leap and timestamp == actual + 1):
                raise ChronoError(IMPOSSIBLE)
        return naive, nanos
    if timestamp is None:
        raise date_error or time_error  # type: ignore[misc]
    for error in (date_error, time_error):
        if error is not None and str(error) == OUT_OF_RANGE:
            raise ChronoError(OUT_OF_RANGE)
    for error in (date_error, time_error):
        if error is not None and str(error) == IMPOSSIBLE:
            raise ChronoError(IMPOSSIBLE)
    try:
        naive = _EPOCH + dt.timedelta(seconds=timestamp + offset)
    except OverflowError:
        raise ChronoError(OUT_OF_RANGE) from None
    filled = Parsed(dict(parsed.fields))
    if filled.get("second") == 60:
        if naive.second == 0:
            naive -= dt.timedelta(seconds=1)
        elif naive.second != 59:
            raise ChronoError(IMPOSSIBLE)
    else:
        filled.set("second", naive.second)
    filled.set("year", naive.year)
    filled.set("ordinal", naive.timetuple().tm_yday)
    _set_hour(filled, naive.hour)
    filled.set("minute", naive.minute)
    date = to_date(filled)
    clock, nanos = to_time(filled)
    return dt.datetime.combine(date, clock), nanos


# -- the auto-detected input forms (DF-11) --------------------------------------------

_RFC3339_HEAD = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})", re.ASCII)


def parse_rfc3339(text: str) -> Moment:
    """chrono ``DateTime::parse_from_rfc3339`` (a space may separate date and time)."""
    if len(text.encode("utf-8")) < 19:
        raise ChronoError(TOO_SHORT)
    match = _RFC3339_HEAD.match(text)
    if match is None or not text[:19].isascii():
        raise ChronoError(INVALID)
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    date = _make_date(year, month, day)
    extra = 0
    if second == 60:
        second, extra = 59, 1_000_000_000
    rest = text[19:]
    nanos = 0
    if rest.startswith("."):
        rest, nanos = _nanosecond(rest[1:])
    if hour > 23 or minute > 59 or second > 59:
        raise ChronoError(OUT_OF_RANGE)
    rest, offset = _timezone_offset(
        rest, colon="required", allow_zulu=True, allow_missing_minutes=False
    )
    if rest:
        raise ChronoError(TOO_LONG)
    if abs(offset) >= 86_400:
        raise ChronoError(OUT_OF_RANGE)
    local = dt.datetime(date.year, date.month, date.day, hour, minute, second)
    return Moment(local, nanos + extra, offset)


_RFC2822_ZONES = {"gmt": 0, "ut": 0, "z": 0, "edt": -4, "est": -5, "cdt": -5, "cst": -6,
                  "mdt": -6, "mst": -7, "pdt": -7, "pst": -8}  # fmt: skip


def _rfc2822_space(s: str) -> str:
    stripped = s.lstrip(RUST_WHITESPACE)
    if len(stripped) < len(s):
        return stripped
    raise ChronoError(TOO_SHORT if not s else INVALID)


def _rfc2822_comment(s: str) -> str | None:
    s = s.lstrip(RUST_WHITESPACE)
    if not s.startswith("("):
        return None
    depth, index, escaped = 0, 0, False
    while index < len(s):
        char = s[index]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return s[index + 1 :]
        index += 1
    return None


def parse_rfc2822(text: str) -> Moment:
    """chrono ``DateTime::parse_from_rfc2822``: ``[Day,] DD Mon YYYY HH:MM[:SS] zone``."""
    parsed = Parsed()
    s = text.lstrip(RUST_WHITESPACE)
    try:
        rest, weekday = _short_name(s, SHORT_DAYS)
    except ChronoError:
        pass
    else:
        if not rest.startswith(","):
            raise ChronoError(INVALID)
        s = rest[1:]
        _set_weekday(parsed, weekday)
    s = s.lstrip(RUST_WHITESPACE)
    s, day = _number(s, 1, 2)
    parsed.set("day", day, 1, 31)
    s = _rfc2822_space(s)
    s, month = _short_name(s, SHORT_MONTHS)
    parsed.set("month", month + 1)
    s = _rfc2822_space(s)
    before = len(s)
    s, year = _number(s, 2, 10**9)
    digits = before - len(s)
    if digits == 2:
        year += 2000 if year < 50 else 1900
    elif digits == 3:
        year += 1900
    parsed.set("year", year, *_I32)
    s = _rfc2822_space(s)
    s, hour = _number(s, 2, 2)
    _set_hour(parsed, hour)
    s = s.lstrip(RUST_WHITESPACE)
    if not s:
        raise ChronoError(TOO_SHORT)
    if s[0] != ":":
        raise ChronoError(INVALID)
    s = s[1:].lstrip(RUST_WHITESPACE)
    s, minute = _number(s, 2, 2)
    parsed.set("minute", minute, 0, 59)
    after = s.lstrip(RUST_WHITESPACE)
    if after.startswith(":"):
        s, second = _number(after[1:], 2, 2)
        parsed.set("second", second, 0, 60)
    s = _rfc2822_space(s)
    letters = 0
    while letters < len(s) and s[letters].isascii() and s[letters].isalpha():
        letters += 1
    if letters:
        name = s[:letters].lower()
        s = s[letters:]
        if name in _RFC2822_ZONES:
            offset = _RFC2822_ZONES[name] * 3600
        elif len(name) == 1 and name != "j":
            offset = 0
        else:
            raise ChronoError(INVALID)
    else:
        s, offset = _timezone_offset(s, colon="none", allow_zulu=False, allow_missing_minutes=False)
    while (after_comment := _rfc2822_comment(s)) is not None:
        s = after_comment
    if s:
        raise ChronoError(TOO_LONG)
    naive, nanos = to_naive_datetime(parsed, offset)
    if abs(offset) >= 86_400:
        raise ChronoError(OUT_OF_RANGE)
    return Moment(naive, nanos, offset)


_NAIVE_FORMATS = [strftime_items("%Y-%m-%d %H:%M:%S"), strftime_items("%Y-%m-%dT%H:%M:%S")]
_DATE_ONLY = strftime_items("%Y-%m-%d")


def auto_parse(text: str) -> Moment | None:
    """DF-11: RFC 3339, RFC 2822, two naive forms (UTC), then a bare date at midnight."""
    for strict in (parse_rfc3339, parse_rfc2822):
        try:
            return strict(text)
        except ChronoError:
            pass
    for items in _NAIVE_FORMATS:
        try:
            naive, nanos = to_naive_datetime(parse_fields(text, items), 0)
        except ChronoError:
            continue
        return Moment(naive, nanos, 0)
    try:
        date = to_date(parse_fields(text, _DATE_ONLY))
    except ChronoError:
        return None
    return Moment(dt.datetime(date.year, date.month, date.day), 0, 0)


def parse_with_format(text: str, pattern: str) -> Moment:
    """DF-12: a naive date-time, else a date at midnight; any offset in the text is ignored.

    Upstream tries ``NaiveDateTime`` then ``NaiveDate`` and reports the second
    attempt's error, which is what a failure here carries.
    """
    items = strftime_items(pattern)
    parsed = parse_fields(text, items)
    try:
        naive, nanos = to_naive_datetime(parsed, 0)
        return Moment(naive, nanos, 0)
    except ChronoError:
        date = to_date(parsed)
    return Moment(dt.datetime(date.year, date.month, date.day), 0, 0)


_TZ_PART = re.compile(r"[+-]?[0-9]+\Z")


def parse_timezone(zone: str) -> int:
    """DF-13: ``UTC`` (any case), ``Z``, ``+HH:MM`` or ``-HH:MM`` as seconds east of UTC."""
    trimmed = zone.strip(RUST_WHITESPACE)
    if trimmed.lower() == "utc" or trimmed == "Z":
        return 0
    if trimmed[:1] in ("+", "-") and len(trimmed.encode("utf-8")) >= 5:
        sign = -1 if trimmed[0] == "-" else 1
        parts = trimmed[1:].split(":")
        if len(parts) == 2 and all(_TZ_PART.match(part) for part in parts):
            hours, minutes = int(parts[0]), int(parts[1])
            total = sign * (hours * 3600 + minutes * 60)
            if -86_400 < total < 86_400 and abs(hours) < 2**31 and abs(minutes) < 2**31:
                return total
    raise NodeError(f"Invalid timezone '{zone}'. Use 'UTC', '+HH:MM', or '-HH:MM'")


def now_utc() -> Moment:
    nanos_total = time.time_ns()
    seconds, nanos = divmod(nanos_total, 1_000_000_000)
    return Moment(_EPOCH + dt.timedelta(seconds=seconds), nanos, 0)


# -- the node ---------------------------------------------------------------------------

_SUPPORTED = "RFC3339, RFC2822, YYYY-MM-DD HH:MM:SS, YYYY-MM-DDTHH:MM:SS, YYYY-MM-DD"


@attrs.frozen
class DateFormatConfig:
    input: Any = None
    source_key: Any = None
    input_format: Any = None
    output_format: Any = None
    output_key: Any = None
    timezone: Any = None


async def date_format(ctx: NodeContext, config: DateFormatConfig) -> dict[str, Any]:
    """DF-10..14: ``<k>`` formatted text and ``<k>_unix`` integer seconds."""
    output_format = str_or(config.output_format, "%Y-%m-%d %H:%M:%S")
    output_key = str_or(config.output_key, "formatted_date")
    raw = text_input(
        ctx,
        config.input,
        config.source_key,
        both="date_format: provide either 'input' or 'source_key', not both",
        neither="date_format requires either 'input' or 'source_key'",
    )
    if raw.isascii() and raw.lower() == "now":
        moment = now_utc()
    elif isinstance(config.input_format, str):
        try:
            moment = parse_with_format(raw, config.input_format)
        except ChronoError as exc:
            raise NodeError(
                f"Failed to parse '{raw}' with format '{config.input_format}': {exc}"
            ) from None
    else:
        parsed = auto_parse(raw)
        if parsed is None:
            raise NodeError(f"Could not parse '{raw}' as a date. Supported formats: {_SUPPORTED}")
        moment = parsed
    if isinstance(config.timezone, str):
        moment = moment.at_offset(parse_timezone(config.timezone))
    try:
        formatted = format_moment(moment, strftime_items(output_format))
    except FormatError:
        raise NodeError(f"Invalid output_format '{output_format}': {BAD_FORMAT}") from None
    return {output_key: formatted, f"{output_key}_unix": moment.timestamp()}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="date_format",
        run=date_format,
        config=DateFormatConfig,
        summary="Parse and format dates/timestamps",
    ),
]
