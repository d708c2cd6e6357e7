"""Exact Lua <-> JSON conversion (DSL-80..86, PY-2, PY-3).

JSON -> Lua builds tables from Python (the state's memory ceiling is
disarmed then): integers that fit i64 stay Lua integers, other numbers become
floats, arrays carry the array marker metatable, ``null`` becomes the
``json_null`` userdata. Lua -> JSON runs the prelude's walker inside Lua (raw
``next``, ``math.type``, markers, cycle detection, depth and node budgets, the
``$`` paths of DSL-85) and hands back JSON text that Python parses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ironflow_core.lua.errors import LuaConversionError, memory_message
from ironflow_core.settings import LuaLimits


class HostState(Protocol):
    """What conversions and host functions use of a ``lua.state.LuaState``.

    A protocol, so that the state (which installs the host functions) and
    the modules it installs do not import each other.
    """

    limits: LuaLimits
    env: Mapping[str, str]
    runtime: bool
    state: Any
    """The state's ``LimitState`` (``slicing``, ``check_slice``)."""
    null: Any

    def new_table(self) -> Any:
        """A new empty Lua table."""

    def mark_array(self, table: Any) -> None:
        """Mark ``table`` as a JSON array."""

    def memory_over(self, size: int) -> int:
        """0 when ``size`` more bytes fit under the memory ceiling, else the ceiling."""

    def reserve(self, size: int, what: str) -> None:
        """Refuse a host result of ``size`` bytes that would pass the ceiling."""

    def to_json_text(self, value: Any, path: str) -> tuple[bool, bytes]:
        """The prelude's Lua -> JSON walker."""

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1


def json_path(parent: str, key: str | int) -> str:
    """DSL-85: ``.key`` for identifier-like keys, ``["key"]`` otherwise, ``[i]`` for indexes."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if key and (key[0] == "_" or (key[0].isascii() and key[0].isalpha())) and all(
        c == "_" or (c.isascii() and c.isalnum()) for c in key
    ):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def _path(root: str, segments: list[str | int]) -> str:
    path = root
    for segment in segments:
        path = json_path(path, segment)
    return path


def json_to_lua(vm: HostState, value: Any, *, path: str = "$") -> Any:
    """Build the Lua value for a JSON value (depth and node budgets apply)."""
    max_depth = vm.limits.max_conversion_depth
    max_nodes = vm.limits.max_conversion_nodes
    new_table = vm.new_table
    mark_array = vm.mark_array
    null = vm.null
    # During an inline slice the clock is read every 256 values: a large
    # value ends the slice instead of holding up the trio thread.
    check_slice = vm.state.check_slice if vm.state.slicing else None
    segments: list[str | int] = []
    count = 0
    memory_over = vm.memory_over

    def check_memory(size: int) -> None:
        # Tables and strings are pushed with the ceiling disarmed: measure first.
        limit = memory_over(size)
        if limit:
            raise fail(memory_message(f"JSON-to-Lua value at {{path}} ({size} bytes more)", limit))

    def fail(message: str) -> LuaConversionError:
        return LuaConversionError(message.replace("{path}", _path(path, segments)))

    def convert(v: Any, depth: int) -> Any:
        nonlocal count
        if depth > max_depth:
            raise fail(f"JSON-to-Lua maximum depth {max_depth} exceeded at {{path}} "
                       "(raise IRONFLOW_MAX_CONVERSION_DEPTH)")
        if count >= max_nodes:
            raise fail(f"JSON-to-Lua maximum node count {max_nodes} exceeded at {{path}} "
                       "(raise IRONFLOW_MAX_CONVERSION_NODES)")
        count += 1
        if not count & 255:
            if check_slice is not None:
                check_slice()
            check_memory(256 * 64)
        kind = type(v)
        if kind is str:
            try:
                data = v.encode("utf-8")
            except UnicodeEncodeError:
                raise fail("JSON string at {path} is not valid Unicode") from None
            if len(data) > 4096:
                check_memory(len(data))
            return data
        if v is None:
            return null
        if kind is bool:
            return v
        if kind is int:
            return v if I64_MIN <= v <= I64_MAX else float(v)
        if kind is float:
            if not math.isfinite(v):
                raise fail("non-finite number at {path} cannot be converted to Lua")
            return v
        if kind is dict or (kind is not list and isinstance(v, Mapping)):
            table = new_table()
            for key, item in v.items():
                if not isinstance(key, str):
                    raise fail(f"object key {key!r} at {{path}} is not a string")
                segments.append(key)
                table[key.encode("utf-8", "surrogatepass")] = convert(item, depth + 1)
                segments.pop()
            return table
        if kind is list or (isinstance(v, Sequence) and not isinstance(v, (bytes, bytearray))):
            table = new_table()
            for index, item in enumerate(v):
                segments.append(index)
                table[index + 1] = convert(item, depth + 1)
                segments.pop()
            mark_array(table)
            return table
        if isinstance(v, int):  # bool subclasses are handled above; IntEnum and friends
            return int(v)
        if isinstance(v, float):
            return float(v)
        raise fail(f"unsupported {kind.__name__} value at {{path}}")

    try:
        return convert(value, 0)
    except RecursionError:
        raise LuaConversionError(
            f"value at {path} is nested too deeply to convert "
            f"(IRONFLOW_MAX_CONVERSION_DEPTH is {max_depth})"
        ) from None


def lua_to_json(vm: HostState, value: Any, *, path: str = "$") -> Any:
    """Convert a Lua value (as lupa returns it) to JSON; errors name the ``path``."""
    ok, text = vm.to_json_text(value, path)
    if not ok:
        raise LuaConversionError(text.decode("utf-8", "replace"))
    try:
        return json.loads(text)
    except RecursionError:
        raise LuaConversionError(f"value at {path} is nested too deeply") from None
