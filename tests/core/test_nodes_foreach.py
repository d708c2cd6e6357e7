"""``foreach`` (FE-1..3, DSL-51/54), through the real loader and engine."""

from __future__ import annotations

import pytest
import trio

from ironflow_core.testing import FlowResult, arun_flow


async def run(body: str, context: dict | None = None, env: dict | None = None) -> FlowResult:
    text = f'local flow = Flow.new("fe")\n{body}\nreturn flow\n'
    return await arun_flow(text, context=context, env=env or {})


def error_of(result: FlowResult, step: str) -> str:
    task = result.tasks[step]
    assert task.status == "failed", f"{step} is {task.status}"
    return task.error or ""


async def test_fe_1_collects_results_with_one_based_index():
    result = await run("""
        flow:step("x", nodes.foreach({
            source_key = "items", output_key = "mapped",
            transform = function(item, idx) return { name = item.name, index = idx } end
        }))
    """, {"items": [{"name": "alpha"}, {"name": "beta"}, {"name": "gamma"}]})
    result.assert_succeeded()
    assert result.output("x") == {
        "mapped": [{"name": "alpha", "index": 1}, {"name": "beta", "index": 2},
                   {"name": "gamma", "index": 3}],
        "mapped_count": 3,
    }


async def test_fe_1_default_output_key_and_empty_source():
    result = await run("""
        flow:step("x", nodes.foreach({ source_key = "items",
            transform = function(item) return item end }))
    """, {"items": []})
    assert result.assert_succeeded().output("x") == {"foreach_results": [],
                                                      "foreach_results_count": 0}


async def test_fe_2_nil_and_json_null_results_are_dropped_by_default():
    result = await run("""
        flow:step("x", nodes.foreach({
            source_key = "items", output_key = "active",
            transform = function(item)
                if item.flag == true then return { value = item.value } end
                if item.value == "n" then return json_null end
            end
        }))
    """, {"items": [{"value": "a", "flag": True}, {"value": "b", "flag": False},
                    {"value": "n"}, {"value": "c", "flag": True}]})
    out = result.assert_succeeded().output("x")
    assert out == {"active": [{"value": "a"}, {"value": "c"}], "active_count": 2}


async def test_fe_2_filter_nulls_false_keeps_nulls():
    result = await run("""
        flow:step("x", nodes.foreach({
            source_key = "items", output_key = "mapped", filter_nulls = "${ctx.filter}",
            transform = function(item) if item > 1 then return item end end
        }))
    """, {"items": [0, 1, 2, 3], "filter": "off"})
    out = result.assert_succeeded().output("x")
    assert out == {"mapped": [None, None, 2, 3], "mapped_count": 4}


async def test_fe_2_numbers_keep_their_subtype():
    result = await run("""
        flow:step("x", nodes.foreach({
            source_key = "items",
            transform = function(item) return { int = item * 2, float = item * 1.0,
                                                half = item / 2, empty = json_array({}) } end
        }))
    """, {"items": [3]})
    [value] = result.assert_succeeded().ctx["foreach_results"]
    assert value == {"int": 6, "float": 3.0, "half": 1.5, "empty": []}
    assert isinstance(value["int"], int) and isinstance(value["float"], float)


async def test_fe_1_runtime_globals_and_ctx_are_visible():
    result = await run("""
        flow:step("x", nodes.foreach({
            source_key = "words",
            transform = function(word, i)
                return {
                    scaled = i * ctx.factor,
                    encoded = base64_encode(word),
                    json = json_stringify({ w = word }),
                }
            end
        }))
    """, {"words": ["hi"], "factor": 10})
    [value] = result.assert_succeeded().ctx["foreach_results"]
    assert value == {"scaled": 10, "encoded": "aGk=", "json": '{"w":"hi"}'}


async def test_fe_1_sandbox_hides_system_libraries():
    result = await run("""
        flow:step("x", nodes.foreach({
            source_key = "items",
            transform = function()
                return {
                    require_type = type(require), package_type = type(package),
                    os_type = type(os), io_type = type(io), load_type = type(load),
                    collectgarbage_type = type(collectgarbage),
                    string_dump_type = type(string.dump), debug_type = type(debug),
                }
            end
        }))
    """, {"items": [1]})
    [types] = result.assert_succeeded().ctx["foreach_results"]
    assert set(types.values()) == {"nil"} and len(types) == 8


async def test_fe_3_error_on_item_seven_names_both_indexes():
    result = await run("""
        flow:step("x", nodes.foreach({
            source_key = "items",
            transform = function(item, i)
                if i == 7 then error("bad item " .. item) end
                return item
            end
        }))
        flow:step("after", nodes.log({ message = "never" })):depends_on("x")
        flow:step("independent", nodes.log({ message = "still runs" }))
    """, {"items": list(range(10))})
    error = error_of(result, "x")
    assert error.startswith("foreach transform failed on item 6 (index 7): ")
    assert "bad item 6" in error
    assert result.tasks["after"].status == "skipped"
    assert result.ctx["log_message"] == "still runs"
    assert "foreach_results" not in result.ctx


async def test_fe_2_unconvertible_result_names_its_path():
    result = await run("""
        flow:step("x", nodes.foreach({
            source_key = "items",
            transform = function(item) if item == 3 then return print end return item end
        }))
    """, {"items": [1, 2, 3]})
    error = error_of(result, "x")
    assert "$foreach[2]" in error and "function" in error


@pytest.mark.parametrize(("config", "context", "expected"), [
    ("{ transform = function(i) return i end }", {}, "foreach requires 'source_key'"),
    ('{ source_key = "items" }', {"items": [1]}, "foreach requires 'transform' to be a function"),
    ('{ source_key = "items", transform = "return item" }', {"items": [1]},
     "foreach requires 'transform' to be a function"),
    ('{ source_key = "absent", transform = function(i) return i end }', {},
     "Key 'absent' not found in context"),
    ('{ source_key = "items", transform = function(i) return i end }', {"items": {"a": 1}},
     "Value at 'items' is not an array"),
])
async def test_fe_parameter_errors(config, context, expected):
    result = await run(f'flow:step("x", nodes.foreach({config}))', context)
    assert error_of(result, "x") == expected


async def test_fe_1_instruction_budget_is_shared_by_all_items():
    env = {"IRONFLOW_LUA_MAX_INSTRUCTIONS": "50000", "IRONFLOW_LUA_HOOK_INTERVAL": "100"}
    result = await run("""
        flow:step("x", nodes.foreach({
            source_key = "items",
            transform = function(item)
                local total = 0
                for n = 1, 5000 do total = total + n end
                return total
            end
        }))
    """, {"items": list(range(20))}, env)
    error = error_of(result, "x")
    assert "instruction budget of 50000" in error
    # one item costs well under the budget: only the shared budget can run out
    assert not error.startswith("foreach transform failed on item 0 ")
    assert error.startswith("foreach transform failed on item ")


async def test_fe_step_timeout_interrupts_the_loop():
    env = {"IRONFLOW_LUA_MAX_INSTRUCTIONS": "0", "IRONFLOW_LUA_MAX_SECONDS": "0"}
    start = trio.current_time()
    result = await run("""
        flow:step("spin", nodes.foreach({
            source_key = "items",
            transform = function() while true do end end
        })):timeout(0.3)
    """, {"items": [1]}, env)
    assert trio.current_time() - start < 5
    assert error_of(result, "spin") == "Task 'spin' timed out after 0.3s total"


def test_appendix_b_summary():
    from ironflow_core.registry import build_registry

    spec = build_registry({}, entry_points=False).nodes["foreach"]
    assert spec.summary == (
        "Iterate over an array, execute a Lua function per item, and collect results"
    )
    assert spec.config is not None


async def test_dsl_53_hand_written_bytecode_is_refused():
    forged = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ=="
    result = await run(f"""
        flow:step("x", nodes.foreach({{ source_key = "items", transform_bytecode_b64 = "{forged}" }}))
    """, {"items": [1]})
    assert error_of(result, "x").startswith("Function bytecode failed authentication")
