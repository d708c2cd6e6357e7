"""The bounded pattern matcher agrees with Lua's own (DSL-92 pathological patterns).

Calls whose worst case is beyond the C budget run in a Python port of
``lstrlib.c``; these tests force every call onto that path and compare the
results with an unrestricted C Lua state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lupa import lua54

from ironflow_core.lua import patterns, state
from ironflow_core.lua.errors import LuaExecutionError
from ironflow_core.lua.state import LuaState
from ironflow_core.settings import LuaLimits

PROGRAM = b"""
local op, s, p, extra = ...
local function pack(...) return {n = select('#', ...), ...} end
local ok, r
if op == 'find' then ok, r = pcall(function() return pack(string.find(s, p, extra)) end)
elseif op == 'match' then ok, r = pcall(function() return pack(string.match(s, p, extra)) end)
elseif op == 'gsub' then ok, r = pcall(function() return pack(string.gsub(s, p, extra)) end)
elseif op == 'gsubf' then ok, r = pcall(function()
  return pack(string.gsub(s, p, function(a, b) return a and ('<' .. tostring(a) .. '>') end)) end)
else ok, r = pcall(function()
  local out = {} for a, b in string.gmatch(s, p) do out[#out + 1] = tostring(a) .. '|' .. tostring(b) end
  return pack(table.concat(out, ',')) end)
end
if not ok then return 'error' end
local parts = {}
for i = 1, r.n do parts[i] = type(r[i]) .. ':' .. tostring(r[i]) end
return table.concat(parts, ' ')
"""


@pytest.fixture(scope="module")
def reference() -> Any:
    lua = lua54.LuaRuntime(encoding=None, register_eval=False, register_builtins=False)
    return lua.execute(b"return function(...) " + PROGRAM + b" end")


@pytest.fixture(scope="module")
def python_matcher() -> Iterator[Any]:
    budget = state.MATCH_BUDGET
    state.MATCH_BUDGET = -1  # every pattern call takes the Python path
    try:
        vm = LuaState(LuaLimits(), env={}, runtime=True)
    finally:
        state.MATCH_BUDGET = budget
    fn = vm.load(PROGRAM, "=program")
    yield lambda *args: vm.call(fn, *args)[0]
    vm.close()


PIECES = ["a", "b", "c", ".", "%a", "%d", "%s", "%w", "%W", "[ab]", "[^a]", "[a-c]", "[%d_]",
          "%.", "%%", "(", ")", "()", "%b()", "%f[%w]", "%f[%W]", "%1", "$", "^",
          "[]a]", "[^]a]", "[%]x]", "[a-]", "[-a]", "[%a-c]", "[c-a]", "[^%d-]", "%f[^]]"]
QUANT = ["", "", "*", "+", "-", "?"]

pattern_text = st.lists(
    st.tuples(st.sampled_from(PIECES), st.sampled_from(QUANT)), min_size=1, max_size=6
).map(lambda parts: "".join(piece + (q if piece not in "()$^" and piece != "()" else "")
                           for piece, q in parts))
subject_text = st.text(alphabet="ab c1_.()x%]-", max_size=12)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=st.sampled_from(["find", "match", "gmatch", "gsub", "gsubf"]), s=subject_text,
       p=pattern_text, init=st.integers(min_value=-4, max_value=14))
def test_python_matcher_agrees_with_lstrlib(reference: Any, python_matcher: Any, op: str, s: str,
                                            p: str, init: int) -> None:
    extra: Any = init if op in ("find", "match") else None
    if op == "gsub":
        extra = b"[%0|%1]"
    args = (op.encode(), s.encode(), p.encode(), extra)
    assert python_matcher(*args) == reference(*args)


@pytest.mark.parametrize(("subject", "pattern", "expected"), [
    (b"hello world", b"o w", (5, 7)),
    (b"  trim  ", b"^%s*(.-)%s*$", (1, 8, b"trim")),
    (b"key = value", b"(%w+)%s*=%s*(%w+)", (1, 11, b"key", b"value")),
    (b"f(a(b)c)d", b"%b()", (2, 8)),
    (b"THE (quick) fox", b"%f[%a]%a+", (1, 3)),
    (b"aaa", b"()a()", (1, 1, 1, 2)),
])
def test_matcher_vectors(subject: bytes, pattern: bytes, expected: tuple[Any, ...]) -> None:
    anchor = pattern.startswith(b"^")
    m = patterns.Matcher(subject, pattern[1:] if anchor else pattern, lambda: None)
    found = m.search(0, anchor=anchor)
    assert found is not None
    st_, e = found
    assert (st_ + 1, e, *m.captures(st_, e, whole=False)) == expected


@pytest.mark.parametrize(("pattern", "message"), [
    (b"%", "malformed pattern (ends with '%')"),
    (b"[a", "malformed pattern (missing ']')"),
    (b"(a", "unfinished capture"),
    (b"a)", "invalid pattern capture"),
    (b"%1", "invalid capture index %1"),
    (b"%f", "missing '[' after '%f' in pattern"),
    (b"%b", "malformed pattern (missing arguments to '%b')"),
])
def test_matcher_errors_are_worded_like_lua(pattern: bytes, message: str) -> None:
    m = patterns.Matcher(b"abc", pattern, lambda: None)
    with pytest.raises(patterns.PatternError, match=f"^{__import__('re').escape(message)}$"):
        found = m.search(0, anchor=False)
        if found:
            m.captures(*found, whole=True)


def test_cost_estimate() -> None:
    assert patterns.pattern_degree(b"abc") == (-1, 0)
    assert patterns.pattern_degree(b"%s+")[0] == 1
    assert patterns.pattern_degree(b"^%d+$")[0] == 1
    assert patterns.pattern_degree(b".-.-.-b")[0] == 4
    assert patterns.pattern_degree(b"a?a?a")[1] == 2
    assert patterns.pattern_degree(b"[a")[0] == 64


def test_cheap_patterns_stay_in_c() -> None:
    with LuaState(LuaLimits(), env={}, runtime=True) as vm:
        fn = vm.load(b"local s = string.rep('word ', 20000) "
                     b"return select(2, s:gsub('%s+', ' ')), #s:match('^%s*(.-)%s*$')", "=t")
        assert vm.call(fn) == (20000, 99999)


def test_slow_path_errors_name_the_callers_line() -> None:
    with LuaState(LuaLimits(), env={}, runtime=True) as vm:
        fn = vm.load(b"local s = string.rep('a', 5000)\nlocal r = s:gsub('.-.-%', 'x')", "=code")
        with pytest.raises(LuaExecutionError, match=r"^code:2: malformed pattern \(ends with '%'\)$"):
            vm.call(fn)
