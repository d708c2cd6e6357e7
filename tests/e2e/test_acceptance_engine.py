"""semantics.md#acceptance acceptance for the engine's own nodes, through the real CLI.

The flows under ``flows/`` are our own, written to exercise the behaviours the
upstream examples pin; each test names the example and checks the context the
contract lists.
"""

from __future__ import annotations

import re

import pytest

from .cli_helpers import FLOWS, ironflow, run_json

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_hello_world_renders_and_logs(tmp_path):
    code, record, stderr = run_json("greeting.lua", tmp_path, {"user_name": "Alice"})
    assert code == 0 and record["status"] == "success"
    assert record["ctx"]["greeting"] == "Welcome, Alice! Today is a great day."
    assert record["ctx"]["log_message"] == "Rendered greeting: Welcome, Alice! Today is a great day."
    assert "Rendered greeting: Welcome, Alice!" in stderr  # log output goes to stderr (CLI-2)


def test_hello_world_without_context_renders_empty(tmp_path):
    code, record, _ = run_json("greeting.lua", tmp_path)
    assert code == 0
    assert record["ctx"]["greeting"] == "Welcome, ! Today is a great day."


def test_context_passing(tmp_path):
    _, record, _ = run_json("names.lua", tmp_path, {"first_name": "John", "last_name": "Doe"})
    assert record["ctx"]["greeting"] == "Hello, John Doe!"
    assert record["ctx"]["log_message"] == "Generated: Hello, John Doe!"


def test_lua_and_base64_globals(tmp_path):
    code, record, _ = run_json("globals.lua", tmp_path)
    ctx = record["ctx"]
    assert code == 0
    assert UUID.match(ctx["request_id"])
    assert ctx["created_at"].endswith("+00:00")
    assert isinstance(ctx["epoch_ms"], int)
    assert ctx["serialized"] == '{"name":"Alice","roles":["admin","editor"]}'
    assert ctx["parsed_score"] == 42 and isinstance(ctx["parsed_score"], int)
    assert ctx["parsed_active"] is True
    assert ctx["encoded"] == "SGVsbG8sIElyb25GbG93IQ=="
    assert ctx["decoded"] == "Hello, IronFlow!" and ctx["roundtrip_ok"] is True


def test_parallel_execution_and_strict_validation(tmp_path):
    _, record, _ = run_json("parallel.lua", tmp_path)
    assert record["ctx"]["task_a_result"] == "A complete"
    assert record["ctx"]["task_b_result"] == "B complete"
    assert record["ctx"]["log_message"] == "A complete; B complete"
    proc = ironflow("validate", "--strict", str(FLOWS / "parallel.lua"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation: OK" in proc.stdout


def test_retries_and_timeout_expected_failure(tmp_path):
    code, record, stderr = run_json("timeout.lua", tmp_path)
    assert code == 1
    assert record["status"] == "failed"
    assert record["tasks"]["slow_task"]["error"] == "Task 'slow_task' timed out after 0.5s total"
    assert record["tasks"]["after_slow"]["status"] == "skipped"
    assert record["tasks"]["independent"]["status"] == "success"
    assert record["ctx"]["log_message"] == "I run independently!"
    assert f"Error: Workflow run {record['id']} finished with status failed" in stderr


@pytest.mark.parametrize(("amount", "message", "route"), [
    (250, "High-value order: $250 — applying VIP discount", "high_value"),
    (50, "Standard order: $50", "standard"),
    (None, "Standard order: $", "standard"),
])
def test_conditional_routing(tmp_path, amount, message, route):
    context = {} if amount is None else {"amount": amount}
    code, record, _ = run_json("routing.lua", tmp_path, context)
    assert code == 0
    assert record["ctx"]["_route_check_amount"] == route
    assert record["ctx"]["log_message"] == message
    skipped = "standard_order" if route == "high_value" else "high_value_order"
    assert record["tasks"][skipped]["status"] == "skipped"


def test_step_if_true_branches(tmp_path):
    _, record, _ = run_json("guarded.lua", tmp_path, {"score": 80, "vip": True, "name": "Alice"})
    ctx = record["ctx"]
    assert ctx["_route__if_bonus"] == "true"
    assert ctx["greeting"] == "Welcome back, VIP Alice!"
    assert ctx["log_message"] == "Bonus unlocked! Score: 80"  # phase 1 beats 'done' in phase 0


def test_step_if_false_branches_skip(tmp_path):
    code, record, _ = run_json("guarded.lua", tmp_path, {"score": 30, "vip": False})
    assert code == 0
    assert record["tasks"]["greet_vip"]["status"] == "skipped"
    assert record["tasks"]["bonus"]["status"] == "skipped"
    assert record["tasks"]["_if_bonus"]["status"] == "success"
    assert record["ctx"]["log_message"] == "Processing complete"


@pytest.mark.parametrize(("tier", "handled"), [
    ("pro", "pro"), ("enterprise", "enterprise"), ("gold", "free"), (None, "free"),
])
def test_switch_routing(tmp_path, tier, handled):
    _, record, _ = run_json("switch.lua", tmp_path, {} if tier is None else {"tier": tier})
    assert record["ctx"]["handled"] == handled
    assert record["ctx"]["_switch_value_check_tier"] == (tier or "")


def test_function_handler(tmp_path):
    _, record, _ = run_json("admins.lua", tmp_path)
    assert record["ctx"]["admins"] == [{"age": 30, "name": "ALICE"}, {"age": 35, "name": "CHARLIE"}]
    assert record["ctx"]["admin_count"] == 2
    assert record["ctx"]["log_message"] == "Found 2 admins"


def test_eng_115_recovery_makes_run_succeed(tmp_path):
    code, record, _ = run_json("recovery.lua", tmp_path)
    assert code == 0 and record["status"] == "success"
    assert record["tasks"]["risky"]["status"] == "failed"
    assert record["tasks"]["final"]["status"] == "success"
    ctx = record["ctx"]
    assert ctx["caught"] is True
    assert ctx["seen_step"] == "risky" and ctx["seen_type"] == "code"
    assert ctx["seen_message"].startswith("Task 'risky' failed after 1 attempts: ")
    assert "disk on fire" in ctx["seen_message"]
    assert not [k for k in ctx if k.startswith("_error")]


def test_env_is_read_at_load_time_and_obeys_allowlist(tmp_path):
    _, record, _ = run_json("envread.lua", tmp_path, {"db_url": "sqlite://example.db"},
                            env={"APP_NAME": "demo"})
    assert record["ctx"]["connection_info"] == "Connecting to sqlite://example.db"
    assert record["ctx"]["log_message"] == "APP_NAME=demo, API_KEY=NOT SET"
    _, record, _ = run_json("envread.lua", tmp_path, env={"APP_NAME": "demo",
                                                          "IRONFLOW_ENV_ALLOWLIST": "OTHER"})
    assert record["ctx"]["log_message"] == "APP_NAME=NOT SET, API_KEY=NOT SET"
