"""Node-level tests for date_format and its chrono-compatible engine (semantics.md#text-nodes, DF-*)."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest

from ironflow_core._compat import chrono as dates
from ironflow_core.configs import structure_config
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.testing import make_registry, node_context

REGISTRY = make_registry()
SUPPORTED = "RFC3339, RFC2822, YYYY-MM-DD HH:MM:SS, YYYY-MM-DDTHH:MM:SS, YYYY-MM-DD"


def make_ctx(data: dict[str, Any]) -> NodeContext:
    return node_context(data, registry=REGISTRY, node_type="date_format")


async def run_node(raw: dict[str, Any], data: dict[str, Any] | None = None) -> dict[str, Any]:
    spec = REGISTRY.nodes["date_format"]
    config = structure_config(spec.config, {**raw, "_step_name": "s"})
    return dict(await spec.run(make_ctx(data or {}), config))


async def fails(raw: dict[str, Any], data: dict[str, Any] | None = None) -> str:
    with pytest.raises(NodeError) as info:
        await run_node(raw, data)
    return str(info.value)


async def fmt(text: str, pattern: str, **extra: Any) -> str:
    out = await run_node({"input": text, "output_format": pattern, "output_key": "r", **extra})
    return out["r"]


def test_appendix_b_summary() -> None:
    assert REGISTRY.nodes["date_format"].summary == "Parse and format dates/timestamps"


# -- DF-15 vectors and the 20-date example ---------------------------------------------


async def test_df_15_vectors() -> None:
    assert await fmt("2024-06-15T10:30:00Z", "%Y-%m-%d") == "2024-06-15"
    assert await fmt("2024-06-15T10:30:00Z", "%B %d, %Y") == "June 15, 2024"
    out = await run_node(
        {
            "input": "2024-06-15T10:30:00Z",
            "output_format": "%B %d, %Y at %I:%M %p",
            "output_key": "pretty_date",
        }
    )
    assert out == {"pretty_date": "June 15, 2024 at 10:30 AM", "pretty_date_unix": 1718447400}
    out = await run_node(
        {
            "input": "15/06/2024 10:30:00",
            "input_format": "%d/%m/%Y %H:%M:%S",
            "output_format": "%Y-%m-%d",
            "output_key": "result",
        }
    )
    assert out == {"result": "2024-06-15", "result_unix": 1718447400}


async def test_df_14_default_format_and_output_keys() -> None:
    out = await run_node({"input": "2024-06-15T10:30:00Z"})
    assert out == {"formatted_date": "2024-06-15 10:30:00", "formatted_date_unix": 1718447400}


async def test_df_now_any_case_is_current_utc_time() -> None:
    before = int(time.time())
    out = await run_node(
        {"input": "NoW", "output_format": "%Y-%m-%d %H:%M:%S UTC", "output_key": "current_time"}
    )
    after = int(time.time())
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", out["current_time"])
    assert before <= out["current_time_unix"] <= after
    stamp = dt.datetime.strptime(out["current_time"], "%Y-%m-%d %H:%M:%S UTC")
    assert abs(stamp.replace(tzinfo=dt.UTC).timestamp() - out["current_time_unix"]) < 1


async def test_df_now_carries_an_offset_of_zero() -> None:
    assert await fmt("now", "%z|%:z|%Z") == "+0000|+00:00|+00:00"


# -- DF-10 input selection ------------------------------------------------------------


async def test_df_10_source_key_string_and_non_string_value() -> None:
    out = await run_node(
        {"source_key": "when", "output_format": "%d.%m.%Y"}, {"when": "2024-06-15T10:30:00Z"}
    )
    assert out["formatted_date"] == "15.06.2024"
    # A number is read as its JSON text, and Unix timestamps are not dates (DF-11).
    message = await fails({"source_key": "ts"}, {"ts": 1718447400})
    assert message == f"Could not parse '1718447400' as a date. Supported formats: {SUPPORTED}"


async def test_df_10_input_interpolated() -> None:
    out = await run_node(
        {"input": "${ctx.d}T00:00:00Z", "output_format": "%A"}, {"d": "2024-06-15"}
    )
    assert out["formatted_date"] == "Saturday"


async def test_df_10_both_or_neither() -> None:
    assert await fails({"input": "now", "source_key": "k"}) == (
        "date_format: provide either 'input' or 'source_key', not both"
    )
    assert await fails({}) == "date_format requires either 'input' or 'source_key'"
    assert await fails({"source_key": "missing"}) == "Key 'missing' not found in context"


# -- DF-11 auto-detection -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "formatted", "unix"),
    [
        ("2024-06-15T10:30:00Z", "2024-06-15T10:30:00+00:00", 1718447400),
        ("2024-06-15t10:30:00.5+02:00", "2024-06-15T10:30:00.500+02:00", 1718440200),
        ("2024-06-15 10:30:00-05:00", "2024-06-15T10:30:00-05:00", 1718465400),
        ("Sat, 15 Jun 2024 10:30:00 +0200", "2024-06-15T10:30:00+02:00", 1718440200),
        ("15 Jun 2024 10:30 GMT", "2024-06-15T10:30:00+00:00", 1718447400),
        ("Sat, 15 Jun 24 10:30:00 EST", "2024-06-15T10:30:00-05:00", 1718465400),
        ("2024-06-15 10:30:00", "2024-06-15T10:30:00+00:00", 1718447400),
        ("2024-06-15T10:30:00", "2024-06-15T10:30:00+00:00", 1718447400),
        ("2024-06-15", "2024-06-15T00:00:00+00:00", 1718409600),
        ("2024-6-5 7:08:09", "2024-06-05T07:08:09+00:00", 1717571289),
    ],
)
async def test_df_11_auto_detected_forms(text: str, formatted: str, unix: int) -> None:
    out = await run_node({"input": text, "output_format": "%+"})
    assert out == {"formatted_date": formatted, "formatted_date_unix": unix}


@pytest.mark.parametrize(
    "text",
    ["1718447400", "not-a-date", "2024-13-01", "Fri, 15 Jun 2024 10:30:00 +0000",
     "2024-06-15T10:30:00+0200", "15/06/2024", " 2024-06-15T10:30:00Z", "2024-06-15 10:30"],
)  # fmt: skip
async def test_df_11_unparseable_inputs(text: str) -> None:
    # Unix seconds are refused, a weekday must match its date, RFC 3339 offsets need a colon,
    # and the naive forms need seconds.
    assert await fails({"input": text}) == (
        f"Could not parse '{text}' as a date. Supported formats: {SUPPORTED}"
    )


# -- DF-12 explicit input_format ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("15/06/2024", "%d/%m/%Y", "2024-06-15 00:00:00"),  # a date alone is midnight
        ("06/15/24 3:04 pm", "%D %I:%M %P", "2024-06-15 15:04:00"),
        ("June 15 2024 10:30:00.123", "%B %d %Y %H:%M:%S%.f", "2024-06-15 10:30:00"),
        ("Sat Jun 15 2024", "%a %b %d %Y", "2024-06-15 00:00:00"),
        ("2024-167", "%Y-%j", "2024-06-15 00:00:00"),
        ("1718447400", "%s", "2024-06-15 10:30:00"),
        ("70-01-01", "%y-%m-%d", "1970-01-01 00:00:00"),
        ("69-01-01", "%y-%m-%d", "2069-01-01 00:00:00"),
        ("2024-06-15 10:30 +0200", "%Y-%m-%d %H:%M %z", "2024-06-15 10:30:00"),  # offset ignored
        ("15/06/2024 10", "%d/%m/%Y %H", "2024-06-15 00:00:00"),  # no minute: the date wins
    ],
)
async def test_df_12_input_format_parses_naive_utc(text: str, pattern: str, expected: str) -> None:
    out = await run_node({"input": text, "input_format": pattern})
    assert out["formatted_date"] == expected


@pytest.mark.parametrize(
    ("text", "pattern", "reason"),
    [
        ("15/06/2024x", "%d/%m/%Y", "trailing input"),
        ("15/06", "%d/%m/%Y", "premature end of input"),
        ("15-06-2024", "%d/%m/%Y", "input contains invalid characters"),
        ("32/06/2024", "%d/%m/%Y", "input is out of range"),
        ("31/06/2024", "%d/%m/%Y", "input is out of range"),
        ("Fri 15/06/2024", "%a %d/%m/%Y", "no possible date and time matching input"),
        ("10:30", "%H:%M", "input is not enough for unique date and time"),
        ("2024", "%Y%Q", "bad or unsupported format string"),
    ],
)
async def test_df_12_input_format_errors(text: str, pattern: str, reason: str) -> None:
    message = await fails({"input": text, "input_format": pattern})
    assert message == f"Failed to parse '{text}' with format '{pattern}': {reason}"


# -- DF-13 offsets --------------------------------------------------------------------


async def test_df_13_parsed_offset_is_kept_without_timezone() -> None:
    out = await run_node({"input": "2024-06-15T10:30:00+02:00", "output_format": "%H:%M %:z"})
    assert out == {"formatted_date": "10:30 +02:00", "formatted_date_unix": 1718440200}


@pytest.mark.parametrize(
    ("zone", "expected"),
    [("UTC", "08:30 +00:00"), ("utc", "08:30 +00:00"), ("Z", "08:30 +00:00"),
     ("+05:30", "14:00 +05:30"), ("-05:00", "03:30 -05:00"), (" +01:00 ", "09:30 +01:00")],
)  # fmt: skip
async def test_df_13_timezone_converts_the_instant(zone: str, expected: str) -> None:
    out = await run_node(
        {"input": "2024-06-15T10:30:00+02:00", "output_format": "%H:%M %:z", "timezone": zone}
    )
    assert out == {"formatted_date": expected, "formatted_date_unix": 1718440200}


async def test_df_13_timezone_crosses_the_date_line() -> None:
    text = await fmt("2024-01-01T00:30:00Z", "%Y-%m-%d %H:%M %z", timezone="-01:00")
    assert text == "2023-12-31 23:30 -0100"


@pytest.mark.parametrize("zone", ["Europe/Paris", "+0200", "+2", "EST", "+24:00", ""])
async def test_df_13_invalid_timezone(zone: str) -> None:
    message = await fails({"input": "2024-06-15", "timezone": zone})
    assert message == f"Invalid timezone '{zone}'. Use 'UTC', '+HH:MM', or '-HH:MM'"


# -- DF-14 chrono directives ----------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("%Y %m %d %H %M %S", "2024-06-05 09:07:03".replace("-", " ").replace(":", " ")),
        ("%I %p %P", "09 AM am"),
        ("%B %b %A %a %h", "June Jun Wednesday Wed Jun"),
        ("%j %e %k %l %y %C", "157  5  9  9 24 20"),
        ("%Z|%z|%:z|%::z|%:::z", "+05:30|+0530|+05:30|+05:30:00|+05"),
        ("%.3f|%.6f|%.9f|%.f", ".123|.123456|.123456789|.123456789"),
        ("%3f|%6f|%9f|%f", "123|123456|123456789|123456789"),
        ("%-d|%-m|%_d|%0e|%-j", "5|6| 5|05|157"),
        ("%D|%F|%T|%R|%r|%v|%x|%X", "06/05/24|2024-06-05|09:07:03|09:07|09:07:03 AM| 5-Jun-2024|06/05/24|09:07:03"),
        ("%c", "Wed Jun  5 09:07:03 2024"),
        ("%+", "2024-06-05T09:07:03.123456789+05:30"),
        ("%u %w %U %W %V %G %g %q", "3 3 22 23 23 2024 24 2"),
        ("%s", "1717558623"),
        ("100%% %t|%n|", "100% \t|\n|"),
    ],
)  # fmt: skip
async def test_df_14_chrono_directives(pattern: str, expected: str) -> None:
    assert await fmt("2024-06-05T09:07:03.123456789+05:30", pattern) == expected


async def test_df_14_fraction_widths_follow_chrono() -> None:
    assert await fmt("2024-06-15T10:30:00.5Z", "%.f") == ".500"
    assert await fmt("2024-06-15T10:30:00.000250Z", "%.f") == ".000250"
    assert await fmt("2024-06-15T10:30:00Z", "%.f|%.3f") == "|.000"
    assert await fmt("2024-06-15T22:00:00Z", "%I %l %p %P") == "10 10 PM pm"
    assert await fmt("2024-06-15T00:00:00Z", "%I %H %k") == "12 00  0"


async def test_df_14_leap_second_from_rfc3339() -> None:
    out = await run_node({"input": "2016-12-31T23:59:60Z", "output_format": "%S %T"})
    assert out == {"formatted_date": "60 23:59:60", "formatted_date_unix": 1483228799}


@pytest.mark.parametrize("pattern", ["%Q", "%", "%-F", "%#z", "%.5f", "%_A"])
async def test_df_14_invalid_output_format_is_an_error(pattern: str) -> None:
    message = await fails({"input": "2024-06-15", "output_format": pattern})
    assert message == f"Invalid output_format '{pattern}': bad or unsupported format string"


def test_df_14_tokenizer_splits_like_chrono() -> None:
    assert dates.strftime_items("at %e\t%%") == [
        ("lit", "at"),
        ("space", " "),
        ("num", "day", " "),
        ("space", "\t"),
        ("lit", "%"),
    ]
