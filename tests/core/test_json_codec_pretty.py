"""The JSON store's primary is the reference's text, byte for byte, whichever encoder wrote it.

``json_codec`` pretty-prints records with orjson where orjson's text is the
standard library's (``indent=2, sort_keys=True, ensure_ascii=False``) and with
its own reference path where it may not be; these tests hold both paths to the
standard library, so an orjson upgrade that changes a spelling fails here.
"""

from __future__ import annotations

import json
import math
import random
import struct
import sys

import pytest

from ironflow_core.stores import json_codec as codec


def reference(value: object, indent: int = 0) -> bytes:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return text.replace("\n", "\n" + "  " * indent).encode()


def floats_across_every_exponent() -> list[float]:
    rng = random.Random(17)
    values = []
    for exponent in range(-324, 309):
        for mantissa in ("1", "1.5", "2.25", "9.999", "3.141592653589793", "7"):
            number = float(f"{mantissa}e{exponent}")
            if number and math.isfinite(number):
                values += [number, -number]
    for _ in range(20_000):  # random bit patterns: every digit count and exponent
        number = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(number):
            values.append(number)
    return [*values, 0.0, -0.0, 5e-324, sys.float_info.max, 1e16, 1e-4, 1e-5, 9.999999e-5]


def test_every_float_is_spelled_as_the_reference_spells_it():
    numbers = floats_across_every_exponent()
    for chunk in range(0, len(numbers), 500):
        value = {"output": numbers[chunk:chunk + 500]}
        assert codec.pretty_bytes(value, 2) == reference(value, 2)


def test_the_fast_path_is_taken_where_it_agrees():
    # What orjson spells otherwise goes the reference way ...
    for number in (1e-05, 1.5e-06, -7.25e-09, 0.00001234):
        assert codec._fast_pretty({"x": number}) is None
    # ... and everything else is orjson's (the speed this module is for).
    for value in ({"x": 1e-10, "y": 1e-4, "z": 1e22}, {"text": "one-2e-5 0.00001"}):
        fast = codec._fast_pretty(value)
        assert fast is None or fast == reference(value)
    assert codec._fast_pretty({"x": [1.5, 2e-10, 123456789.0]}) == reference(
        {"x": [1.5, 2e-10, 123456789.0]})


STRINGS = [
    "".join(chr(c) for c in range(0, 0x800)),
    "".join(chr(c) for c in range(0xD7F0, 0xD800)) + "".join(chr(c) for c in range(0xE000, 0x10000)),
    "😀𝄞\U0010FFFF\u2028\u2029\x7f\ufeff",
]


@pytest.mark.parametrize("text", STRINGS)
def test_every_character_is_escaped_as_the_reference_escapes_it(text):
    value = {text: text, "list": [text, {"k": text}]}
    assert codec.pretty_bytes(value, 1) == reference(value, 1)


def test_keys_sort_by_code_point_like_the_reference():
    keys = ["b", "B", "a", "é", "\uffff", "\U00010000", "😀", "", "a b", "Z", "\u00e9t\u00e9"]
    value = {key: {inner: 1 for inner in keys} for key in keys}
    assert codec.pretty_bytes(value, 0) == reference(value)


def test_what_orjson_refuses_takes_the_reference_path():
    value = {"big": 2**70, "neg": -(2**70), "empty": {}, "none": [], "t": True, "n": None}
    assert codec.pretty_bytes(value, 1) == reference(value, 1)
    deep: object = 1
    for _ in range(300):  # deeper than orjson nests
        deep = [deep]
    assert codec.pretty_bytes(deep, 1) == reference(deep, 1)


def test_text_that_only_looks_like_such_a_float_keeps_the_fast_path():
    value = {"started": "2026-01-01T00:00:00.000012Z", "id": "0c3e-4a1d-9e-5",
             "note": "version 10.00001, 2e-5x", "n": [10.00001, 1e-10, 1.5e16]}
    assert codec._fast_pretty(value) == reference(value)


@pytest.mark.parametrize("tiny", [0.0, 1e-6], ids=["fast", "task-by-task"])
def test_a_whole_primary_is_the_reference_layout(tiny):
    tasks = {
        f"s{i}": {"name": f"s{i}", "node_type": "code", "status": "success", "attempt": 1,
                  "input": {"x": i * tiny, "s": "é\n"}, "output": {"v": [i, i / 3, None]},
                  "started": "2026-01-01T00:00:00.000001Z", "depends_on": ["a"]}
        for i in range(40)
    }
    tasks["empty"] = {"name": "empty", "node_type": "code", "status": "pending", "attempt": 0,
                      "output": {}}
    raw = {"id": "run-1", "flow_name": "f", "status": "running", "started": None,
           "finished": None, "ctx": {"b": [tiny * 0.15, 2], "a": "😀"}, "tasks": tasks}
    header = {"id": "run-1"}
    assert (codec._fast_primary(header, raw) is None) == bool(tiny)
    cache = codec.PrettyCache()
    for encoded in (codec.encode_primary(raw, cache), codec.encode_primary(raw, cache)):
        head = {codec.REVISION_FIELD: encoded.revision, codec.DIGEST_FIELD: encoded.digest}
        ordered = {**head, **{k: raw[k] for k in ("id", "flow_name", "status", "started",
                                                   "finished")}}
        expected = json.dumps(ordered, indent=2, ensure_ascii=False)[:-2]
        expected += ',\n  "ctx": ' + reference(raw["ctx"], 1).decode()
        expected += ',\n  "tasks": ' + reference(raw["tasks"], 1).decode() + "\n}"
        assert encoded.data == expected.encode()
