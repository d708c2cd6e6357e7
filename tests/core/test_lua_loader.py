"""The Lua flow loader: semantics.md#flow-files to #lua-globals, semantics.md#validation-warnings and the loader bullets of semantics.md#acceptance."""

from __future__ import annotations

import json
import os
import re
import types
from pathlib import Path
from typing import Any

import attrs
import pytest

import ironflow_core.lua.plugin as lua_plugin
from ironflow_core import hookimpl
from ironflow_core.context import NodeContext
from ironflow_core.engine import plan_flow
from ironflow_core.errors import FlowLoadError, FlowValidationError, NodeError
from ironflow_core.loading import load_flow, read_flow_source
from ironflow_core.lua import functions
from ironflow_core.lua.state import LimitState
from ironflow_core.model import FlowDefinition
from ironflow_core.nodes.code import NODES as CODE_NODES
from ironflow_core.nodes.code import CodeConfig, run_code
from ironflow_core.registry import Registry, build_registry
from ironflow_core.settings import LuaLimits
from ironflow_core.specs import FlowSource, NodeSpec
from ironflow_core.testing import node_context


@attrs.frozen
class FetchConfig:
    url: str
    timeout: float = 30.0
    retries: int = 0
    verbose: bool = False


async def _noop(ctx: Any, config: Any) -> dict[str, Any]:
    return {}


def _test_nodes() -> list[NodeSpec]:
    plain = [NodeSpec(name=name, run=_noop) for name in ("log", "if_node", "foreach", "delay")]
    return [*plain, NodeSpec(name="fetch", run=_noop, config=FetchConfig), *CODE_NODES]


_plugin = types.SimpleNamespace(ironflow_register_nodes=hookimpl(_test_nodes))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return build_registry(
        {}, builtins=False, entry_points=False,
        extra=[("core.lua", lua_plugin), ("test-nodes", _plugin)],
    )


def load(registry: Registry, source: str, *, env: dict[str, str] | None = None,
         analyze: bool = False) -> FlowDefinition:
    return load_flow(FlowSource(source), registry=registry, env=env or {}, analyze=analyze)


def load_error(registry: Registry, source: str, **kwargs: Any) -> FlowLoadError:
    with pytest.raises(FlowLoadError) as info:
        load(registry, source, **kwargs)
    return info.value


def flow_error(registry: Registry, source: str, **kwargs: Any) -> FlowValidationError:
    """What planning the loaded flow reports (the loader itself checks no names or configs)."""
    definition = load(registry, source, **kwargs)
    with pytest.raises(FlowValidationError) as info:
        plan_flow(definition, registry)
    return info.value


def flow_of(*lines: str) -> str:
    return "\n".join(["local flow = Flow.new('t')", *lines, "return flow"])


def services(registry: Registry, **limits: Any) -> Any:
    return node_context(registry=registry, lua_limits=LuaLimits(**limits)).services


async def run_step(registry: Registry, definition: FlowDefinition, name: str,
                   data: dict[str, Any] | None = None) -> dict[str, Any]:
    step = definition.step(name)
    assert step is not None
    ctx = NodeContext(data or {}, step_name=name, node_type="code",
                      services=services(registry), raw_config=step.config)
    return await run_code(ctx, plan_flow(definition, registry).configs[definition.steps.index(step)])


# -- semantics.md#flow-files: file contract ----------------------------------------------------------

def test_dsl_2_missing_return_fails(registry: Registry) -> None:
    error = load_error(registry, "local flow = Flow.new('x')")
    assert str(error).startswith("Failed to evaluate flow source: ")
    assert "must return the flow" in str(error)


def test_dsl_2_non_table_return_fails(registry: Registry) -> None:
    assert "returned a string value" in str(load_error(registry, "return 'flow'"))


def test_dsl_2_file_errors_name_the_file(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "broken.lua"
    path.write_text("local flow = Flow.new('x')\nflow:step('a', nodes.log{}\nreturn flow\n")
    with pytest.raises(FlowLoadError) as info:
        load_flow(path, registry=registry, env={})
    message = str(info.value)
    assert message.startswith(f"Failed to evaluate flow file '{path}': ")
    assert info.value.path == str(path)
    assert info.value.line == 3
    assert re.search(r"broken\.lua:3: ", message)


def test_dsl_2_invalid_syntax_fails(registry: Registry) -> None:
    error = load_error(registry, "local flow = Flow.new('x'\nreturn flow")
    assert "<inline>:2:" in str(error) and error.line == 2


def test_dsl_2_only_the_returned_flow_counts(registry: Registry) -> None:
    definition = load(registry, "local other = Flow.new('other')\nother:step('x', nodes.log{})\n"
                                "local flow = Flow.new('main')\nflow:step('y', nodes.log{})\n"
                                "return flow")
    assert definition.name == "main" and [s.name for s in definition.steps] == ["y"]


def test_dsl_3_flow_table_is_read_by_fields(registry: Registry) -> None:
    source = """
    local real = Flow.new('real')
    real:step('a', nodes.log{message = 'x'})
    return { _name = 'copy', _steps = real._steps, _step_count = 1 }
    """
    definition = load(registry, source)
    assert definition.name == "copy" and definition.steps[0].name == "a"


def test_dsl_3_declaration_order_is_preserved(registry: Registry) -> None:
    names = [f"s{i:02d}" for i in range(30)]
    lines = [f"flow:step('{n}', nodes.log{{}})" for n in reversed(names)]
    definition = load(registry, flow_of(*lines))
    assert [s.name for s in definition.steps] == list(reversed(names))


def test_dsl_3_step_count_limits_what_is_read(registry: Registry) -> None:
    source = flow_of("flow:step('a', nodes.log{})", "flow:step('b', nodes.log{})",
                     "flow._step_count = 1")
    assert [s.name for s in load(registry, source).steps] == ["a"]


def test_dsl_5_top_level_code_runs_at_load_with_env(registry: Registry) -> None:
    definition = load(registry, flow_of("flow:step(env('STEP_NAME'), nodes.log{})"),
                      env={"STEP_NAME": "from_env"})
    assert definition.steps[0].name == "from_env"


def test_dsl_5_runaway_top_level_loop_is_bounded(registry: Registry) -> None:
    error = load_error(registry, "while true do end")
    assert "Lua execution exceeded instruction budget of 5000000" in str(error)
    error = load_error(registry, "while true do end",
                       env={"IRONFLOW_LUA_MAX_INSTRUCTIONS": "0", "IRONFLOW_LUA_MAX_SECONDS": "1"})
    assert "Lua execution exceeded time budget of 1s" in str(error)


@pytest.mark.parametrize("returned", [
    # the flow table itself, a step table, and the length of a dependency list
    "setmetatable({}, { __index = function() while true do end end })",
    "(function() local f = Flow.new('t'); f:step('a', nodes.log{}); "
    "setmetatable(f._steps[1], { __index = function() while true do end end }); "
    "f._steps[1].max_retries = nil; return f end)()",
    "(function() local f = Flow.new('t'); f:step('a', nodes.log{}); "
    "f._steps[1].dependencies = setmetatable({}, { __len = function() while true do end end }); "
    "return f end)()",
])
def test_dsl_92_reading_the_flow_is_under_the_instruction_budget(
    registry: Registry, returned: str
) -> None:
    """Metamethods that run while the flow is extracted count against the same budget."""
    env = {"IRONFLOW_LUA_MAX_INSTRUCTIONS": "200000", "IRONFLOW_LUA_MAX_SECONDS": "0"}
    error = load_error(registry, f"return {returned}", env=env)
    assert "Lua execution exceeded instruction budget of 200000" in str(error)


def test_dsl_92_extraction_work_is_not_charged_to_the_flow(registry: Registry) -> None:
    """The loader's own reading of 3,000 plain steps fits a budget the flow file fits."""
    source = flow_of("for i = 1, 3000 do flow:step('s' .. i, nodes.log{ message = 'm' }) end")
    env = {"IRONFLOW_LUA_MAX_INSTRUCTIONS": "1000000", "IRONFLOW_LUA_MAX_SECONDS": "0"}
    assert len(load(registry, source, env=env).steps) == 3000
    metamethod = flow_of(
        "for i = 1, 3000 do flow:step('s' .. i, nodes.log{ message = 'm' }) end",
        "setmetatable(flow, { __index = function(t, k) return nil end })",
    )
    assert len(load(registry, metamethod, env=env).steps) == 3000


@pytest.mark.parametrize("body", [
    # many steps (polled every 256 steps), and one step with a large config (every 1,024 values)
    "for i = 1, 2000 do flow:step('s' .. i, nodes.log{ message = 'm' }) end",
    "local items = {} for i = 1, 5000 do items[i] = i end "
    "flow:step('big', nodes.log{ message = 'm', items = items })",
])
def test_dsl_92_extraction_runs_without_the_hook_but_still_stops(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    """Trusted extraction polls cancellation and the clock itself: a flag set once it starts stops it."""

    class StartsWithExtraction:
        armed = False

        def is_set(self) -> bool:
            return self.armed

    flag = StartsWithExtraction()
    on_mode = LimitState.on_mode

    def arm_on_trusted(self: LimitState, user: bool) -> int:
        if not user:
            flag.armed = True
        return on_mode(self, user)

    monkeypatch.setattr(LimitState, "on_mode", arm_on_trusted)
    with pytest.raises(FlowLoadError, match="Lua execution was cancelled"):
        load_flow(FlowSource(flow_of(body)), registry=registry, env={}, cancel=(flag,))
    monkeypatch.setattr(LimitState, "on_mode", on_mode)
    assert load_flow(FlowSource(flow_of(body)), registry=registry, env={}).steps


# -- semantics.md#steps: Flow.new and flow:step -----------------------------------------------

def test_dsl_10_flow_name_number_is_coerced(registry: Registry) -> None:
    assert load(registry, "return Flow.new(42)").name == "42"
    assert "string expected, got table" in str(load_error(registry, "return Flow.new({})"))


def test_dsl_10_flow_table_fields(registry: Registry) -> None:
    source = """
    local flow = Flow.new('f')
    assert(flow._name == 'f' and flow._step_count == 0 and #flow._steps == 0)
    assert(type(flow.step) == 'function' and type(flow.step_if) == 'function')
    flow:step('a', nodes.log{})
    assert(flow._step_count == 1 and flow._steps[1].name == 'a')
    return flow
    """
    assert load(registry, source).name == "f"


def test_dsl_20_bad_handler(registry: Registry) -> None:
    error = load_error(registry, flow_of("flow:step('a', 42)"))
    assert "step() expects a node config table or a function" in str(error)


def test_dsl_21_plain_table_needs_node_type(registry: Registry) -> None:
    error = load_error(registry, flow_of("flow:step('a', {message = 'x'})"))
    assert "_node_type" in str(error)


def test_dsl_22_function_handler_becomes_code(registry: Registry) -> None:
    step = load(registry, flow_of("flow:step('a', function(ctx) return {} end)")).steps[0]
    assert step.node_type == "code"
    assert set(step.config) == {"bytecode_b64", "_step_name"}
    assert functions.verify(step.config["bytecode_b64"])[:4] == b"\x1bLua"
    assert isinstance(plan_flow(FlowDefinition("t", (step,)), registry).configs[0], CodeConfig)


def test_dsl_23_defaults(registry: Registry) -> None:
    step = load(registry, flow_of("flow:step('a', nodes.log{})")).steps[0]
    assert (step.dependencies, step.max_retries, step.backoff_s, step.timeout_s, step.route,
            step.on_error) == ((), 0, 1.0, None, None, None)


def test_dsl_24_step_appended_even_if_builder_discarded(registry: Registry) -> None:
    definition = load(registry, flow_of("local _ = flow:step('a', nodes.log{})",
                                        "flow:step('b', nodes.log{})"))
    assert [s.name for s in definition.steps] == ["a", "b"]


def test_dsl_25_names_are_arbitrary_strings(registry: Registry) -> None:
    definition = load(registry, flow_of("flow:step('with space/é.\"q\"', nodes.log{})"))
    assert definition.steps[0].name == 'with space/é."q"'


def test_dsl_25_duplicate_names_are_a_planning_error(registry: Registry) -> None:
    error = flow_error(registry, flow_of("flow:step('a', nodes.log{})", "flow:step('a', nodes.log{})"))
    assert "Duplicate step name 'a' in flow 't'. Each step must have a unique name." in str(error)
    assert error.step == "a"


def test_dsl_26_step_name_inserted_and_node_type_removed(registry: Registry) -> None:
    step = load(registry, flow_of("flow:step('real', nodes.log{_step_name = 'fake', message = 'm'})")).steps[0]
    assert step.config == {"message": "m", "_step_name": "real"}


def test_dsl_26_config_conversion_errors_are_rooted_at_the_step(registry: Registry) -> None:
    error = load_error(registry, flow_of("flow:step('bad', nodes.log{items = {1, 2, x = 3}})"))
    assert "mixed Lua table" in str(error)
    assert '$.steps["bad"].config.items' in str(error)


# -- semantics.md#builders: builders ------------------------------------------------------------------------

def test_dsl_30_to_34_builder_values_read_back_exactly(registry: Registry) -> None:
    source = flow_of(
        "flow:step('a', nodes.log{})",
        "flow:step('h', nodes.log{})",
        "flow:step('b', nodes.log{}):depends_on('a'):retries(2, 0.5):timeout(10):route('yes'):on_error('h')",
    )
    step = load(registry, source).step("b")
    assert step is not None
    assert step.dependencies == ("a",)
    assert (step.max_retries, step.backoff_s, step.timeout_s) == (2, 0.5, 10.0)
    assert isinstance(step.timeout_s, float) and isinstance(step.backoff_s, float)
    assert (step.route, step.on_error) == ("yes", "h")


def test_dsl_30_non_string_dependencies_are_errors(registry: Registry) -> None:
    """Deviation from DSL-30 (issue 18): a builder passed instead of its name is an error."""
    source = flow_of(
        "local a = flow:step('a', nodes.log{})",
        "flow:step('b', nodes.log{}):depends_on('a', a)",
    )
    error = flow_error(registry, source)
    assert str(error) == (
        "Step 'b' depends on the builder of step 'a' at line 3, but dependencies must be "
        "step names (strings); pass its name: :depends_on(\"a\")"
    )
    assert (error.step, error.line) == ("b", 3)
    for value, what in (("5", "a number value"), ("nil", "nil (an undefined variable?)")):
        message = str(flow_error(registry, flow_of(
            "flow:step('a', nodes.log{})", f"flow:step('b', nodes.log{{}}):depends_on({value})")))
        assert f"Step 'b' depends on {what} at line 3" in message


def test_dsl_30_string_dependencies_keep_call_order(registry: Registry) -> None:
    source = flow_of(
        "flow:step('a', nodes.log{})",
        "flow:step('b', nodes.log{}):depends_on('a', 'c'):depends_on('a')",
    )
    assert load(registry, source).steps[1].dependencies == ("a", "c", "a")


def test_dsl_30_validation_collects_every_bad_dependency(registry: Registry) -> None:
    source = flow_of(
        "local a = flow:step('a', nodes.log{})",
        "flow:step('b', nodes.log{}):depends_on(a)",
        "flow:step('c', nodes.log{}):depends_on({})",
    )
    definition = load_flow(FlowSource(text=source), registry=registry, env={}, analyze=True)
    assert [p.message.split(" at ")[0] for p in definition.problems] == [
        "Step 'b' depends on the builder of step 'a'", "Step 'c' depends on a table value"]


def test_dsl_31_retries_keep_backoff_when_omitted(registry: Registry) -> None:
    step = load(registry, flow_of("flow:step('a', nodes.log{}):retries(3)")).steps[0]
    assert (step.max_retries, step.backoff_s) == (3, 1.0)
    step = load(registry, flow_of("flow:step('a', nodes.log{}):retries(3, 2):retries(1)")).steps[0]
    assert (step.max_retries, step.backoff_s) == (1, 2.0)


@pytest.mark.parametrize("value", ["-1", "1.5", "'x'", "nil"])
def test_dsl_31_bad_retry_counts_are_load_errors(registry: Registry, value: str) -> None:
    error = load_error(registry, flow_of(f"flow:step('a', nodes.log{{}}):retries({value})"))
    assert "bad argument #1 to 'retries'" in str(error)
    assert error.line == 2


def test_dsl_31_limits_are_left_to_the_planner(registry: Registry) -> None:
    step = load(registry, flow_of("flow:step('a', nodes.log{}):retries(500, -1):timeout(0)")).steps[0]
    assert (step.max_retries, step.backoff_s, step.timeout_s) == (500, -1.0, 0.0)


def test_dsl_32_timeout_requires_a_number(registry: Registry) -> None:
    error = load_error(registry, flow_of("flow:step('a', nodes.log{}):timeout('soon')"))
    assert "bad argument #1 to 'timeout'" in str(error)


# -- semantics.md#steps: step_if ---------------------------------------------------------------------------

def test_dsl_40_step_if_creates_guard_then_step(registry: Registry) -> None:
    definition = load(registry, flow_of("flow:step_if('ctx.x == 1', 'act', nodes.log{})"))
    guard, step = definition.steps
    assert (guard.name, guard.node_type, guard.dependencies) == ("_if_act", "if_node", ())
    assert guard.config == {"condition": "ctx.x == 1", "_step_name": "_if_act"}
    assert (step.name, step.dependencies, step.route) == ("act", ("_if_act",), "true")


def test_dsl_41_step_if_depends_on_targets_the_guard(registry: Registry) -> None:
    source = flow_of(
        "flow:step('prepare', nodes.log{})",
        "flow:step_if('ctx.ok', 'action', function(ctx) return {} end):depends_on('prepare')"
        ":retries(2):timeout(5):on_error('prepare')",
    )
    prepare, guard, action = load(registry, source).steps
    assert prepare.name == "prepare"
    assert (guard.name, guard.node_type, guard.dependencies) == ("_if_action", "if_node", ("prepare",))
    assert (action.name, action.dependencies, action.route) == ("action", ("_if_action",), "true")
    assert (action.max_retries, action.timeout_s, action.on_error) == (2, 5.0, "prepare")
    assert (guard.max_retries, guard.timeout_s, guard.on_error) == (0, None, None)


def test_dsl_41_step_if_builder_has_no_route(registry: Registry) -> None:
    error = load_error(registry, flow_of("flow:step_if('ctx.x', 'a', nodes.log{}):route('x')"))
    assert "attempt to call a nil value (method 'route')" in str(error)


def test_dsl_43_guard_name_collides_with_user_step(registry: Registry) -> None:
    error = flow_error(registry, flow_of("flow:step('_if_a', nodes.log{})",
                                         "flow:step_if('ctx.x', 'a', nodes.log{})"))
    assert "Duplicate step name '_if_a'" in str(error)


# -- semantics.md#node-factories: factories and function serialization ------------------------------------------------

def test_dsl_50_factory_mutates_and_returns_the_table(registry: Registry) -> None:
    source = flow_of(
        "local cfg = {message = 'm'}",
        "local same = nodes.log(cfg)",
        "assert(same == cfg and cfg._node_type == 'log')",
        "assert(nodes.log()._node_type == 'log')",
        "flow:step('a', cfg)",
    )
    assert load(registry, source).steps[0].node_type == "log"


def test_dsl_50_unknown_node_type_names_step_line_and_hint(registry: Registry) -> None:
    """Deviation from DSL-50 (issue 18): no Lua nil call, a message with a hint."""
    error = flow_error(registry, flow_of("flow:step('a', nodes.nope{})"))
    assert str(error).startswith("Unknown node type 'nope' at line 2 (step 'a'); ")
    assert (error.step, error.line) == ("a", 2)


def test_dsl_51_code_source_function_is_serialized(registry: Registry) -> None:
    step = load(registry, flow_of("flow:step('a', nodes.code{source = function(ctx) return 1 end})")).steps[0]
    assert "source" not in step.config and "bytecode_b64" in step.config


def test_dsl_51_foreach_transform_is_serialized(registry: Registry) -> None:
    step = load(registry, flow_of(
        "flow:step('a', nodes.foreach{source_key = 'k', transform = function(x, i) return x end})")).steps[0]
    assert "transform" not in step.config
    assert functions.verify(step.config["transform_bytecode_b64"])


@pytest.mark.parametrize("entry", [
    "flow:step('a', function(ctx) return captured end)",
    "flow:step_if('ctx.x', 'a', function(ctx) return captured end)",
    "flow:step('a', nodes.code{source = function(ctx) return captured end})",
    "flow:step('a', nodes.foreach{source_key = 'k', transform = function(x) return captured end})",
])
def test_dsl_52_captured_locals_are_rejected(registry: Registry, entry: str) -> None:
    error = load_error(registry, flow_of("local captured = 1", entry))
    message = str(error)
    assert "Lua function handler at line 3 captures 1 outer local value(s)" in message
    assert "pass values through ctx" in message
    assert error.line == 3


def test_dsl_52_globals_are_fine_and_top_level_helpers_vanish(registry: Registry) -> None:
    source = flow_of(
        "function helper() return 1 end",
        "flow:step('a', function(ctx) return { h = type(helper), j = json_stringify({1}) } end)",
    )
    step = load(registry, source).steps[0]
    assert step.node_type == "code"


async def test_dsl_52_handler_runs_without_outer_state(registry: Registry) -> None:
    source = flow_of(
        "function helper() return 1 end",
        "flow:step('a', function(ctx) return { h = type(helper), x = ctx.x + 1 } end)",
    )
    definition = load(registry, source)
    assert await run_step(registry, definition, "a", {"x": 1}) == {"h": "nil", "x": 2}


async def test_dsl_53_forged_bytecode_is_rejected(registry: Registry) -> None:
    definition = load(registry, flow_of("flow:step('a', nodes.code{bytecode_b64 = 'G0x1YVQA'})"))
    with pytest.raises(NodeError, match="Function bytecode failed authentication"):
        await run_step(registry, definition, "a")


async def test_dsl_53_tampered_signature_is_rejected(registry: Registry) -> None:
    definition = load(registry, flow_of("flow:step('a', function(ctx) return {x = 1} end)"))
    step = definition.steps[0]
    raw = bytearray(__import__("base64").b64decode(step.config["bytecode_b64"]))
    raw[-1] ^= 1
    forged = __import__("base64").b64encode(bytes(raw)).decode()
    ctx = NodeContext({}, step_name="a", node_type="code", services=services(registry))
    with pytest.raises(NodeError, match="not authenticated by this process"):
        await run_code(ctx, CodeConfig(bytecode_b64=forged))


async def test_dsl_54_handler_gets_ctx_as_argument_and_global(registry: Registry) -> None:
    definition = load(registry, flow_of(
        "flow:step('a', function(c) c.x = 5 return { same = (c == ctx), x = ctx.x } end)"))
    assert await run_step(registry, definition, "a", {"x": 1}) == {"same": True, "x": 5}


# -- semantics.md#lua-globals: loader globals ---------------------------------------------------------------

def test_dsl_60_61_runtime_only_globals_are_absent_at_load(registry: Registry) -> None:
    source = flow_of(
        "assert(ctx == nil, 'ctx')",
        "assert(base64_encode == nil and base64_decode == nil, 'base64')",
    )
    load(registry, source)
    assert "attempt to call a nil value (global 'base64_encode')" in str(
        load_error(registry, "base64_encode('x')"))


def test_dsl_62_env_allowlist(registry: Registry) -> None:
    source = flow_of("flow:step(tostring(env('A')) .. '-' .. tostring(env('B')), nodes.log{})")
    assert load(registry, source, env={"A": "1", "B": "2"}).steps[0].name == "1-2"
    assert load(registry, source, env={"A": "1", "B": "2", "IRONFLOW_ENV_ALLOWLIST": " B , "}
                ).steps[0].name == "nil-2"
    assert load(registry, source, env={"A": "1", "IRONFLOW_ENV_ALLOWLIST": ""}).steps[0].name == "nil-nil"


def test_dsl_63_to_68_globals_usable_at_load(registry: Registry) -> None:
    source = flow_of(
        "local id = uuid4()",
        "assert(#id == 36 and id:match('^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$'), id)",
        "assert(now_rfc3339():match('^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d+%+00:00$'))",
        "assert(math.type(now_unix_ms()) == 'integer' and now_unix_ms() > 1.6e12)",
        "local parsed = json_parse('{\"a\": [1, 2]}')",
        "assert(parsed.a[2] == 2 and json_stringify(parsed) == '{\"a\":[1,2]}')",
        "log('debug', 'loading', 1, json_null)",
        "flow:step('s', nodes.log{ empty_array = json_array({}), empty_object = json_object({}),"
        " nothing = json_null, parsed_array = json_parse('[]'), parsed_null = json_parse('null'),"
        " list = {1, 2.5, 'x'} })",
    )
    config = load(registry, source).steps[0].config
    assert config == {"empty_array": [], "empty_object": {}, "nothing": None, "parsed_array": [],
                      "parsed_null": None,
                      "list": [1, 2.5, "x"], "_step_name": "s"}


def test_dsl_69_log_at_load_goes_to_the_lua_logger(registry: Registry,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(5, logger="ironflow.lua")
    load(registry, flow_of("log('WARN', 'a', 1, 2.0, 2.5, true, nil, json_null, {b = 1, a = {}})",
                           "log('plain', 'text')"))
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "ironflow.lua"]
    assert records == [("WARNING", '<lua> a 1 2 2.5 true nil null {"a":{},"b":1}'),
                       ("INFO", "<lua> plain text")]
    assert "log() requires at least one argument" in str(load_error(registry, "log()"))


def test_dsl_70_standard_library_at_load(registry: Registry) -> None:
    source = flow_of(
        "assert(table.concat({'a', 'b'}, ',') == 'a,b')",
        "assert(('abc'):upper() == 'ABC' and string.format('%03d', 7) == '007')",
        "assert(math.floor(2.5) == 2 and math.type(1) == 'integer')",
        "assert(utf8.char(233) == 'é' and utf8.len('é') == 1)",
        "assert(select('#', 1, 2) == 2 and _VERSION == 'Lua 5.4' and _G._G == _G)",
    )
    load(registry, source)


@pytest.mark.parametrize("name", ["os", "io", "debug", "package", "require", "load", "loadfile",
                                  "dofile", "collectgarbage", "coroutine", "python", "string.dump"])
def test_dsl_90_sandbox_hides_names_at_load(registry: Registry, name: str) -> None:
    load(registry, flow_of(f"assert(type({name}) == 'nil', '{name} is visible')"))


def test_dsl_90_io_open_at_top_level_fails(registry: Registry) -> None:
    assert "attempt to index a nil value (global 'io')" in str(
        load_error(registry, "io.open('/etc/passwd')"))


def test_os_execute_in_code_source_does_not_fail_loading(registry: Registry) -> None:
    step = load(registry, flow_of("flow:step('a', nodes.code{source = 'os.execute(\"rm -rf /\")'})")).steps[0]
    assert step.config["source"] == 'os.execute("rm -rf /")'


# -- config structuring ----------------------------------------------------------------------

def test_config_type_error_names_step_node_and_path(registry: Registry) -> None:
    error = flow_error(registry, flow_of("flow:step('fetch', nodes.fetch{url = 5})"))
    message = str(error)
    assert message.startswith("line 2: Step 'fetch' (fetch): ")
    assert "@ $.url" in message
    assert (error.step, error.field, error.line) == ("fetch", "$.url", 2)


def test_config_every_problem_is_reported(registry: Registry) -> None:
    message = str(flow_error(registry, flow_of("flow:step('f', nodes.fetch{timeout = 'slow'})")))
    assert "@ $.url" in message and "@ $.timeout" in message


def test_config_structured_into_the_node_class(registry: Registry) -> None:
    definition = load(registry, flow_of("flow:step('f', nodes.fetch{url = 'http://x', timeout = 5, extra = 1})"))
    step = definition.steps[0]
    assert plan_flow(definition, registry).configs[0] == FetchConfig(url="http://x", timeout=5.0)
    assert step.config["extra"] == 1


def test_step_lines_are_recorded(registry: Registry) -> None:
    source = "local flow = Flow.new('t')\n\nflow:step('a', nodes.log{})\nflow:step_if('ctx.x', 'b',\n nodes.log{})\nreturn flow"
    assert [(s.name, s.line) for s in load(registry, source).steps] == [
        ("a", 3), ("_if_b", 4), ("b", 4)]


# -- semantics.md#validation-warnings: validation mode --------------------------------------------------------------------

def test_dsl_110_invalid_code_source_is_an_error(registry: Registry) -> None:
    source = flow_of("flow:step('broken', nodes.code{source = 'return +'})")
    load(registry, source)  # not checked outside validation
    error = load_error(registry, source, analyze=True)
    assert str(error).startswith("Step 'broken' has invalid Lua code source: ")
    assert error.step == "broken"


def test_dsl_110_expressions_and_chunks_compile(registry: Registry) -> None:
    load(registry, flow_of("flow:step('e', nodes.code{source = 'ctx.a + 1'})",
                           "flow:step('c', nodes.code{source = 'local x = 1\\nreturn x'})"), analyze=True)


def test_dsl_110_code_sources_count_against_the_size_limit(registry: Registry) -> None:
    source = flow_of("flow:step('big', nodes.code{source = string.rep('x = 1 ', 100)})")
    error = load_error(registry, source, analyze=True, env={"IRONFLOW_MAX_FLOW_SOURCE_BYTES": "400"})
    assert "IRONFLOW_MAX_FLOW_SOURCE_BYTES" in str(error)


def test_dsl_111_undefined_global_in_handler(registry: Registry, tmp_path: Path) -> None:
    lines = [
        "local flow = Flow.new('diagnostics')",
        "flow:step('one', nodes.log{message = 'x'})",
        "flow:step('render', function(ctx)",
        "  local header = 'hello'",
        "  return { text = string.format('%s %s', header, ctx.name, footer) }",
        "end)",
        "return flow",
    ]
    path = tmp_path / "diag.lua"
    path.write_text("\n".join(lines))
    definition = load_flow(path, registry=registry, env={}, analyze=True)
    (warning,) = definition.warnings
    assert warning.code == "undefined_global"
    assert warning.message == "`footer` is not defined in the Lua handler environment"
    assert (warning.line, warning.column) == (5, lines[4].index("footer") + 1)
    assert warning.step is None
    assert load_flow(path, registry=registry, env={}).warnings == ()


def test_dsl_111_loader_globals_are_undefined_in_handlers(registry: Registry) -> None:
    source = flow_of("flow:step('a', function() return { f = Flow, n = nodes, c = ctx } end)")
    names = {w.message.split("`")[1] for w in load(registry, source, analyze=True).warnings}
    assert names == {"Flow", "nodes"}


def test_dsl_111_undefined_global_in_code_source(registry: Registry) -> None:
    source = flow_of("flow:step('s', nodes.code{source = \"local header = 'h'\\nreturn header .. footer\"})",
                     "flow:step('e', nodes.code{source = 'missing_value + 1'})")
    warnings = load(registry, source, analyze=True).warnings
    assert [(w.step, w.line, w.column, w.message) for w in warnings] == [
        ("s", 2, 18, "`footer` is not defined in the Lua code source environment"),
        ("e", 1, 1, "`missing_value` is not defined in the Lua code source environment"),
    ]


def test_dsl_111_top_level_code_is_not_analysed(registry: Registry) -> None:
    source = flow_of("local x = undefined_at_top", "flow:step('a', function(ctx) local y = 1 return {y = y} end)")
    assert load(registry, source, analyze=True).warnings == ()


# -- DSL-4: reading sources ---------------------------------------------------------------------

def test_dsl_4_regular_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.lua"
    path.write_text("return 1")
    source = read_flow_source(path, {})
    assert (source.text, source.path) == ("return 1", str(path))


def test_dsl_4_size_limit_is_inclusive(tmp_path: Path) -> None:
    path = tmp_path / "sized.lua"
    path.write_bytes(b"x" * 100)
    assert read_flow_source(path, {"IRONFLOW_MAX_FLOW_SOURCE_BYTES": "100"}).text == "x" * 100
    with pytest.raises(FlowLoadError) as info:
        read_flow_source(path, {"IRONFLOW_MAX_FLOW_SOURCE_BYTES": "99"})
    assert "99 bytes" in str(info.value) and "IRONFLOW_MAX_FLOW_SOURCE_BYTES" in str(info.value)
    for fallback in ("0", "lots"):
        assert read_flow_source(path, {"IRONFLOW_MAX_FLOW_SOURCE_BYTES": fallback})


def test_dsl_4_inline_sources_use_the_same_limit(registry: Registry) -> None:
    with pytest.raises(FlowLoadError, match="IRONFLOW_MAX_FLOW_SOURCE_BYTES"):
        load(registry, "return Flow.new('" + "x" * 200 + "')",
             env={"IRONFLOW_MAX_FLOW_SOURCE_BYTES": "100"})


def test_dsl_4_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe.lua"
    os.mkfifo(path)
    with pytest.raises(FlowLoadError, match="flow source must be a regular file"):
        read_flow_source(path, {})


def test_dsl_4_devices_and_directories_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError, match="flow source must be a regular file"):
        read_flow_source("/dev/null", {})
    with pytest.raises(FlowLoadError, match="flow source must be a regular file"):
        read_flow_source(tmp_path, {})


def test_dsl_4_invalid_utf8_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.lua"
    path.write_bytes(b"return '\xe9'")
    with pytest.raises(FlowLoadError, match="flow source is not valid UTF-8") as info:
        read_flow_source(path, {})
    assert "\xe9" not in str(info.value)


def test_missing_file_and_other_suffixes(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(FlowLoadError, match="not found"):
        load_flow(tmp_path / "absent.lua", registry=registry, env={})
    other = tmp_path / "flow.txt"
    other.write_text("return Flow.new('plain')")
    assert load_flow(other, registry=registry, env={}).name == "plain"
    no_lua = build_registry({}, builtins=False, entry_points=False)
    with pytest.raises(FlowLoadError, match="No Lua flow loader"):
        load_flow(other, registry=no_lua, env={})


def test_loader_is_registered_by_the_core_plugin() -> None:
    registry = build_registry({}, entry_points=False)
    loader = registry.loader_for("flows/hello.lua")
    assert loader is not None and loader.name == "lua" and loader.suffixes == (".lua",)


def test_errors_are_plain_messages(registry: Registry) -> None:
    message = str(load_error(registry, "error({code = 1})"))
    assert "Traceback" not in message and "stack traceback" not in message
    assert json.dumps(message)
