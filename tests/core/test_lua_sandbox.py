"""Sandbox escapes and resource bombs (semantics.md#sandbox, DSL-90..92, PY-1).

Every attempt must fail cleanly: a Lua error (or a harmless value), within
the limit plus one second, and the next sandbox works as usual. Most bombs
use a sub-second deadline (the same hook path as the time budget) to keep
the suite fast; a few use ``IRONFLOW_LUA_MAX_SECONDS=1`` for the wording.
"""

from __future__ import annotations

import threading
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
import trio

import ironflow_core.lua.plugin as lua_plugin
from ironflow_core import hookimpl
from ironflow_core.context import NodeContext
from ironflow_core.errors import FlowLoadError, NodeError
from ironflow_core.loading import load_flow
from ironflow_core.lua.errors import LuaError, LuaExecutionError, LuaLimitError
from ironflow_core.lua.runtime import LuaExecution
from ironflow_core.nodes.code import NODES as CODE_NODES
from ironflow_core.nodes.code import CodeConfig, run_code
from ironflow_core.registry import Registry
from ironflow_core.services import RunServices
from ironflow_core.settings import LuaLimits
from ironflow_core.specs import FlowSource
from ironflow_core.testing import make_registry, node_context
from tests.core.timing import bounded

DEADLINE = 0.4
NO_BUDGETS = LuaLimits(max_instructions=0, max_seconds=0)
ONE_SECOND = LuaLimits.from_env({"IRONFLOW_LUA_MAX_SECONDS": "1", "IRONFLOW_LUA_MAX_INSTRUCTIONS": "0"})


def evaluate(source: str, *, limits: LuaLimits = NO_BUDGETS, deadline: float | None = DEADLINE,
             ctx: Any = None) -> Any:
    """Run a code source in a fresh runtime sandbox and convert its first result."""
    sandbox = LuaExecution(limits, env={"SECRET": "s3cr3t"},
                      deadline=None if deadline is None else time.monotonic() + deadline)
    try:
        if ctx is not None:
            sandbox.set_global("ctx", sandbox.to_lua(ctx))
        return sandbox.from_lua(sandbox.call(sandbox.compile_source(source)))
    finally:
        sandbox.close()


def fails(source: str, *, error: type[Exception] = LuaError, match: str | None = None,
          limit: float = DEADLINE, **kwargs: Any) -> str:
    with bounded(limit + 1.0), pytest.raises(error) as info:
        evaluate(source, **kwargs)
    if match is not None:
        assert match in str(info.value), str(info.value)
    return str(info.value)


@pytest.fixture(autouse=True)
def process_goes_on() -> Iterator[None]:
    yield
    assert evaluate("({ok = 1 + 1})", deadline=None) == {"ok": 2}


# -- escapes (DSL-90, DSL-91) -----------------------------------------------------------

@pytest.mark.parametrize("name", ["os", "io", "debug", "package", "require", "load", "loadfile",
                                  "dofile", "loadstring", "collectgarbage", "coroutine", "python",
                                  "warn", "string.dump", "Flow", "nodes"])
def test_dsl_90_names_are_absent_at_run_time(name: str) -> None:
    assert evaluate(f"type({name})") == "nil"


def test_escape_01_bytecode_load_is_unavailable() -> None:
    fails("load(string.char(27) .. 'LuaT')()", match="global 'load'")


async def test_escape_02_forged_bytecode_is_refused() -> None:
    ctx = NodeContext({}, step_name="s", node_type="code", services=_services())
    with pytest.raises(NodeError, match="Function bytecode failed authentication"):
        await run_code(ctx, CodeConfig(bytecode_b64="G0x1YVQAGZMNChoKBAgIeFYAAAAAAAAAAAAAACh3QAE="))


def test_escape_03_string_dump_is_gone_everywhere() -> None:
    assert evaluate("{string.dump, getmetatable('').__index.dump, ('x').dump}") == {}


def test_escape_04_string_metatable_is_read_only() -> None:
    fails("getmetatable('').__index = function() return 'pwned' end",
          match="attempt to modify the string metatable")
    assert evaluate("rawset(getmetatable(''), '__index', {upper = 1}) return ('x'):upper()") == "X"
    fails("setmetatable('', {})", match="bad argument #1 to 'setmetatable'")
    assert evaluate("getmetatable('').__index == string") is True


def test_escape_05_string_library_changes_stay_in_this_state() -> None:
    assert evaluate("string.upper = function() return 'pwned' end return ('a'):upper()") == "pwned"
    assert evaluate("('a'):upper()") == "A"


def test_escape_06_rawget_rawset_on_G() -> None:
    assert evaluate("{rawget(_G, 'python'), rawget(_G, 'debug'), rawget(_G, 'load'), "
                    "rawget(_G, 'os')}") == {}
    assert evaluate("rawset(_G, 'os', {execute = print}) return type(os.execute)") == "function"


def test_escape_07_python_bridge_is_absent() -> None:
    fails("python.eval('__import__(\"os\")')", match="global 'python'")
    fails("python.builtins.open('/etc/passwd')", match="global 'python'")


@pytest.mark.parametrize("expr", ["env.__class__", "json_parse.__globals__", "log.__self__",
                                  "uuid4.__call__", "json_null.__class__", "json_null.x"])
def test_escape_08_host_functions_expose_no_attributes(expr: str) -> None:
    fails(f"local x = {expr} return x", error=LuaExecutionError, match="attempt to index")


def test_escape_09_host_errors_are_plain_strings() -> None:
    assert evaluate("{type(select(2, pcall(json_parse, {}))), type(select(2, pcall(env, {}))),"
                    " type(select(2, pcall(json_parse, '{'))), type(select(2, pcall(base64_decode, '!'))),"
                    " type(select(2, pcall(string.find, string.rep('a', 1e5), '(.-)(.-)(.-)%1%2%3(')))}"
                    ) == ["string"] * 5


def test_escape_10_metatables_of_sentinels_are_hidden() -> None:
    assert evaluate("{getmetatable(json_null), getmetatable(json_array({})), "
                    "getmetatable(json_object({})), getmetatable(env)}") == [False, False, False]


def test_escape_11_collectgarbage_and_os_execute() -> None:
    fails("collectgarbage('collect')", match="global 'collectgarbage'")
    fails("os.execute('echo pwned')", match="global 'os'")


def test_escape_12_require_and_package() -> None:
    fails("require('os')", match="global 'require'")
    fails("package.loaded.os.execute('id')", match="global 'package'")


def test_escape_13_debug_registry() -> None:
    fails("debug.getregistry()", match="global 'debug'")


def test_escape_14_finalizers_are_refused() -> None:
    fails("setmetatable({}, {__gc = function() while true do end end})",
          match="__gc metamethods are not allowed")
    fails("setmetatable(json_array({}), {__gc = function() end})", match="__gc")


def test_escape_15_lupa_traceback_hook_cannot_be_hijacked() -> None:
    fails("debug = {traceback = function() while true do end end} error('boom')",
          error=LuaExecutionError, match="boom")


def test_escape_16_hostile_error_objects_are_not_stringified() -> None:
    message = fails("error(setmetatable({}, {__tostring = function() while true do end end}))",
                    error=LuaExecutionError)
    assert message == "(error object is a table value)"


def test_escape_17_globals_metatable_only_affects_this_state() -> None:
    fails("setmetatable(_G, {__index = function() while true do end end}) return undefined_name",
          error=LuaLimitError)


def test_escape_18_env_reads_only_the_run_environment() -> None:
    assert evaluate("{env('SECRET'), env('HOME'), env('PATH')}") == ["s3cr3t"]


# -- CPU bombs (DSL-92) -----------------------------------------------------------------------

def test_bomb_01_infinite_loop_hits_the_instruction_budget() -> None:
    fails("while true do end", limits=LuaLimits(), deadline=None, error=LuaLimitError,
          match="Lua execution exceeded instruction budget of 5000000")


def test_bomb_02_loop_inside_pcall() -> None:
    fails("pcall(function() while true do end end) return 'escaped'", error=LuaLimitError)


def test_bomb_03_pcall_in_a_loop() -> None:
    fails("while true do pcall(function() while true do end end) end", error=LuaLimitError)


def test_bomb_04_swallowing_errors_in_a_loop() -> None:
    fails("while true do pcall(error, 'x') end", error=LuaLimitError)


def test_bomb_05_xpcall_with_a_hostile_handler() -> None:
    fails("while true do xpcall(function() while true do end end, "
          "function() while true do end end) end", error=LuaLimitError)


def test_bomb_06_to_be_closed_variable_loops() -> None:
    fails("local x <close> = setmetatable({}, {__close = function() while true do end end}) "
          "error('x')", error=LuaLimitError)


def test_bomb_07_time_budget_wording() -> None:
    fails("while true do pcall(function() while true do end end) end", limits=ONE_SECOND,
          deadline=None, error=LuaLimitError, limit=1.0,
          match="Lua execution exceeded time budget of 1s")


def test_bomb_08_infinite_tail_recursion() -> None:
    fails("local function f(n) return f(n + 1) end return f(1)", error=LuaLimitError)


def test_bomb_09_deep_recursion_overflows_the_stack() -> None:
    message = fails("local function f(n) return 1 + f(n + 1) end return f(1)",
                    error=LuaExecutionError, deadline=3.0, limit=3.0)
    assert "stack overflow" in message


@pytest.mark.parametrize("source", [
    'string.find(string.rep("a", 2000), ".-.-.-b")',
    'string.match(string.rep("a", 3000), "(.-)(.-)(.-)(.-)b")',
    'string.gsub(string.rep("a", 3000), ".-.-.-b", "x")',
    'for w in string.rep("a", 3000):gmatch(".-.-.-b") do end',
    'string.find(string.rep("a", 30), string.rep("a?", 30) .. string.rep("a", 30) .. "b")',
    'string.find(string.rep(" ", 200000), "%s+x")',
])
def test_bomb_10_pathological_patterns(source: str) -> None:
    fails(source, error=LuaLimitError)


def test_bomb_11_pathological_pattern_under_the_time_budget() -> None:
    fails('string.find(string.rep("a", 2000), ".-.-.-b")', limits=ONE_SECOND, deadline=None,
          error=LuaLimitError, limit=1.0, match="time budget of 1s")


def test_bomb_12_plain_find_with_a_long_needle() -> None:
    assert evaluate('local s = string.rep("a", 3e6) return s:find(string.rep("a", 1e6) .. "b", 1, true)'
                    ) is None


def test_bomb_13_gsub_callback_loops() -> None:
    fails('string.gsub("abc", "%w", function() while true do end end)', error=LuaLimitError)


def test_bomb_14_huge_table_move() -> None:
    fails("table.move({}, 1, math.maxinteger - 1, 2)", error=LuaLimitError)


def test_bomb_15_lying_length_for_insert_and_remove() -> None:
    fails("local t = setmetatable({}, {__len = function() return 1e15 end}) table.insert(t, 1, 'x')",
          error=LuaLimitError)
    fails("local t = setmetatable({}, {__len = function() return 1e15 end}) table.remove(t, 1)",
          error=LuaLimitError)


def test_bomb_16_long_string_comparisons() -> None:
    fails('local s = string.rep("a", 5e7) local t = s .. "" while true do local x = s < t .. "" end',
          error=LuaError, limits=LuaLimits(max_instructions=0, max_seconds=0,
                                           max_memory_bytes=1 << 30))


def test_bomb_17_sorting_long_strings_is_bounded() -> None:
    with bounded(DEADLINE + 1.0):
        try:
            evaluate('local s = string.rep("a", 1e6) local t = {} for i = 1, 3000 do t[i] = s end '
                     'table.sort(t) return #t')
        except LuaLimitError:
            pass


def test_bomb_18_repeated_large_string_work() -> None:
    fails('while true do local s = string.rep("x", 1e7) end', error=LuaLimitError)
    fails('local s = string.rep("x", 1e7) while true do local u = s:upper() end', error=LuaError)


def test_bomb_19_json_bombs() -> None:
    fails("json_parse(string.rep('[', 100000) .. string.rep(']', 100000))",
          match="json_parse failed")
    fails("json_parse('[' .. string.rep('1,', 2e6) .. '1]')", match="IRONFLOW_MAX_CONVERSION_NODES")
    fails("local t = {} for i = 1, 2e5 do t[i] = i end return json_stringify(t)",
          match="maximum node count 100000")


# -- memory bombs ---------------------------------------------------------------------------------

def test_bomb_20_string_rep_huge() -> None:
    fails('string.rep("x", 1e9)', error=LuaExecutionError, match="not enough memory")
    fails('string.rep("x", 1e10)', error=LuaExecutionError, match="resulting string too large")


def test_bomb_21_table_growth() -> None:
    fails("local t = {} local i = 0 while true do i = i + 1 t[i] = {i, i, i} end",
          error=LuaExecutionError, limit=3.0)


def test_bomb_22_string_doubling() -> None:
    # The memory limit must stop it, within the usual CPU bound; the deadline
    # only guards against a hang, since copying ~128 MB under load can take
    # longer than the sub-second deadline in wall time.
    fails('local s = "x" while true do s = s .. s end', error=LuaExecutionError,
          match="not enough memory", deadline=10.0)


def test_bomb_23_memory_error_inside_pcall_is_survivable() -> None:
    assert evaluate('local ok, e = pcall(string.rep, "x", 1e9) return {ok, e}') == [
        False, "not enough memory"]


def test_bomb_24_memory_limit_from_the_environment() -> None:
    limits = LuaLimits.from_env({"IRONFLOW_LUA_MAX_MEMORY_BYTES": str(8 << 20)})
    fails('local s = string.rep("x", 16 * 1024 * 1024)', limits=limits, match="not enough memory")
    assert evaluate('#string.rep("x", 2 * 1024 * 1024)', limits=limits) == 2 << 20


def test_bomb_25_big_context_respects_the_memory_limit() -> None:
    limits = LuaLimits.from_env({"IRONFLOW_LUA_MAX_MEMORY_BYTES": str(4 << 20)})
    big = {"blob": "x" * (6 << 20)}
    fails("#ctx.blob .. string.rep('y', 10)", limits=limits, ctx=big, match="not enough memory")


# -- the loader runs under the same limits --------------------------------------------------------

def _registry() -> Registry:
    plugin = types.SimpleNamespace(ironflow_register_nodes=hookimpl(lambda: list(CODE_NODES)))
    return make_registry(("core.lua", lua_plugin), ("code", plugin), builtins=False)


@pytest.mark.parametrize("source", [
    "while true do end",
    "pcall(function() while true do end end) return Flow.new('x')",
    "string.find(string.rep('a', 2000), '.-.-.-b')",
    "local s = 'x' while true do s = s .. s end",
])
def test_bomb_26_loader_bombs_fail_the_load_only(source: str) -> None:
    env = {"IRONFLOW_LUA_MAX_SECONDS": "1"}
    with bounded(2.0), pytest.raises(FlowLoadError, match="Failed to evaluate flow source"):
        load_flow(FlowSource(source), registry=_registry(), env=env)


# -- the code node in a worker thread (PY-1) ---------------------------------------------------------

def _services(limits: LuaLimits = NO_BUDGETS) -> RunServices:
    return node_context(registry=_registry(), lua_limits=limits).services


async def test_py_1_trio_cancellation_stops_lua_and_waits_for_the_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The promise: the job's own thread is done with its Lua state (closed)
    # before Cancelled propagates. The cancel comes once that thread runs Lua,
    # whatever the load; trio's idle worker threads do not matter.
    from ironflow_core.lua import runtime

    opened: list[tuple[str, Any]] = []
    in_thread = trio.Event()

    class Tracked(runtime.LuaExecution):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.closed_by: str | None = None
            name = threading.current_thread().name
            opened.append((name, self))
            if name.startswith("ironflow-lua"):
                trio.from_thread.run_sync(in_thread.set)

        def close(self, *args: Any, **kwargs: Any) -> Any:
            result = super().close(*args, **kwargs)
            self.closed_by = threading.current_thread().name
            return result

    monkeypatch.setattr(runtime, "LuaExecution", Tracked)
    ctx = NodeContext({}, step_name="spin", node_type="code", services=_services())
    scope = trio.CancelScope()

    async def spin() -> None:
        with scope:
            await run_code(ctx, CodeConfig(source="while true do end"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(spin)
        await in_thread.wait()
        scope.cancel()
    assert scope.cancelled_caught
    threaded = [(name, box) for name, box in opened if name.startswith("ironflow-lua")]
    assert len(threaded) == 1
    name, box = threaded[0]
    assert box.closed_by == name


async def test_py_1_run_cancellation_flag_stops_lua() -> None:
    services = _services()
    ctx = NodeContext({}, step_name="spin", node_type="code", services=services)

    async def cancel_soon() -> None:
        await trio.sleep(0.2)
        services.cancelled.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancel_soon)
        with pytest.raises(NodeError, match="Lua execution was cancelled"):
            await run_code(ctx, CodeConfig(source="while true do pcall(function() while true do end end) end"))


async def test_dsl_92_time_budget_in_a_code_step() -> None:
    ctx = NodeContext({}, step_name="spin", node_type="code", services=_services(ONE_SECOND))
    with bounded(2.0), pytest.raises(
            NodeError, match="Code execution failed: Lua execution exceeded time budget of 1s"):
        await run_code(ctx, CodeConfig(source="string.find(string.rep('a', 2000), '.-.-.-b')"))


async def test_many_sandboxes_in_parallel_stay_isolated() -> None:
    results: list[dict[str, Any]] = []

    async def one(i: int) -> None:
        ctx = NodeContext({"i": i}, step_name=f"s{i}", node_type="code", services=_services())
        results.append(await run_code(ctx, CodeConfig(
            source="leak = (leak or 0) + 1 string.upper = nil return {i = ctx.i, leak = leak}")))

    async with trio.open_nursery() as nursery:
        for i in range(8):
            nursery.start_soon(one, i)
    assert sorted(r["i"] for r in results) == list(range(8))
    assert {r["leak"] for r in results} == {1}


def test_dsl_92_limits_read_from_the_environment() -> None:
    limits = LuaLimits.from_env({
        "IRONFLOW_LUA_MAX_INSTRUCTIONS": "1000", "IRONFLOW_LUA_MAX_SECONDS": "x",
        "IRONFLOW_LUA_MAX_MEMORY_BYTES": "0", "IRONFLOW_LUA_HOOK_INTERVAL": "100",
        "IRONFLOW_LUA_GC_AFTER_EXECUTION": "false",
    })
    assert (limits.max_instructions, limits.max_seconds, limits.max_memory_bytes,
            limits.hook_interval, limits.gc_after_execution) == (1000, 10, 0, 100, False)
    fails("local n = 0 for i = 1, 1e6 do n = n + i end", limits=limits, deadline=None,
          error=LuaLimitError, match="instruction budget of 1000")
    assert evaluate("#string.rep('x', 1000)", limits=limits, deadline=None) == 1000
