"""``subworkflow``, ``parallel_subworkflows`` and ``repeat_subworkflow`` (semantics.md#control-nodes).

Parent and child flows are real Lua files in ``tmp_path`` run by the real
loader and engine (``ironflow_core.testing.arun_flow`` gives the parent its
``_flow_dir``). A small ``probe`` node records what children did, so tests can
see side effects of detached, cancelled and concurrent children.
"""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any

import pytest
import trio

from ironflow_core import NodeError, NodeSpec, hookimpl
from ironflow_core.engine import lease, prepare_run
from ironflow_core.model import FlowDefinition, RunStatus, StepSpec
from ironflow_core.nodes import subflows
from ironflow_core.stores.memory import MemoryStore
from ironflow_core.testing import FlowResult, arun_flow, make_registry

PROBES: list[str] = []
RUNNING = {"now": 0, "peak": 0}


async def _probe(ctx: Any, config: dict) -> dict:
    """Sleeps, then records its label; optionally fails. Tracks peak concurrency."""
    RUNNING["now"] += 1
    RUNNING["peak"] = max(RUNNING["peak"], RUNNING["now"])
    try:
        if config.get("sleep"):
            await trio.sleep(config["sleep"])
    finally:
        RUNNING["now"] -= 1
    PROBES.append(config.get("label", ctx.step_name))
    if config.get("fail"):
        raise NodeError(config["fail"])
    return dict(config.get("out", {}))


@hookimpl
def ironflow_register_nodes() -> list[NodeSpec]:
    return [NodeSpec(name="probe", run=_probe, summary="records that it ran")]


probe_plugin = types.SimpleNamespace(ironflow_register_nodes=ironflow_register_nodes)
REGISTRY = make_registry(("subflow-probe", probe_plugin))


@pytest.fixture(autouse=True)
def _reset_probes():
    PROBES.clear()
    RUNNING.update(now=0, peak=0)
    yield


def write_flow(directory: Path, file: str, body: str, name: str | None = None) -> Path:
    """A flow file ``local flow = Flow.new(name) <body> return flow``."""
    path = directory / file
    path.parent.mkdir(parents=True, exist_ok=True)
    flow_name = name or Path(file).stem
    path.write_text(f'local flow = Flow.new("{flow_name}")\n{body}\nreturn flow\n',
                    encoding="utf-8")
    return path


async def run_parent(path: Path, context: dict | None = None,
                     env: dict | None = None) -> FlowResult:
    return await arun_flow(path, context=context, registry=REGISTRY, env=env or {})


def error_of(result: FlowResult, step: str) -> str:
    task = result.tasks[step]
    assert task.status == "failed", f"{step} is {task.status}"
    return task.error or ""


OK_CHILD = 'flow:step("s", function(ctx) return { child_value = 42, from_parent = ctx.parent_value } end)'
FAILING_CHILD = 'flow:step("boom", function(ctx) error("child exploded") end)'


# -- subworkflow ------------------------------------------------------------------------


async def test_swf_3_merges_child_keys_without_output_key(tmp_path):
    write_flow(tmp_path, "nested.lua", OK_CHILD, name="child")
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("call", nodes.subworkflow({ flow = "nested.lua" }))
    """)
    result = (await run_parent(parent, {"parent_value": 7})).assert_succeeded()
    out = result.output("call")
    assert out["child_value"] == 42 and out["from_parent"] == 7
    assert out["parent_value"] == 7  # SWF-3: inherited keys come back too
    assert out["subworkflow_name"] == "child" and out["subworkflow_success"] is True
    assert not [k for k in out if k.startswith("_")]


async def test_swf_1_input_maps_keys_omits_absent_and_passes_literals(tmp_path):
    write_flow(tmp_path, "child.lua", """
        flow:step("s", function(ctx)
            return { got_a = ctx.a, missing_is_nil = ctx.b == nil, lit = ctx.n,
                     saw_other = ctx.other ~= nil, flow_dir = ctx._flow_dir }
        end)
    """)
    write_flow(tmp_path, "parent.lua", """
        flow:step("call", nodes.subworkflow({
            flow = "child.lua",
            input = { a = "x", b = "absent", n = 5 },
            output_key = "res",
        }))
    """)
    result = (await run_parent(tmp_path / "parent.lua", {"x": "X", "other": 1})).assert_succeeded()
    res = result.ctx["res"]
    assert res["got_a"] == "X" and res["missing_is_nil"] is True and res["lit"] == 5
    assert res["saw_other"] is False  # only the mapped keys reach the child
    assert res["flow_dir"] == str(tmp_path.resolve())  # SUB-2
    assert "a" in res and "b" not in res


async def test_swf_3_output_key_namespaces_and_reports_success(tmp_path):
    write_flow(tmp_path, "ok.lua", """
        flow:step("s", function() return { status = "ok", _private = 1 } end)
    """, name="child")
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("call", nodes.subworkflow({ flow = "ok.lua", output_key = "child_out" }))
    """)
    result = (await run_parent(parent, {"keep": 1})).assert_succeeded()
    out = result.output("call")
    assert out["child_out"] == {"status": "ok", "keep": 1}
    assert out["child_out_success"] is True and "child_out_error" not in out
    assert out["subworkflow_name"] == "child" and out["subworkflow_success"] is True
    assert "status" not in out


async def test_sub_1_relative_path_without_flow_dir(tmp_path):
    flow = FlowDefinition(name="p", steps=(StepSpec(
        name="call", node_type="subworkflow",
        config={"flow": "does_not_exist.lua", "_step_name": "call"}),))
    result = await arun_flow(flow, registry=REGISTRY, env={})
    assert error_of(result, "call") == (
        "subworkflow: cannot resolve relative path 'does_not_exist.lua' — _flow_dir not set"
    )


async def test_sub_1_missing_file_and_absolute_paths(tmp_path):
    child = write_flow(tmp_path / "lib", "child.lua", OK_CHILD, name="child")
    parent = write_flow(tmp_path, "parent.lua", f"""
        flow:step("absolute", nodes.subworkflow({{ flow = "{child}", output_key = "a" }}))
        flow:step("missing", nodes.subworkflow({{ flow = "nope.lua" }}))
    """)
    result = await run_parent(parent)
    assert result.ctx["a_success"] is True
    assert error_of(result, "missing") == (
        f"subworkflow: cannot find '{tmp_path.resolve()}/nope.lua': "
        "No such file or directory (os error 2)"
    )


async def test_sub_2_nested_child_resolves_against_its_own_directory(tmp_path):
    write_flow(tmp_path / "lib" / "deeper", "leaf.lua", """
        flow:step("s", function(ctx) return { leaf = ctx._flow_dir } end)
    """)
    write_flow(tmp_path / "lib", "middle.lua", """
        flow:step("s", nodes.subworkflow({ flow = "deeper/leaf.lua" }))
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("call", nodes.subworkflow({ flow = "lib/middle.lua" }))
    """)
    result = (await run_parent(parent)).assert_succeeded()
    assert result.ctx["leaf"] == str((tmp_path / "lib" / "deeper").resolve())


async def test_swf_2_failure_without_output_key_fails_the_step(tmp_path):
    write_flow(tmp_path, "fail.lua", FAILING_CHILD, name="child")
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("call", nodes.subworkflow({ flow = "fail.lua" }))
    """)
    result = await run_parent(parent)
    assert result.status is RunStatus.FAILED
    assert error_of(result, "call") == "Subworkflow 'child' finished with status: failed"


async def test_swf_2_failure_with_output_key_is_tolerated_with_error_text(tmp_path):
    write_flow(tmp_path, "fail.lua", FAILING_CHILD, name="child")
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("call", nodes.subworkflow({ flow = "fail.lua", output_key = "child_out" }))
    """)
    result = (await run_parent(parent, {"seed": 1})).assert_succeeded()
    out = result.output("call")
    assert out["child_out_success"] is False
    assert out["child_out_error"] == "Subworkflow 'child' finished with status: failed"
    assert out["child_out"] == {"seed": 1}  # the partial context of the child
    assert out["subworkflow_success"] is False and out["subworkflow_name"] == "child"


async def test_swf_2_explicit_policy_overrides_output_key(tmp_path):
    write_flow(tmp_path, "fail.lua", FAILING_CHILD, name="child")
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("strict", nodes.subworkflow({
            flow = "fail.lua", output_key = "child_out", on_error = "fail_fast" }))
        flow:step("lenient", nodes.subworkflow({ flow = "fail.lua", on_error = "ignore" }))
        flow:step("bad", nodes.subworkflow({ flow = "fail.lua", on_error = "retry" }))
    """)
    result = await run_parent(parent, {"seed": 1})
    assert error_of(result, "strict") == "Subworkflow 'child' finished with status: failed"
    lenient = result.output("lenient")
    assert lenient["subworkflow_success"] is False and lenient["seed"] == 1
    assert error_of(result, "bad") == (
        "subworkflow: invalid on_error 'retry'; expected 'fail_fast' or 'ignore'"
    )


async def test_swf_5_load_error_fails_regardless_of_on_error(tmp_path):
    (tmp_path / "broken.lua").write_text("this is not lua", encoding="utf-8")
    write_flow(tmp_path, "invalid.lua", """
        flow:step("a", function() return {} end):depends_on("ghost")
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("broken", nodes.subworkflow({ flow = "broken.lua", on_error = "ignore" }))
        flow:step("invalid", nodes.subworkflow({ flow = "invalid.lua", output_key = "o" }))
    """)
    result = await run_parent(parent)
    assert result.failed_steps == ["broken", "invalid"]
    assert "ghost" in error_of(result, "invalid")


async def test_swf_missing_flow_parameter(tmp_path):
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("call", nodes.subworkflow({ output_key = "x" }))
    """)
    result = await run_parent(parent)
    assert error_of(result, "call") == "subworkflow requires 'flow' parameter"


async def test_sub_2_structured_child_is_cancelled_with_a_timed_out_step(tmp_path):
    write_flow(tmp_path, "slow.lua", """
        flow:step("wait", nodes.probe({ sleep = 30, label = "slow-done" }))
        flow:step("after", nodes.probe({ label = "after" })):depends_on("wait")
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("call", nodes.subworkflow({ flow = "slow.lua" })):timeout(0.3)
    """)
    start = trio.current_time()
    result = await run_parent(parent)
    assert trio.current_time() - start < 5
    assert error_of(result, "call") == "Task 'call' timed out after 0.3s total"
    assert PROBES == []  # the child's steps never finished


async def test_eng_170_run_cancellation_cancels_structured_children(tmp_path):
    write_flow(tmp_path, "slow.lua", 'flow:step("s", nodes.probe({ sleep = 30, label = "x" }))')
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("one", nodes.subworkflow({ flow = "slow.lua" }))
        flow:step("many", nodes.parallel_subworkflows({ flow = "slow.lua", source_key = "jobs" }))
        flow:step("loop", nodes.repeat_subworkflow({ flow = "slow.lua", max_iterations = 2 }))
    """)
    from ironflow_core.loading import load_flow

    executor = prepare_run(
        load_flow(str(parent), registry=REGISTRY, env={}), store=MemoryStore(),
        registry=REGISTRY, env={"IRONFLOW_MAX_CONCURRENT_TASKS": "3"},
        context={"_flow_dir": str(tmp_path), "jobs": [1, 2]},
    )
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            records = []

            async def run() -> None:
                records.append(await executor.run())

            nursery.start_soon(run)
            while RUNNING["now"] < 4:  # every child of the three steps is in its probe
                await trio.sleep(0.01)
            executor.cancel()
    assert records[0].status is RunStatus.CANCELLED
    assert RUNNING["now"] == 0 and PROBES == []
    assert {t.status for t in records[0].tasks.values()} == {"cancelled"}


async def test_swf_4_detached_child_outlives_step_and_run(tmp_path):
    write_flow(tmp_path, "bg.lua", """
        flow:step("work", nodes.probe({ sleep = 0.3, label = "background-done" }))
    """, name="bg")
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("spawn", nodes.subworkflow({ flow = "bg.lua", wait = "${ctx.wait}" }))
            :timeout(0.1)
    """)
    result = (await run_parent(parent, {"wait": "no"})).assert_succeeded()
    assert result.output("spawn") == {"subworkflow_name": "bg", "subworkflow_async": True}
    assert PROBES == [] and subflows.detached_slots.running == 1
    await trio.sleep(0.6)  # the parent run has ended; the child goes on
    assert PROBES == ["background-done"]
    assert subflows.detached_slots.running == 0


async def test_swf_4_detached_fan_out_is_capped(tmp_path):
    write_flow(tmp_path, "bg.lua", """
        flow:step("work", nodes.probe({ sleep = 0.3, label = "bg" }))
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("one", nodes.subworkflow({ flow = "bg.lua", wait = false }))
        flow:step("two", nodes.subworkflow({ flow = "bg.lua", wait = false })):depends_on("one")
    """)
    result = await run_parent(parent, env={"IRONFLOW_MAX_DETACHED_SUBWORKFLOWS": "1"})
    assert result.tasks["one"].status == "success"
    assert error_of(result, "two") == (
        "subworkflow: detached fan-out limit reached (1); refusing to spawn. Raise "
        "IRONFLOW_MAX_DETACHED_SUBWORKFLOWS or wait for in-flight flows to complete."
    )
    await trio.sleep(0.5)
    assert PROBES == ["bg"] and subflows.detached_slots.running == 0


async def test_sub_2_overlay_is_inherited_but_not_copied_into_the_child(tmp_path):
    write_flow(tmp_path, "child.lua", """
        flow:step("s", function(ctx) return { child_saw = ctx._headers.token } end)
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("call", nodes.subworkflow({ flow = "child.lua", output_key = "o" }))
    """)
    from ironflow_core.loading import load_flow

    flow = load_flow(str(parent), registry=REGISTRY, env={})
    executor = prepare_run(
        flow, store=MemoryStore(), registry=REGISTRY, env={},
        context={"_flow_dir": str(tmp_path), "_headers": {"token": "abc"}},
        overlay={"_headers": {"token": "abc"}},
    )
    record = await executor.run()
    assert record.status is RunStatus.SUCCESS, record.tasks["call"].error
    assert record.ctx["o"]["child_saw"] in ("abc", "[REDACTED]")
    assert "_headers" not in record.ctx["o"]


# -- parallel_subworkflows -------------------------------------------------------------


async def test_ps_5_static_flows_with_per_flow_output_keys(tmp_path):
    write_flow(tmp_path, "a.lua", 'flow:step("s", function() return { x = 1 } end)')
    write_flow(tmp_path, "b.lua", 'flow:step("s", function() return { y = 2 } end)')
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({
            flows = {
                { flow = "a.lua", input = {}, output_key = "result_a" },
                { flow = "b.lua", input = { n = "num" } },
            },
        }))
    """)
    result = (await run_parent(parent, {"num": 5})).assert_succeeded()
    assert result.ctx["parallel_results"] == [
        {"success": True, "flow": "a", "result_a": {"x": 1}},
        {"success": True, "flow": "b", "y": 2, "n": 5},
    ]
    assert result.ctx["parallel_results_count"] == 2
    assert result.ctx["parallel_results_errors"] == 0
    assert result.ctx["parallel_results_all_succeeded"] is True


async def test_ps_3_unknown_strings_are_literals(tmp_path):
    write_flow(tmp_path, "greet.lua", """
        flow:step("s", function(ctx) return { greeting = ctx.word .. " from " .. ctx.who } end)
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({
            flows = { { flow = "greet.lua", input = { word = "hello", who = "parent_name" } } },
            output_key = "my_results",
        }))
    """)
    result = (await run_parent(parent, {"parent_name": "parent?"})).assert_succeeded()
    assert result.ctx["my_results"][0]["greeting"] == "hello from parent?"
    assert "parallel_results" not in result.ctx
    assert result.ctx["my_results_count"] == 1


async def test_ps_1_entry_without_input_gets_the_whole_parent_context(tmp_path):
    write_flow(tmp_path, "c.lua", 'flow:step("s", function(ctx) return { twice = ctx.v * 2 } end)')
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({ flows = { { flow = "c.lua" } } }))
    """)
    result = (await run_parent(parent, {"v": 21})).assert_succeeded()
    assert result.ctx["parallel_results"] == [{"success": True, "flow": "c", "twice": 42,
                                               "v": 21}]


@pytest.mark.parametrize(("config", "expected"), [
    ("{}", "parallel_subworkflows requires either 'flows' array or dynamic 'flow' + 'source_key'"),
    ("{ flows = json_array({}) }", "parallel_subworkflows: 'flows' array must not be empty"),
    ('{ flows = "a.lua" }', "parallel_subworkflows requires 'flows' array parameter"),
    ('{ flows = { { flow = "a.lua" }, { input = {} } } }',
     "parallel_subworkflows: each flow entry requires a 'flow' field (index 1)"),
    ('{ flows = { { flow = "a.lua" } }, on_error = "retry" }',
     "parallel_subworkflows: invalid on_error 'retry'; expected 'fail_fast' or 'ignore'"),
    ('{ flows = { { flow = "a.lua" } }, max_concurrent = 0 }',
     "parallel_subworkflows: 'max_concurrent' must be greater than 0"),
    ('{ flows = { { flow = "a.lua" } }, max_concurrent = "many" }',
     "'max_concurrent' must be a non-negative whole number in u64 range"),
    ('{ flow = "a.lua" }',
     "parallel_subworkflows dynamic mode requires 'source_key' when 'flows' is not provided"),
    ('{ source_key = "items" }',
     "parallel_subworkflows dynamic mode requires 'flow' when 'flows' is not provided"),
    ('{ flow = "a.lua", source_key = "scalar" }',
     "parallel_subworkflows: source_key 'scalar' not found or not an array"),
    ('{ flows = { { flow = "missing.lua" } }, on_error = "ignore" }',
     "parallel_subworkflows: cannot find '{dir}/missing.lua': No such file or directory "
     "(os error 2)"),
])
async def test_ps_1_parameter_errors(tmp_path, config, expected):
    write_flow(tmp_path, "a.lua", 'flow:step("s", function() return {} end)')
    parent = write_flow(tmp_path, "parent.lua", f"""
        flow:step("fan", nodes.parallel_subworkflows({config}))
    """)
    result = await run_parent(parent, {"scalar": 3})
    assert error_of(result, "fan") == expected.replace("{dir}", str(tmp_path.resolve()))
    assert PROBES == []


async def test_ps_4_missing_flow_dir_fails_the_whole_node(tmp_path):
    flow = FlowDefinition(name="p", steps=(StepSpec(
        name="fan", node_type="parallel_subworkflows",
        config={"flows": [{"flow": "x.lua"}], "on_error": "ignore", "_step_name": "fan"}),))
    result = await arun_flow(flow, registry=REGISTRY, env={})
    assert error_of(result, "fan") == (
        "parallel_subworkflows: cannot resolve relative path 'x.lua' — _flow_dir not set"
    )


async def test_ps_4_paths_resolve_before_any_child_starts(tmp_path):
    write_flow(tmp_path, "ok.lua", 'flow:step("s", nodes.probe({ label = "ran" }))')
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({
            flows = { { flow = "ok.lua" }, { flow = "gone.lua" } }, on_error = "ignore" }))
    """)
    result = await run_parent(parent)
    assert "cannot find" in error_of(result, "fan")
    assert PROBES == []


async def test_ps_5_6_failures_are_per_child_and_collected_on_ignore(tmp_path):
    write_flow(tmp_path, "ok.lua", 'flow:step("s", function() return { fine = true } end)')
    write_flow(tmp_path, "fail.lua", FAILING_CHILD, name="failing")
    (tmp_path / "broken.lua").write_text("return 42", encoding="utf-8")
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({
            flows = { { flow = "ok.lua" }, { flow = "fail.lua", input = {} },
                      { flow = "broken.lua" } },
            on_error = "ignore",
        }))
    """)
    result = (await run_parent(parent)).assert_succeeded()
    ok, failed, broken = result.ctx["parallel_results"]
    assert ok == {"success": True, "flow": "ok", "fine": True}
    assert failed == {"success": False, "flow": "failing",
                      "error": "Subworkflow 'failing' (index 1) finished with status: failed"}
    assert broken["success"] is False and broken["flow"] == "broken.lua"
    assert broken["error"].startswith("Subworkflow at index 2 failed: ")
    assert result.ctx["parallel_results_count"] == 3
    assert result.ctx["parallel_results_errors"] == 2
    assert result.ctx["parallel_results_all_succeeded"] is False


async def test_ps_6_fail_fast_waits_for_every_child_then_fails(tmp_path):
    write_flow(tmp_path, "slow.lua", 'flow:step("s", nodes.probe({ sleep = 0.3, label = "slow" }))')
    write_flow(tmp_path, "fail.lua", FAILING_CHILD, name="failing")
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({
            flows = { { flow = "fail.lua" }, { flow = "slow.lua" }, { flow = "fail.lua" } } }))
    """)
    result = await run_parent(parent)
    assert error_of(result, "fan") == (
        "parallel_subworkflows: 2 flow(s) failed:\n"
        "Subworkflow 'failing' (index 0) finished with status: failed\n"
        "Subworkflow 'failing' (index 2) finished with status: failed"
    )
    assert PROBES == ["slow"]  # PS-4: the slow child was not abandoned


async def test_ps_2_dynamic_fan_out_injects_item_and_index(tmp_path):
    write_flow(tmp_path, "item.lua", """
        flow:step("s", function(ctx)
            return { label = ctx.item.name, position = ctx.index, prefix = ctx.prefix }
        end)
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({
            flow = "item.lua", source_key = "items", input = { prefix = "shared_prefix" } }))
    """)
    result = (await run_parent(parent, {
        "shared_prefix": "batch", "items": [{"name": "first"}, {"name": "second"}],
    })).assert_succeeded()
    first, second = result.ctx["parallel_results"]
    assert (first["label"], first["position"], first["prefix"]) == ("first", 1, "batch")
    assert (second["label"], second["position"]) == ("second", 2)
    assert result.ctx["parallel_results_all_succeeded"] is True


async def test_ps_2_custom_keys_child_output_key_and_string_items(tmp_path):
    write_flow(tmp_path, "job.lua", """
        flow:step("s", function(ctx) return { value = ctx.job, ordinal = ctx.n } end)
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({
            flow = "job.lua", source_key = "jobs", item_key = "job", index_key = "n",
            child_output_key = "child", output_key = "job_results" }))
    """)
    result = (await run_parent(parent, {"jobs": [7, "lucky", "plain"], "lucky": 8}))
    result.assert_succeeded()
    entries = result.ctx["job_results"]
    assert [e["child"]["value"] for e in entries] == [7, 8, "plain"]  # PS-3 on items
    assert [e["child"]["ordinal"] for e in entries] == [1, 2, 3]
    assert entries[0]["flow"] == "job" and result.ctx["job_results_count"] == 3


async def test_ps_2_empty_source_yields_no_children(tmp_path):
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({ flow = "x.lua", source_key = "jobs" }))
    """)
    result = (await run_parent(parent, {"jobs": []})).assert_succeeded()
    assert result.output("fan") == {
        "parallel_results": [], "parallel_results_count": 0,
        "parallel_results_errors": 0, "parallel_results_all_succeeded": True,
    }


async def test_ps_4_max_concurrent_bounds_running_children(tmp_path):
    write_flow(tmp_path, "w.lua", 'flow:step("s", nodes.probe({ sleep = 0.1 }))')
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({
            flow = "w.lua", source_key = "jobs", max_concurrent = "${ctx.limit}" }))
    """)
    result = await run_parent(parent, {"jobs": [1, 2, 3, 4, 5], "limit": 2})
    result.assert_succeeded()
    assert len(PROBES) == 5 and RUNNING["peak"] == 2
    RUNNING.update(peak=0)
    result = await run_parent(parent, {"jobs": [1, 2, 3, 4, 5], "limit": 5})
    assert RUNNING["peak"] == 5


async def test_ps_children_are_cancelled_with_the_step(tmp_path):
    write_flow(tmp_path, "slow.lua", """
        flow:step("s", nodes.probe({ sleep = 30, label = "never" }))
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("fan", nodes.parallel_subworkflows({
            flows = { { flow = "slow.lua" }, { flow = "slow.lua" } } })):timeout(0.3)
    """)
    start = trio.current_time()
    result = await run_parent(parent)
    assert trio.current_time() - start < 5
    assert error_of(result, "fan") == "Task 'fan' timed out after 0.3s total"
    assert PROBES == []


# -- repeat_subworkflow ----------------------------------------------------------------

COUNTER = """
flow:step("advance", function(ctx)
    local next_value = (ctx.loop_state or 0) + 1
    return {
        next_value = next_value,
        finished = next_value >= 3,
        observed_iteration = ctx.turn,
        static_label = ctx.label,
        _private_value = "do-not-publish"
    }
end)
"""


async def test_rs_2_3_carries_only_explicit_state_until_completion(tmp_path):
    write_flow(tmp_path, "counter.lua", COUNTER, name="counter")
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("loop", nodes.repeat_subworkflow({
            flow = "counter.lua",
            input = { loop_state = "seed", label = "label" },
            state_key = "loop_state", next_state_key = "next_value",
            until_key = "finished", iteration_key = "turn",
            max_iterations = 4, output_key = "loop",
        }))
    """)
    result = await run_parent(parent, {"seed": 1, "label": "kept", "unmapped": "excluded"})
    out = result.assert_succeeded().output("loop")
    assert out["loop_iterations"] == 2 and out["loop_completed"] is True
    assert out["loop_state"] == 3 and out["loop_flow"] == "counter"
    assert out["loop"]["observed_iteration"] == 2 and out["loop"]["static_label"] == "kept"
    assert "unmapped" not in out["loop"] and "_private_value" not in out["loop"]
    assert set(out) == {"loop", "loop_state", "loop_iterations", "loop_completed", "loop_flow"}


async def test_rs_4_completes_on_first_iteration_without_state(tmp_path):
    write_flow(tmp_path, "once.lua", """
        flow:step("done", function(ctx)
            return { repeat_done = true, result = ctx.repeat_iteration }
        end)
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("r", nodes.repeat_subworkflow({ flow = "once.lua", max_iterations = 1 }))
    """)
    result = (await run_parent(parent, {"extra": 1})).assert_succeeded()
    out = result.output("r")
    assert out["repeat_result_iterations"] == 1
    assert out["repeat_result_state"] is None
    assert out["repeat_result"]["result"] == 1
    assert out["repeat_result"]["extra"] == 1  # no input: the parent context is copied
    assert out["repeat_result_flow"] == "once"


async def test_rs_4_exhaustion_missing_boolean_and_missing_next_state(tmp_path):
    write_flow(tmp_path, "never.lua", """
        flow:step("c", function(ctx)
            return { repeat_done = false, repeat_next_state = (ctx.repeat_state or 0) + 1 }
        end)
    """)
    write_flow(tmp_path, "no_done.lua", 'flow:step("w", function() return { value = 1 } end)')
    write_flow(tmp_path, "no_state.lua",
               'flow:step("w", function() return { repeat_done = false } end)')
    write_flow(tmp_path, "fail.lua", FAILING_CHILD, name="failing")
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("never", nodes.repeat_subworkflow({ flow = "never.lua", max_iterations = 2 }))
        flow:step("no_done", nodes.repeat_subworkflow({ flow = "no_done.lua", max_iterations = 2 }))
        flow:step("no_state", nodes.repeat_subworkflow({ flow = "no_state.lua", max_iterations = 2 }))
        flow:step("fail", nodes.repeat_subworkflow({ flow = "fail.lua", max_iterations = 2 }))
    """)
    result = await run_parent(parent)
    assert error_of(result, "never") == (
        "repeat_subworkflow: child 'never' did not set 'repeat_done' to true within "
        "max_iterations (2)"
    )
    assert error_of(result, "no_done") == (
        "repeat_subworkflow: child iteration 1 must return boolean 'repeat_done'"
    )
    assert error_of(result, "no_state") == (
        "repeat_subworkflow: child 'no_state' iteration 1 returned false in 'repeat_done' "
        "but omitted 'repeat_next_state'"
    )
    assert error_of(result, "fail") == (
        "repeat_subworkflow: child 'failing' iteration 1 finished with status: failed"
    )


@pytest.mark.parametrize(("config", "expected"), [
    ('{ flow = "x.lua" }', "repeat_subworkflow requires 'max_iterations'"),
    ('{ max_iterations = 1 }', "repeat_subworkflow requires non-empty 'flow'"),
    ('{ flow = "", max_iterations = 1 }', "repeat_subworkflow requires non-empty 'flow'"),
    ('{ flow = "x.lua", max_iterations = 0 }',
     "repeat_subworkflow: 'max_iterations' must be greater than 0"),
    ('{ flow = "x.lua", max_iterations = 1025 }',
     "repeat_subworkflow: max_iterations 1025 exceeds process limit of 128 "
     "(IRONFLOW_MAX_REPEAT_ITERATIONS)"),
    ('{ flow = "x.lua", max_iterations = 1.5 }',
     "'max_iterations' must be a non-negative whole number in u64 range"),
    ('{ flow = "x.lua", max_iterations = 1, state_key = "same", until_key = "same" }',
     "repeat_subworkflow: 'state_key' and 'until_key' must be distinct"),
    ('{ flow = "x.lua", max_iterations = 1, output_key = "" }',
     "repeat_subworkflow: 'output_key' must be a non-empty string"),
    ('{ flow = "x.lua", max_iterations = 1, input = { repeat_done = false } }',
     "repeat_subworkflow: input cannot set reserved child key 'repeat_done'"),
    ('{ flow = "x.lua", max_iterations = 1, input = "whole" }',
     "repeat_subworkflow: 'input' must be an object"),
    ('{ flow = "x.lua", max_iterations = 1, delay_seconds = -1 }',
     "repeat_subworkflow: 'delay_seconds' must be non-negative"),
    ('{ flow = "x.lua", max_iterations = 1, backoff_factor = 0.5 }',
     "repeat_subworkflow: 'backoff_factor' must be at least 1"),
    ('{ flow = "x.lua", max_iterations = 1, delay_seconds = 5, max_delay_seconds = 1 }',
     "repeat_subworkflow: 'max_delay_seconds' must be at least 'delay_seconds'"),
    ('{ flow = "x.lua", max_iterations = 1, max_delay_seconds = 3601 }',
     "repeat_subworkflow: 'max_delay_seconds' cannot exceed 3600"),
    ('{ flow = "x.lua", max_iterations = 1, delay_seconds = "soon" }',
     "'delay_seconds' must be a finite number"),
    ('{ flow = "x.lua", max_iterations = 1 }',
     "repeat_subworkflow: cannot resolve relative path 'x.lua' — _flow_dir not set"),
])
async def test_rs_1_parameter_validation(config, expected):
    flow_text = f"""
        local flow = Flow.new("p")
        flow:step("r", nodes.repeat_subworkflow({config}))
        return flow
    """
    result = await arun_flow(flow_text, registry=REGISTRY, env={})
    assert error_of(result, "r") == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("0", "IRONFLOW_MAX_REPEAT_ITERATIONS must be between 1 and 1024"),
    ("1025", "IRONFLOW_MAX_REPEAT_ITERATIONS must be between 1 and 1024"),
    ("ten", "IRONFLOW_MAX_REPEAT_ITERATIONS must be a positive whole number"),
    ("2", "repeat_subworkflow: max_iterations 3 exceeds process limit of 2 "
          "(IRONFLOW_MAX_REPEAT_ITERATIONS)"),
])
async def test_rs_1_process_cap_from_the_environment(value, expected):
    flow_text = """
        local flow = Flow.new("p")
        flow:step("r", nodes.repeat_subworkflow({ flow = "x.lua", max_iterations = 3 }))
        return flow
    """
    result = await arun_flow(flow_text, registry=REGISTRY,
                             env={"IRONFLOW_MAX_REPEAT_ITERATIONS": value})
    assert error_of(result, "r") == expected


async def test_rs_4_delay_grows_by_backoff_up_to_the_maximum(tmp_path, autojump_clock,
                                                               monkeypatch):
    # Lua runs in worker threads; while trio waits for one, the autojump clock jumps to
    # the next deadline, which would be the lease renewal (ST-50): park it.
    monkeypatch.setattr(lease, "RENEW_EVERY_SECONDS", math.inf)
    write_flow(tmp_path, "tick.lua", """
        flow:step("t", nodes.probe({ label = "tick" }))
        flow:step("decide", function(ctx)
            return { repeat_done = ctx.repeat_iteration == 4,
                     repeat_next_state = ctx.repeat_iteration }
        end):depends_on("t")
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("r", nodes.repeat_subworkflow({
            flow = "tick.lua", max_iterations = 4,
            delay_seconds = 10, backoff_factor = 2, max_delay_seconds = 30 }))
    """)
    start = trio.current_time()
    result = (await run_parent(parent)).assert_succeeded()
    elapsed = trio.current_time() - start
    assert result.ctx["repeat_result_iterations"] == 4 and result.ctx["repeat_result_state"] == 4
    assert PROBES == ["tick"] * 4
    assert elapsed == pytest.approx(60)  # pauses of 10, 20 and 30 (capped) seconds


async def test_rs_nested_inside_a_subworkflow_child(tmp_path):
    write_flow(tmp_path, "counter.lua", """
        flow:step("advance", function(ctx)
            local value = (ctx.repeat_state or 0) + 1
            return { repeat_next_state = value, repeat_done = value == 2 }
        end)
    """)
    write_flow(tmp_path, "outer.lua", """
        flow:step("loop", nodes.repeat_subworkflow({
            flow = "counter.lua", max_iterations = 2, output_key = "nested_loop" }))
    """)
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("call", nodes.subworkflow({
            flow = "outer.lua", output_key = "outer_result", on_error = "fail_fast" }))
    """)
    result = (await run_parent(parent)).assert_succeeded()
    assert result.ctx["outer_result"]["nested_loop_iterations"] == 2
    assert result.ctx["outer_result"]["nested_loop_state"] == 2


async def test_rs_iteration_is_cancelled_with_the_step(tmp_path):
    write_flow(tmp_path, "slow.lua", 'flow:step("s", nodes.probe({ sleep = 30, label = "x" }))')
    parent = write_flow(tmp_path, "parent.lua", """
        flow:step("r", nodes.repeat_subworkflow({ flow = "slow.lua", max_iterations = 3 }))
            :timeout(0.3)
    """)
    result = await run_parent(parent)
    assert error_of(result, "r") == "Task 'r' timed out after 0.3s total"
    assert PROBES == []


# -- registration ----------------------------------------------------------------------


def test_appendix_b_summaries_and_config_classes():
    nodes = REGISTRY.nodes
    assert nodes["subworkflow"].summary == "Load and execute another .lua flow as a reusable module"
    assert nodes["parallel_subworkflows"].summary == (
        "Execute multiple subworkflows concurrently and collect their results"
    )
    assert nodes["repeat_subworkflow"].summary == (
        "Repeat a child workflow with explicit bounded state until it completes"
    )
    for name in ("subworkflow", "parallel_subworkflows", "repeat_subworkflow"):
        assert nodes[name].config is not None


def test_detached_capacity_reads_the_run_environment():
    assert subflows.detached_capacity({}) == 64
    assert subflows.detached_capacity({"IRONFLOW_MAX_DETACHED_SUBWORKFLOWS": "3"}) == 3
    assert subflows.detached_capacity({"IRONFLOW_MAX_DETACHED_SUBWORKFLOWS": "0"}) == 64
    assert subflows.detached_capacity({"IRONFLOW_MAX_DETACHED_SUBWORKFLOWS": "x"}) == 64


def test_resolve_flow_path_rules(tmp_path):
    (tmp_path / "f.lua").write_text("", encoding="utf-8")
    assert subflows.resolve_flow_path("n", "f.lua", str(tmp_path)) == str(
        (tmp_path / "f.lua").resolve())
    assert subflows.resolve_flow_path("n", str(tmp_path / "f.lua"), None) == str(
        (tmp_path / "f.lua").resolve())
    with pytest.raises(NodeError, match="_flow_dir not set"):
        subflows.resolve_flow_path("n", "f.lua", 42)
