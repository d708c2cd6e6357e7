"""The canonical JSON encoder (JSON-1..4, JSON-6): the fast path keeps the reference's text."""

from __future__ import annotations

import json
import math

import pytest

from ironflow_core.jsonutil import dumps, dumps_bytes, dumps_pretty, dumps_pretty_bytes


def reference(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def reference_pretty(value: object) -> str:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)


VALUES = [
    {"b": 1, "a": 1.0, "é": "ü/\u2028", "Z": [True, False, None, -0.0, 0.1, 3, 2.5]},
    {"ctx": {}, "tasks": {"s1": {"output": {"k": []}, "attempt": 1}}, "n": 9007199254740993},
    ["\u0000\u001f\"\\", {"😀": "𝄞", "a": {"c": 1, "B": 2, "b": 3}}],
    1.5, "text", 0, None,
]


@pytest.mark.parametrize("value", VALUES)
def test_json_1_fast_text_is_the_reference_text(value: object) -> None:
    assert dumps(value) == reference(value)
    assert dumps_bytes(value) == reference(value).encode()
    assert dumps_pretty(value) == reference_pretty(value)
    assert dumps_pretty_bytes(value) == reference_pretty(value).encode()


def test_json_2_integers_and_floats_stay_distinct() -> None:
    assert dumps({"i": 3, "f": 3.0}) == '{"f":3.0,"i":3}'


def test_json_3_non_finite_numbers_are_refused() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            dumps({"x": bad})
        with pytest.raises(ValueError):
            dumps_pretty([1, bad])


def test_json_6_exponent_floats_keep_their_value() -> None:
    for number in (1e16, 1e-7, 1.5e300, 123456789012345680000.0):
        assert json.loads(dumps({"x": number}))["x"] == number


def test_what_the_fast_encoder_refuses_gets_the_reference_behaviour() -> None:
    big = {"n": 2**70, "m": -(2**70)}
    assert dumps(big) == reference(big)
    keys = {1: "a", 2: "b"}
    assert dumps(keys) == reference(keys)

    class Text(str):
        pass

    assert dumps({"k": Text("v")}) == '{"k":"v"}'
    assert dumps("\ud800") == reference("\ud800")  # a lone surrogate
    with pytest.raises(TypeError):
        dumps({"when": object()})


@pytest.mark.parametrize(("ns", "text"), [
    (0, "1970-01-01T00:00:00.000000Z"),
    (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456Z"),  # floored to the µs
    (1_700_000_001_000_000_999, "2023-11-14T22:13:21.000000Z"),  # the next second
    (1_700_000_000_999_999_000, "2023-11-14T22:13:20.999999Z"),  # and back within it
])
def test_now_timestamp_formats_the_clock_as_json_7_text(monkeypatch, ns: int, text: str) -> None:
    import time

    from ironflow_core.jsonutil import now_timestamp

    monkeypatch.setattr(time, "time_ns", lambda: ns)
    assert now_timestamp() == text


def test_now_timestamp_agrees_with_the_datetime_clock() -> None:
    import datetime as dt

    from ironflow_core.jsonutil import is_timestamp, now_timestamp, parse_timestamp

    before = dt.datetime.now(dt.UTC)
    text = now_timestamp()
    after = dt.datetime.now(dt.UTC)
    assert is_timestamp(text)
    assert before <= parse_timestamp(text) <= after
