"""The ``code`` node (CD-1..6, semantics.md#acceptance "code" bullets)."""

from __future__ import annotations

from typing import Any

import pytest

from ironflow_core.configs import structure_config
from ironflow_core.context import NodeContext
from ironflow_core.engine import plan_flow
from ironflow_core.errors import NodeError
from ironflow_core.loading import load_flow
from ironflow_core.nodes.code import CodeConfig, run_code
from ironflow_core.registry import Registry
from ironflow_core.specs import FlowSource
from ironflow_core.testing import make_registry, node_context


@pytest.fixture(scope="module")
def registry() -> Registry:
    return make_registry()


def context(registry: Registry, data: dict[str, Any] | None = None,
            env: dict[str, str] | None = None) -> NodeContext:
    return node_context(data, registry=registry, env=env, node_type="code")


async def code(registry: Registry, source: str, data: dict[str, Any] | None = None,
               **kwargs: Any) -> dict[str, Any]:
    return await run_code(context(registry, data, **kwargs), CodeConfig(source=source))


def handler(registry: Registry, body: str) -> CodeConfig:
    flow = load_flow(FlowSource(f"local f = Flow.new('t')\nf:step('s', {body})\nreturn f"),
                     registry=registry, env={})
    config = plan_flow(flow, registry).configs[0]
    assert isinstance(config, CodeConfig)
    return config


def test_code_node_is_registered(registry: Registry) -> None:
    spec = registry.node("code")
    assert spec is not None and spec.config is CodeConfig
    assert spec.summary == "Execute inline Lua code with access to the workflow context"


async def test_cd_1_neither_source_nor_function(registry: Registry) -> None:
    with pytest.raises(NodeError, match=r"^code node requires 'source' or a function handler$"):
        await run_code(context(registry), CodeConfig())
    with pytest.raises(NodeError, match="requires 'source'"):
        await run_code(context(registry), structure_config(CodeConfig, {"source": 5}))


async def test_cd_1_bytecode_wins_over_source(registry: Registry) -> None:
    config = handler(registry, "function(ctx) return {from_function = true} end")
    both = CodeConfig(source="return {from_source = true}", bytecode_b64=config.bytecode_b64)
    assert await run_code(context(registry), both) == {"from_function": True}


async def test_cd_2_ctx_is_a_copy(registry: Registry) -> None:
    data = {"list": [1, 2], "obj": {"a": 1}}
    result = await code(registry, "table.insert(ctx.list, 3) ctx.obj.a = 99 ctx.new = 1 "
                                  "return {n = #ctx.list}", data)
    assert result == {"n": 3}
    assert data == {"list": [1, 2], "obj": {"a": 1}}
    assert await code(registry, "return {seen = ctx.new}", data) == {}


async def test_cd_2_fresh_state_per_execution(registry: Registry) -> None:
    assert await code(registry, "counter = (counter or 0) + 1 return counter") == {"result": 1}
    assert await code(registry, "counter = (counter or 0) + 1 return counter") == {"result": 1}


async def test_cd_3_expression_first_then_chunk(registry: Registry) -> None:
    assert await code(registry, "ctx.a + 1", {"a": 1}) == {"result": 2}
    assert await code(registry, "local x = ctx.a * 2\nreturn { y = x }", {"a": 4}) == {"y": 8}
    assert await code(registry, "1, 2") == {"result": 1}


async def test_cd_4_function_is_called_with_ctx(registry: Registry) -> None:
    config = handler(registry, "function(ctx) return { y = ctx.x + 5 } end")
    assert await run_code(context(registry, {"x": 10}), config) == {"y": 15}


async def test_cd_5_result_mapping(registry: Registry) -> None:
    assert await code(registry, "return nil") == {}
    assert await code(registry, "return {}") == {}
    assert await code(registry, "return {a = 1, b = 'x'}") == {"a": 1, "b": "x"}
    assert await code(registry, "return json_array({})") == {"result": []}
    assert await code(registry, "return {1, 2}") == {"result": [1, 2]}
    assert await code(registry, "return 'text'") == {"result": "text"}
    assert await code(registry, "return 3.0") == {"result": 3.0}
    assert await code(registry, "return false") == {"result": False}
    assert await code(registry, "return json_null") == {"result": None}


async def test_cd_5_explicit_shapes_and_shared_tables(registry: Registry) -> None:
    result = await code(registry, "local s = {1, 2} return { a = s, b = s, "
                                  "arr = json_array({}), obj = json_object({}), n = json_null }")
    assert result == {"a": [1, 2], "b": [1, 2], "arr": [], "obj": {}, "n": None}


async def test_cd_5_nulls_from_context_are_preserved(registry: Registry) -> None:
    result = await code(registry, "return { same = ctx.x, is_nil = ctx.x == nil }", {"x": None})
    assert result == {"same": None, "is_nil": False}


async def test_cd_5_json_helpers(registry: Registry) -> None:
    result = await code(registry, "local v = json_parse('{\"k\": [1, null]}') "
                                  "return { text = json_stringify(v), k2 = v.k[2] == json_null }")
    assert result == {"text": '{"k":[1,null]}', "k2": True}


@pytest.mark.parametrize(("source", "expected"), [
    ("local t = {} t.self = t return t", "cyclic Lua table at $.self"),
    ("return {1, a = 2}", "mixed Lua table at $"),
    ("return {[1] = 1, [3] = 3}", "sparse Lua array at $"),
    ("return {nested = print}", "unsupported Lua function value at $.nested"),
    ("return {invalid = 0/0}", "non-finite Lua number at $.invalid"),
    ("local t = {} local c = t for i = 1, 70 do c.n = {} c = c.n end return t", "maximum depth 64"),
])
async def test_cd_6_shape_errors_carry_the_path(registry: Registry, source: str, expected: str) -> None:
    with pytest.raises(NodeError) as info:
        await code(registry, source)
    assert str(info.value).startswith("Code execution failed: ")
    assert expected in str(info.value)


async def test_cd_6_runtime_error_prefixes(registry: Registry) -> None:
    with pytest.raises(NodeError, match=r"^Code execution failed: code:1: boom$"):
        await code(registry, "error('boom')")
    with pytest.raises(NodeError, match=r"^Code execution failed: code:1: "):
        await code(registry, "return +")
    config = handler(registry, "function(ctx)\n  error('bad handler')\nend")
    with pytest.raises(NodeError, match=r"^Function execution failed: <inline>:3: bad handler$"):
        await run_code(context(registry), config)


async def test_cd_2_runtime_globals(registry: Registry) -> None:
    result = await code(registry, "return { b64 = base64_encode('hi'), raw = base64_decode('aGk='), "
                                  "flow = type(Flow), nodes = type(nodes), os = type(os), "
                                  "env = env('VISIBLE') }", env={"VISIBLE": "yes"})
    assert result == {"b64": "aGk=", "raw": "hi", "flow": "nil", "nodes": "nil", "os": "nil",
                      "env": "yes"}
    with pytest.raises(NodeError, match="base64_decode failed"):
        await code(registry, "base64_decode('not base64!')")


async def test_dsl_92_limits_apply_to_code_steps(registry: Registry) -> None:
    with pytest.raises(NodeError, match="instruction budget of 1000"):
        await code(registry, "for i = 1, 1e6 do end", env={"IRONFLOW_LUA_MAX_INSTRUCTIONS": "1000",
                                                            "IRONFLOW_LUA_HOOK_INTERVAL": "100"})


async def test_dsl_84_context_over_the_node_budget_fails_the_step(registry: Registry) -> None:
    data = {"items": list(range(50))}
    with pytest.raises(NodeError, match="JSON-to-Lua maximum node count 20"):
        await code(registry, "1", data, env={"IRONFLOW_MAX_CONVERSION_NODES": "20"})
