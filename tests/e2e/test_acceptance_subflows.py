"""semantics.md#acceptance acceptance for the composition nodes, through the real CLI.

The flows under ``subflows/`` are our own, reproducing the behaviours of the
upstream ``11-subworkflow`` examples and ``02-data-transforms/foreach_function``;
each test checks the context the contract lists for its example.
"""

from __future__ import annotations

from pathlib import Path

from .cli_helpers import run_json

SUBFLOWS = Path(__file__).parent / "subflows"


def run_subflow(name: str, tmp_path: Path, context: dict | None = None):
    return run_json(str(SUBFLOWS / name), tmp_path, context)


def test_basic_subworkflow_merges_the_child_result(tmp_path):
    code, record, stderr = run_subflow("basic_subworkflow.lua", tmp_path)
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["name"] == "IronFlow"
    assert ctx["greeting"] == "Hello, IronFlow!"
    assert ctx["subworkflow_name"] == "greet"
    assert ctx["subworkflow_success"] is True
    assert ctx["log_message"] == "Child said: Hello, IronFlow!"


def test_greet_child_runs_alone_with_its_default(tmp_path):
    code, record, _ = run_subflow("greet.lua", tmp_path)
    assert code == 0
    assert record["ctx"]["greeting"] == "Hello, World!"


def test_fire_and_forget_returns_at_once_without_child_output(tmp_path):
    code, record, stderr = run_subflow("fire_and_forget.lua", tmp_path)
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["subworkflow_name"] == "greet"
    assert ctx["subworkflow_async"] is True
    assert "greeting" not in ctx  # SWF-4: a detached child's output is discarded
    assert ctx["log_message"] == "Started greet in the background"


def test_on_error_example_recovers_and_succeeds(tmp_path):
    code, record, stderr = run_subflow("on_error_example.lua", tmp_path)
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert record["tasks"]["risky_step"]["status"] == "failed"
    assert ctx["error_handled"] is True
    assert ctx["error_info"].startswith(
        "[workflow-log] Caught error in step 'risky_step': "
        "Task 'risky_step' failed after 1 attempts: "
    )
    assert record["tasks"]["final"]["status"] == "success"


def test_parallel_subworkflows_literal_inputs(tmp_path):
    code, record, stderr = run_subflow("parallel_subworkflows.lua", tmp_path)
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["parallel_results"] == [
        {"success": True, "flow": "greet",
         "greeting_a": {"greeting": "Hello, Alice!", "name": "Alice"}},
        {"success": True, "flow": "greet",
         "greeting_b": {"greeting": "Hello, Bob!", "name": "Bob"}},
    ]
    assert ctx["parallel_results_count"] == 2
    assert ctx["parallel_results_errors"] == 0
    assert ctx["total"] == 2
    assert ctx["all_ok"] is True


def test_repeat_subworkflow_counts_to_three(tmp_path):
    code, record, stderr = run_subflow("repeat_subworkflow.lua", tmp_path)
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["counter_state"] == {"value": 3}
    assert ctx["counter_iterations"] == 3
    assert ctx["counter_completed"] is True
    assert ctx["counter_flow"] == "repeat_counter_subworkflow"
    assert ctx["counter"]["current_value"] == 3
    assert ctx["counter"]["observed_iteration"] == 3
    assert ctx["log_message"] == "Counter reached 3 after 3 iterations"


def test_repeat_counter_child_needs_a_target(tmp_path):
    code, record, _ = run_subflow("repeat_counter_subworkflow.lua", tmp_path)
    assert code == 1 and record["status"] == "failed"  # comparison with nil
    code, record, _ = run_subflow("repeat_counter_subworkflow.lua", tmp_path, {"target": 1})
    assert code == 0
    assert record["ctx"]["repeat_done"] is True
    assert record["ctx"]["repeat_next_state"] == {"value": 1}


def test_foreach_function_keeps_float_totals(tmp_path):
    code, record, stderr = run_subflow("foreach_function.lua", tmp_path)
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["line_items"] == [
        {"line": 1, "name": "WIDGET", "total": 31.5},
        {"line": 2, "name": "GADGET", "total": 25.0},
        {"line": 3, "name": "DOOHICKEY", "total": 57.5},
    ]
    assert isinstance(ctx["line_items"][1]["total"], float)  # JSON-2: 25.0 stays a float
    assert isinstance(ctx["line_items"][0]["line"], int)
    assert ctx["line_items_count"] == 3
    assert ctx["log_message"] == "Built 3 line items"
