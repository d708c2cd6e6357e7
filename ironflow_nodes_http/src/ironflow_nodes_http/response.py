"""Reading a response body the way upstream does (HTTP-4).

UTF-8 with replacement, then JSON if it parses, else the text itself. JSON is
read like serde_json reads it, so the stored context never holds a value that
upstream would have refused (a non-finite number, a lone surrogate).
"""

from __future__ import annotations

import math
import re
from typing import Any

from ironflow_core import json_dumps, loads_strict

_I64_MIN, _U64_MAX = -(2**63), 2**64 - 1
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _json_int(text: str) -> int | float:
    value = int(text)
    return value if _I64_MIN <= value <= _U64_MAX else _json_float(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def parse_body(body: bytes) -> Any:
    """HTTP-4: UTF-8 (with replacement), then JSON if it parses, else the text itself.

    Parsing follows serde_json: integers beyond u64 become floats, numbers out
    of float range and ``NaN``/``Infinity`` are not JSON, nor are lone surrogates.
    """
    text = body.decode("utf-8", errors="replace")
    try:
        value = loads_strict(text, max_depth=None, parse_int=_json_int, parse_float=_json_float)
    except ValueError:
        return text
    if _SURROGATE_ESCAPE.search(text):
        try:
            json_dumps(value).encode("utf-8")
        except UnicodeEncodeError:
            return text
    return value
