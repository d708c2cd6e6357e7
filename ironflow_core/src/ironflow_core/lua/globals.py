"""The Python side of the Lua globals of semantics.md#lua-globals (DSL-60..69).

Each function here runs as a host function: it receives Lua values (strings
as ``bytes``), returns values lupa can push, and reports failures by raising
:class:`HostError` (the sandbox turns that into a plain Lua error). The Lua
wrappers that call them live in ``prelude.lua``; ``base64_*`` are only
installed in runtime states (DSL-60), ``Flow``/``nodes`` only by the loader.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from ironflow_core import jsonutil
from ironflow_core._compat.numbers import rust_f64_display
from ironflow_core.logtext import escape_controls
from ironflow_core.lua.convert import HostState, json_to_lua
from ironflow_core.lua.errors import HostError, LuaConversionError
from ironflow_core.settings import read_env_var

logger = logging.getLogger("ironflow.lua")

_LEVELS = {
    b"trace": 5,
    b"debug": logging.DEBUG,
    b"info": logging.INFO,
    b"warn": logging.WARNING,
    b"error": logging.ERROR,
}
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
"""JSON string literals; unrolled so that a long string costs no backtracking stack."""
_PRECHECK_BYTES = 1 << 20


def _utf8(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise HostError(f"{what} is not valid UTF-8") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text}")
    return value


def host_functions(vm: HostState) -> dict[str, Callable[..., Any]]:
    """The host functions the prelude wraps into Lua globals."""
    max_nodes = vm.limits.max_conversion_nodes

    def lua_env(key: Any) -> bytes | None:
        if isinstance(key, bytes):
            name = _utf8(key, "env() key")
        elif isinstance(key, (int, float)) and not isinstance(key, bool):
            name = rust_f64_display(key)
        else:
            raise HostError("bad argument #1 to 'env' (string expected)")
        value = read_env_var(vm.env, name)  # the current execution's (a state is reused)
        return None if value is None else value.encode("utf-8", "surrogateescape")

    def uuid4() -> bytes:
        return str(uuid.uuid4()).encode()

    def now_rfc3339() -> bytes:
        return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds").encode()

    def now_unix_ms() -> int:
        return time.time_ns() // 1_000_000

    def json_decode(data: bytes) -> Any:
        text = _utf8(data, "json_parse input")
        if len(data) > _PRECHECK_BYTES:
            # Refuse documents that cannot fit the node budget before Python
            # materialises them: every comma outside a string separates values.
            commas = _STRINGS.sub(b"", data).count(b",")
            if commas + 1 > max_nodes:
                raise HostError(
                    f"json_parse failed: document has more than {max_nodes} values "
                    "(raise IRONFLOW_MAX_CONVERSION_NODES)"
                )
        try:
            value = jsonutil.loads_strict(text, max_depth=None, parse_float=_finite_float)
        except jsonutil.JsonNestingError:
            raise HostError("json_parse failed: document is nested too deeply") from None
        except ValueError as exc:
            raise HostError(f"json_parse failed: {exc}") from None
        try:
            return json_to_lua(vm, value)
        except LuaConversionError as exc:
            raise HostError(str(exc)) from None

    def json_canonical(text: bytes) -> bytes:
        vm.reserve(len(text), "json_stringify result")
        try:
            return jsonutil.dumps(json.loads(text)).encode("utf-8")
        except RecursionError:
            raise HostError("json_stringify failed: value is nested too deeply") from None

    def lua_log(level: bytes, *parts: Any) -> tuple[()]:
        words: list[str] = []
        for kind, value in zip(parts[::2], parts[1::2], strict=False):
            if kind == b"s":
                words.append(value.decode("utf-8", "replace"))
            elif kind == b"n":
                words.append(rust_f64_display(value))
            elif kind == b"b":
                words.append("true" if value else "false")
            elif kind == b"z":
                words.append(value.decode())
            else:
                words.append(jsonutil.dumps(json.loads(value)))
        logger.log(_LEVELS.get(level, logging.INFO), "<lua> %s", escape_controls(" ".join(words)))
        return ()

    def base64_encode(data: bytes) -> bytes:
        vm.reserve((len(data) + 2) // 3 * 4, "base64_encode result")
        return base64.b64encode(data)

    def base64_decode(data: bytes) -> bytes:
        _utf8(data, "base64_decode input")
        vm.reserve(len(data) // 4 * 3, "base64_decode result")
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HostError(f"base64_decode failed: {exc}") from None

    hosts: dict[str, Callable[..., Any]] = {
        "env": lua_env,
        "uuid4": uuid4,
        "now_rfc3339": now_rfc3339,
        "now_unix_ms": now_unix_ms,
        "json_decode": json_decode,
        "json_canonical": json_canonical,
        "log": lua_log,
    }
    if vm.runtime:
        hosts["base64_encode"] = base64_encode
        hosts["base64_decode"] = base64_decode
    return hosts
