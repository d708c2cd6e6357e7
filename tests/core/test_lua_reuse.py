"""Reused Lua states and inline slices (CD-2, FE-1, DSL-90..92, PY-1).

A runtime Lua state may serve several executions in turn, but every execution
must see a brand-new environment: nothing one execution does is visible to the
next one, and every limit starts from zero. Short work runs inline on the trio
thread as a slice; work that outgrows the slice is discarded without a trace
and runs again in a worker thread under the full limits.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import trio

from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.lua import runtime
from ironflow_core.lua import state as state_module
from ironflow_core.lua.errors import LuaLimitError
from ironflow_core.lua.runtime import LuaExecution, run_in_sandbox
from ironflow_core.lua.state import LuaState
from ironflow_core.nodes.code import CodeConfig, run_code
from ironflow_core.services import RunServices
from ironflow_core.settings import LuaLimits
from ironflow_core.testing import arun_flow, node_context
from tests.core.timing import bounded

LIMITS = LuaLimits(max_instructions=0, max_seconds=0)


def execute(source: str, *, limits: LuaLimits = LIMITS, inline: bool = False,
            ctx: Any = None) -> tuple[Any, LuaState]:
    """Run a code source in one execution; its converted result and the state it ran in."""
    sandbox = LuaExecution(limits, env={}, inline=inline)
    vm = sandbox.vm
    try:
        if ctx is not None:
            sandbox.set_global("ctx", sandbox.to_lua(ctx))
        return sandbox.from_lua(sandbox.call(sandbox.compile_source(source))), vm
    finally:
        sandbox.close()


def in_turn(first: str, second: str, **kwargs: Any) -> Any:
    """Run ``first`` then ``second``, asserting they shared one Lua state; ``second``'s result."""
    _, vm1 = execute(first, **kwargs)
    result, vm2 = execute(second, **kwargs)
    assert vm1 is vm2, "the state was not reused"
    return result


def services(limits: LuaLimits = LIMITS, env: dict[str, str] | None = None) -> RunServices:
    return node_context(env=env, lua_limits=limits).services


def code_ctx(svc: RunServices, data: dict[str, Any] | None = None,
             name: str = "s") -> NodeContext:
    return NodeContext(data or {}, step_name=name, node_type="code", services=svc)


# -- CD-2: a fresh environment per execution, in a reused state ------------------------------

def test_cd_2_globals_do_not_survive_an_execution() -> None:
    assert in_turn("leak = 1 function helper() end", "{type(leak), type(helper)}") == [
        "nil", "nil"]


def test_cd_2_library_tables_are_copies_per_execution() -> None:
    first = ("string.foo = 1 math.pi = 3 table.insert = nil utf8.char = nil "
             "string.upper = function() return 'pwned' end math.floor = nil")
    assert in_turn(first, "{string.foo == nil, math.pi > 3.14, type(table.insert), "
                          "type(utf8.char), ('a'):upper(), math.floor(2.5)}") == [
        True, True, "function", "function", "A", 2]


def test_cd_2_string_metatable_stand_in_is_fresh() -> None:
    first = ("local mt = getmetatable('') rawset(mt, 'x', 1) rawset(mt, '__index', {}) "
             "getmetatable('').__index.upper = nil")
    assert in_turn(first, "{getmetatable('').x == nil, getmetatable('').__index == string, "
                          "('b'):upper(), (pcall(function() getmetatable('').y = 1 end))}") == [
        True, True, "B", False]


def test_cd_2_globals_metatable_rawset_and_env_tricks() -> None:
    first = ("setmetatable(_G, {__index = function() return 42 end, "
             "__newindex = function() end}) rawset(_G, 'os', {execute = print}) "
             "_ENV.via_env = 1 local _ENV = {leak = true}")
    assert in_turn(first, "{type(undefined_name), type(os), type(via_env), "
                          "getmetatable(_G) == nil, _G == _ENV}") == [
        "nil", "nil", "nil", True, True]


def test_cd_2_json_null_and_array_markers_cannot_be_tampered_with() -> None:
    first = ("pcall(function() json_null.x = 1 end) pcall(setmetatable, json_null, {}) "
             "local a = json_array({}) pcall(setmetatable, a, {}) "
             "pcall(function() getmetatable(a).__index = 1 end) json_array = nil json_null = nil")
    assert in_turn(first, "{json_stringify({a = json_null, b = json_array({}), "
                          "c = json_parse('[]')}), type(json_null), tostring(json_null), "
                          "getmetatable(json_null)}") == [
        '{"a":null,"b":[],"c":[]}', "userdata", "null", False]


def test_cd_2_random_sequence_is_not_inherited() -> None:
    seeded = "math.randomseed(42) return {math.random(1, 1 << 40), math.random(1, 1 << 40)}"
    expected, _ = execute(seeded)
    assert in_turn("math.randomseed(42)",
                   "{math.random(1, 1 << 40), math.random(1, 1 << 40)}") != expected


async def test_cd_2_function_handlers_start_from_scratch() -> None:
    flow = """
        local flow = Flow.new("reuse")
        flow:step("a", function(ctx)
          calls = (calls or 0) + 1
          string.counted = (string.counted or 0) + 1
          return { calls = calls, counted = string.counted }
        end)
        flow:step("b", function(ctx)
          calls = (calls or 0) + 1
          string.counted = (string.counted or 0) + 1
          return { again = calls, recounted = string.counted }
        end):depends_on("a")
        return flow
    """
    result = await arun_flow(flow, env={})
    result.assert_succeeded()
    assert (result.ctx["calls"], result.ctx["counted"], result.ctx["again"],
            result.ctx["recounted"]) == (1, 1, 1, 1)


async def test_fe_1_one_environment_per_loop_not_per_item() -> None:
    flow = """
        local flow = Flow.new("fe")
        for _, name in ipairs({"x", "y"}) do
          flow:step(name, nodes.foreach({ source_key = "items", output_key = name,
            transform = function(item) seen = (seen or 0) + 1 return seen end }))
        end
        return flow
    """
    result = await arun_flow(flow, context={"items": [1, 2, 3]}, env={})
    result.assert_succeeded()
    assert result.ctx["x"] == [1, 2, 3] and result.ctx["y"] == [1, 2, 3]


# -- DSL-92: limits start from zero in every execution -----------------------------------------

def test_dsl_92_instruction_budget_resets_per_execution() -> None:
    limits = LuaLimits(max_instructions=300_000, max_seconds=0, hook_interval=1000)
    loop = "local n = 0 for i = 1, 60000 do n = n + i end return n"  # ~240k instructions
    assert in_turn(loop, loop, limits=limits) == 1_800_030_000
    with pytest.raises(LuaLimitError, match="instruction budget of 300000"):
        execute("while true do end", limits=limits)


def test_dsl_92_memory_is_released_between_executions() -> None:
    limits = LuaLimits(max_instructions=0, max_seconds=0, max_memory_bytes=8 << 20)
    big = "local s = string.rep('x', 3 * 1024 * 1024) return #s"  # 6 MiB at its peak
    assert in_turn(big, big, limits=limits) == 3 << 20


def test_dsl_92_time_budget_and_counters_restart() -> None:
    _, vm = execute("local n = 0 for i = 1, 50000 do n = n + i end")
    before = vm.state.started
    _, again = execute("return 1")
    assert again is vm and vm.state.started > before and vm.state.instructions < 50000


def test_a_state_that_tripped_a_limit_is_discarded() -> None:
    limits = LuaLimits(max_instructions=100_000, max_seconds=0)
    _, vm = execute("return 1", limits=limits)
    with pytest.raises(LuaLimitError):
        execute("while true do end", limits=limits)
    _, after = execute("return 1", limits=limits)
    assert after is not vm


def test_a_state_that_ran_out_of_memory_is_discarded() -> None:
    limits = LuaLimits(max_instructions=0, max_seconds=0, max_memory_bytes=8 << 20)
    _, vm = execute("return 1", limits=limits)
    with pytest.raises(Exception, match="not enough memory"):
        execute("return string.rep('x', 64 * 1024 * 1024)", limits=limits)
    _, after = execute("return 1", limits=limits)
    assert after is not vm


def test_a_state_left_holding_memory_is_discarded() -> None:
    limits = LuaLimits(max_instructions=0, max_seconds=0, gc_after_execution=False)
    _, vm = execute("return 1", limits=limits)
    _, same = execute("local s = string.rep('x', 4 << 20) return #s", limits=limits)
    _, after = execute("return 1", limits=limits)
    assert same is vm and after is not vm


def test_empty_string_rep_does_not_spin() -> None:
    with bounded(1.0):
        assert execute("{string.rep('', 1e13), string.rep('', 1e13, ''), "
                       "string.rep('ab', 2, ''), string.rep('', 3, '-')}")[0] == [
            "", "", "abab", "--"]


# -- inline slices and the fallback to a thread ------------------------------------------------

class Recorder:
    """A repeatable ``work``: runs ``source`` and records each attempt's thread and mode."""

    def __init__(self, source: str, ctx: Any = None) -> None:
        self.source = source
        self.ctx = ctx
        self.attempts: list[tuple[int, bool]] = []

    def __call__(self, sandbox: LuaExecution) -> Any:
        self.attempts.append((threading.get_ident(), sandbox.vm.state.slicing))
        if self.ctx is not None:
            sandbox.set_global("ctx", sandbox.to_lua(self.ctx))
        return sandbox.from_lua(sandbox.call(sandbox.compile_source(self.source)))


async def test_short_work_runs_inline_on_the_trio_thread() -> None:
    work = Recorder("return 1 + 1")
    assert await run_in_sandbox(services(), work, label="t") == 2
    assert work.attempts == [(threading.get_ident(), True)]


LONG_LOOP = "local n = 0 for i = 1, 3e6 do n = n + 1 end return n"


async def test_slice_fallback_reruns_in_a_thread_and_logs_once(caplog: Any, capfd: Any) -> None:
    caplog.set_level(logging.INFO, logger="ironflow.lua")
    work = Recorder("log('before the loop') print('printed', 1, nil, true) " + LONG_LOOP)
    assert await run_in_sandbox(services(), work, label="t") == 3_000_000
    assert [mode for _, mode in work.attempts] == [True, False]
    assert work.attempts[0][0] == threading.get_ident() != work.attempts[1][0]
    assert [r.getMessage() for r in caplog.records] == [
        "<lua> before the loop", "<lua> printed\t1\tnil\ttrue"]
    ctypes.CDLL(None).fflush(None)
    assert capfd.readouterr().out == ""


async def test_inline_output_is_emitted_once_in_order(caplog: Any, capfd: Any) -> None:
    caplog.set_level(logging.INFO, logger="ironflow.lua")
    work = Recorder("log('one') print('two') log('warn', {a = 1}) print() return 0")
    assert await run_in_sandbox(services(), work, label="t") == 0
    assert [mode for _, mode in work.attempts] == [True]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "<lua> one"), ("INFO", "<lua> two"), ("WARNING", '<lua> {"a":1}'),
        ("INFO", "<lua> ")]
    ctypes.CDLL(None).fflush(None)
    assert capfd.readouterr().out == ""


async def test_inline_failure_still_emits_its_output(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="ironflow.lua")
    ctx = code_ctx(services())
    with pytest.raises(NodeError, match=r"Code execution failed: .*boom"):
        await run_code(ctx, CodeConfig(source="log('about to fail') error('boom')"))
    assert [r.getMessage() for r in caplog.records] == ["<lua> about to fail"]


async def test_fallback_obeys_the_full_limits() -> None:
    limits = LuaLimits(max_instructions=1_000_000, max_seconds=0)
    ctx = code_ctx(services(limits))
    with pytest.raises(NodeError, match=r"exceeded instruction budget of 1000000$"):
        await run_code(ctx, CodeConfig(source="while true do end"))


class FinishRecorder(Recorder):
    """Also records each attempt's end, and says when the threaded attempt has begun."""

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self.finished: list[int] = []
        self.in_thread = trio.Event()

    def __call__(self, sandbox: LuaExecution) -> Any:
        if not sandbox.vm.state.slicing:
            trio.from_thread.run_sync(self.in_thread.set)
        try:
            return super().__call__(sandbox)
        finally:
            self.finished.append(threading.get_ident())


async def test_fallback_obeys_cancellation_and_waits_for_the_thread() -> None:
    # What run_in_sandbox promises: once its job's thread runs the work, that
    # thread has finished it before Cancelled propagates. Cancelling only after
    # the thread began makes the test independent of machine load; trio's idle
    # worker threads (renamed after a job returns) are not part of the promise.
    work = FinishRecorder("while true do end")
    scope = trio.CancelScope()

    async def spin() -> None:
        with scope:
            await run_in_sandbox(services(), work, label="spin")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(spin)
        await work.in_thread.wait()
        scope.cancel()
    assert scope.cancelled_caught
    assert [mode for _, mode in work.attempts] == [True, False]
    job_thread = work.attempts[1][0]
    assert job_thread != threading.get_ident()
    assert work.finished == [threading.get_ident(), job_thread]


async def test_work_that_outgrew_a_slice_goes_straight_to_a_thread() -> None:
    first, second = Recorder(LONG_LOOP), Recorder(LONG_LOOP)
    key = ("test", time.monotonic())
    await run_in_sandbox(services(), first, label="t", key=key)
    await run_in_sandbox(services(), second, label="t", key=key)
    assert [mode for _, mode in first.attempts] == [True, False]
    assert [mode for _, mode in second.attempts] == [False]


async def test_a_slice_that_ends_while_the_environment_is_built_is_redone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Under load the 1 ms slice can pass before the state's fresh environment is
    # built (``LuaState.renew``): the slice trip must not fire during that setup,
    # where it escaped ``run_in_sandbox`` as "outgrew its inline slice".
    monkeypatch.setattr(state_module, "SLICE_SECONDS", 0.0)
    monkeypatch.setattr(state_module, "SLICE_INTERVAL", 8)
    runtime.POOL.clear()
    svc = services()
    for i in range(3):  # a new state, then reused ones
        source = f"return {{v = ctx.n, w = {i}, setup_slice = true}}"  # not yet known as long
        out = await run_code(code_ctx(svc, {"n": i}), CodeConfig(source=source))
        assert out == {"v": i, "w": i, "setup_slice": True}
    work = Recorder("return 1 + 1")
    assert await run_in_sandbox(svc, work, label="t") == 2
    assert [mode for _, mode in work.attempts] == [True, False]


HEAVY = {
    "loop": "local n = 0 for i = 1, 2e7 do n = n + 1 end return n > 0",
    "string_rep": "return #string.rep('ab', 2e7) > 0",
    "doubling": "local s = 'x' for i = 1, 26 do s = s .. s end return #s > 0",
    "upper": "local s = string.rep('a', 2e6) for i = 1, 50 do s = s:upper():lower() end "
             "return #s > 0",
    "pattern": "local s = string.rep('a', 2e6) return select(2, s:gsub('a', 'b')) > 0",
    "concat": "local t = {} for i = 1, 3e5 do t[i] = 'xy' end "
              "for i = 1, 40 do table.concat(t) end return true",
    "pcall_loop": "while not pcall(function() local n = 0 for i = 1, 2e7 do n = n + 1 end "
                  "error('x') end) do return true end",
    "big_ctx": "return #ctx.items > 0",
}


class HandoffRecorder(Recorder):
    """Starts the threaded attempt only once the trio thread has run again.

    A trio thread that waited for the worker (instead of awaiting it) would
    never tick, so the attempt gives up after a hang guard and says so.
    """

    def __init__(self, source: str, ctx: Any = None) -> None:
        super().__init__(source, ctx)
        self.threaded = threading.Event()
        self.ticked = threading.Event()
        self.trio_ran_meanwhile: list[bool] = []

    def __call__(self, sandbox: LuaExecution) -> Any:
        if not sandbox.vm.state.slicing:
            self.threaded.set()
            self.trio_ran_meanwhile.append(self.ticked.wait(10.0))
        return super().__call__(sandbox)


@pytest.mark.parametrize("name", sorted(HEAVY))
async def test_the_trio_thread_is_never_held_beyond_the_slice(name: str) -> None:
    # What the slice promises is about the trio thread's own work: it runs Lua
    # for at most a slice, then hands off. So each gap between ticks is measured
    # in the trio thread's CPU time, which a loaded machine does not stretch
    # (wall-clock gaps also hold the time the OS ran other processes). That the
    # trio thread is not blocked waiting for the worker is shown by the handoff.
    ctx = {"items": list(range(90_000))} if name == "big_ctx" else None
    work = HandoffRecorder(HEAVY[name], ctx=ctx)
    svc = services()
    cpu_gaps: list[float] = []
    done = trio.Event()

    async def ticker() -> None:
        last = time.thread_time()
        while not done.is_set():
            await trio.sleep(0.0005)
            now = time.thread_time()
            cpu_gaps.append(now - last)
            last = now
            if work.threaded.is_set():
                work.ticked.set()

    async def step() -> None:
        try:
            assert await run_in_sandbox(svc, work, label=name) is True
        finally:
            done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        await trio.sleep(0.002)
        nursery.start_soon(step)
    assert [mode for _, mode in work.attempts] == [True, False], "expected a fallback"
    assert work.trio_ran_meanwhile == [True], "the trio thread waited for the worker thread"
    # The slice is 1 ms; the bound leaves room for trio's own bookkeeping.
    assert max(cpu_gaps) < 0.05, f"trio thread busy for {max(cpu_gaps) * 1000:.1f} ms of CPU"


async def test_many_concurrent_steps_share_few_states() -> None:
    created: list[LuaState] = []
    original: Callable[..., LuaState] = runtime.POOL.acquire

    def acquire(limits: LuaLimits) -> LuaState:
        vm = original(limits)
        if vm.uses == 0:
            created.append(vm)
        return vm

    runtime.POOL.acquire = acquire  # type: ignore[method-assign]
    try:
        svc = services()
        results: list[Any] = []

        async def one(i: int) -> None:
            results.append(await run_code(code_ctx(svc, {"i": i}, f"s{i}"), CodeConfig(
                source="leak = (leak or 0) + 1 return {i = ctx.i, leak = leak}")))

        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(one, i)
    finally:
        del runtime.POOL.acquire
    assert sorted(r["i"] for r in results) == list(range(50))
    assert {r["leak"] for r in results} == {1}
    assert len(created) <= 1
