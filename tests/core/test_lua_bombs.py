"""Lua code built to outrun the sandbox's limits (issue 13), at the state level.

Each bomb would run for minutes or hold hundreds of megabytes without the
charge it attacks; the limits used here are small so the tests stay fast.
Wall-time bounds are loose (a loaded machine) but far below the bomb's cost.
"""

from __future__ import annotations

import time

import pytest

from ironflow_core.logtext import escape_controls
from ironflow_core.lua.errors import LuaExecutionError, LuaLimitError
from ironflow_core.lua.state import LuaState
from ironflow_core.settings import LuaLimits

ONE_SECOND = LuaLimits(max_seconds=1, max_instructions=0)
SMALL_MEMORY = LuaLimits(max_seconds=0, max_instructions=0, max_memory_bytes=32 * 1024 * 1024)


def run(limits: LuaLimits, code: str) -> tuple[object, ...]:
    with LuaState(limits, env={}, runtime=True) as vm:
        return vm.call(vm.load(code.encode(), "=bomb"))


@pytest.mark.parametrize("code", [
    # a long class scanned at every position (ran for minutes)
    'local s = string.rep("a", 5000) local c = "[" .. string.rep("b-c", 300000) .. "]*x" '
    "for i = 1, 1000 do string.find(s, c) end",
    # the same through gsub and gmatch
    'local s = string.rep("a", 5000) local c = "[" .. string.rep("%a%d", 100000) .. "]-x" '
    'for i = 1, 1000 do string.gsub(s, c, "y") end',
    'local s = string.rep("a", 5000) local c = "[" .. string.rep("b", 500000) .. "]*x" '
    "for i = 1, 1000 do for m in string.gmatch(s, c) do end end",
    # a back-reference compares long captures at every step
    'string.match(string.rep("a", 20000), "(.*)%1%1x")',
    # a replacement walked once per match, adding nothing (the C path)
    'string.gsub(string.rep("a", 1000000), "(b*)", string.rep("%1", 100000))',
])
def test_pattern_bombs_stop_at_the_time_budget(code: str) -> None:
    started = time.monotonic()
    with pytest.raises(LuaLimitError, match="exceeded time budget of 1s"):
        run(ONE_SECOND, code)
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(("code", "what"), [
    ('local b = string.rep("QUFB", 2000000) local t = {} for i = 1, 13 do '
     "t[i] = base64_decode(b) end", "base64_decode result of 6000000 bytes"),
    ('local b = string.rep("a", 3000000) local t = {} for i = 1, 13 do '
     "t[i] = base64_encode(b) end", "base64_encode result of 4000000 bytes"),
    ("local d = '\"' .. string.rep('a', 3000000) .. '\"' local t = {} for i = 1, 13 do "
     "t[i] = json_parse(d) end", "JSON-to-Lua value at $ (3000000 bytes more)"),
    ('local s = string.rep("a", 1000000) local r = string.gsub(s, "^(.*)$", '
     'string.rep("%1", 200))', "gsub replacement of "),
])
def test_host_results_are_measured_before_they_enter_lua(code: str, what: str) -> None:
    with pytest.raises(LuaExecutionError) as failure:
        run(SMALL_MEMORY, code)
    message = str(failure.value)
    assert "not enough memory: " + what in message
    assert "would exceed the Lua memory limit of 33554432 bytes " \
           "(IRONFLOW_LUA_MAX_MEMORY_BYTES)" in message


def test_a_refused_host_result_can_be_caught_and_the_state_goes_on() -> None:
    code = ('local b = string.rep("QUFB", 2000000) local kept, refused = {}, nil '
            "for i = 1, 10 do local ok, v = pcall(base64_decode, b) "
            "if ok then kept[i] = v else refused = i break end end "
            "return refused, #base64_decode('QUFB')")
    refused, size = run(SMALL_MEMORY, code)
    assert 2 <= refused <= 5 and size == 3


def test_log_text_escapes_control_characters() -> None:
    assert escape_controls("a\nERROR b\r\x1b[2J\x00\tc\u2028") == \
        "a\\nERROR b\\r\\x1b[2J\\x00\tc\\u2028"
    assert escape_controls("plain text") == "plain text"
