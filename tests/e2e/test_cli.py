"""The ``ironflow`` command (semantics.md#cli), driven as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .cli_helpers import FLOWS, ironflow


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_cli_1_version_help_and_usage_errors():
    proc = ironflow("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == "ironflow 0.1.0"
    assert ironflow("--help").returncode == 0
    bad = ironflow("run", "--no-such-flag", "x.lua")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_cli_21_24_25_text_output(tmp_path):
    proc = ironflow("run", str(FLOWS / "greeting.lua"), "-v", "--store-dir", str(tmp_path),
                    "--context", '{"user_name": "Ada"}')
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("Flow: greeting (2 steps)\n\nSteps:\n")
    assert "  say [log] deps: render\n" in out
    assert "Status: success" in out and "Run ID: " in out
    assert "  ✓ render [template_render] (attempt 1)" in out
    assert "    Duration: " in out and '    Output: {"greeting":' in out
    context = json.loads(out.split("Context:\n", 1)[1])
    assert context == {"greeting": "Welcome, Ada! Today is a great day.",
                       "log_message": "Rendered greeting: Welcome, Ada! Today is a great day.",
                       "user_name": "Ada"}  # every non-_ key, initial ones included


def test_cli_26_failed_run_exits_1_and_reports_cyclic_table(tmp_path):
    flow = write(tmp_path, "fail.lua", """
local flow = Flow.new("fails")
flow:step("boom", nodes.code({ source = "error('intentional failure')" }))
flow:step("cyclic", function(ctx) local t = {} t.self = t return t end)
return flow
""")
    proc = ironflow("run", flow, "--store-dir", str(tmp_path / "runs"))
    assert proc.returncode == 1
    assert "Status: failed" in proc.stdout
    assert "intentional failure" in proc.stdout
    assert "cyclic Lua table at $.self" in proc.stdout
    assert "finished with status failed" in proc.stderr


@pytest.mark.parametrize(("source", "fragment"), [
    ("local flow = Flow.new('x')\nflow:step('a', nodes.log({})\nreturn flow", "bad.lua:3: "),
    ("local flow = Flow.new('x')", "must return the flow"),
    ("local flow = Flow.new('x')\nflow:step('a', nodes.nope({}))\nreturn flow",
     "Unknown node type 'nope' at "),
    ("local f = Flow.new('x')\nf:step('a', nodes.log({})):depends_on('b')\n"
     "f:step('b', nodes.log({})):depends_on('a')\nreturn f", "Error: Invalid flow: Cycle"),
    ("local f = Flow.new('x')\nf:step('a', nodes.log({message='${ctx.}'}))\nreturn f",
     "invalid context interpolation"),
    ("local f = Flow.new('x')\nf:step('a', nodes.template_render({template=5, output_key='k'}))\n"
     "return f", "Step 'a'"),
])
def test_bad_flows_give_one_clear_error_and_no_run(tmp_path, source, fragment):
    flow = write(tmp_path, "bad.lua", source)
    store = tmp_path / "runs"
    proc = ironflow("run", flow, "--store-dir", str(store))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("Error: ") or "\nError: " in proc.stderr
    assert fragment in proc.stderr
    assert not store.exists() or not list(store.glob("*.json"))


def test_load_error_names_file_and_line(tmp_path):
    flow = write(tmp_path, "syntax.lua", "local flow = Flow.new('x')\n\nflow:step('a', )\nreturn flow")
    proc = ironflow("run", flow)
    assert proc.returncode == 1
    assert f"Error: Failed to evaluate flow file '{flow}': {flow}:3: " in proc.stderr
    assert ":3:" in proc.stderr


def test_cli_22_context_must_be_an_object(tmp_path):
    proc = ironflow("run", str(FLOWS / "greeting.lua"), "--context", "[1]",
                    "--store-dir", str(tmp_path))
    assert proc.returncode == 1 and "Failed to parse --context JSON" in proc.stderr


def test_context_file(tmp_path):
    ctx_file = write(tmp_path, "ctx.json", '{"user_name": "File"}')
    proc = ironflow("run", str(FLOWS / "greeting.lua"), "--context-file", ctx_file,
                    "--store-dir", str(tmp_path / "runs"), "--format", "json")
    assert json.loads(proc.stdout)["ctx"]["greeting"].startswith("Welcome, File!")


def test_cli_30_31_validate_ok_lists_declaration_order():
    proc = ironflow("validate", str(FLOWS / "greeting.lua"))
    assert proc.returncode == 0
    assert proc.stdout == (
        "Flow: greeting\nSteps: 2\nValidation: OK\n\nExecution order:\n"
        "  render [template_render] (no dependencies)\n  say [log] depends on: render\n"
    )


def test_cli_32_validate_failed_and_strict_warnings(tmp_path):
    bad = write(tmp_path, "bad.lua",
                "local f = Flow.new('x')\nf:step('a', nodes.log({})):depends_on('ghost')\nreturn f")
    proc = ironflow("validate", bad)
    assert proc.returncode == 1
    assert "Validation: FAILED" in proc.stdout
    assert "  - Step 'a' depends on 'ghost', which does not exist" in proc.stdout
    assert "Error: 1 validation error(s) and 0 strict warning(s) found" in proc.stderr
    warn = write(tmp_path, "warn.lua", "local f = Flow.new('w')\n"
                 "f:step('a', function(ctx) return { x = undefined_thing } end)\nreturn f")
    loose = ironflow("validate", warn)
    assert loose.returncode == 0 and "[undefined_global]" in loose.stdout
    strict = ironflow("validate", "--strict", warn)
    assert strict.returncode == 1
    assert "strict validation rejected 1 warning(s)" in strict.stdout


def test_cli_40_nodes_table_and_json():
    proc = ironflow("nodes")
    lines = proc.stdout.splitlines()
    assert lines[0] == f"{'NODE TYPE':<20} DESCRIPTION" and lines[1] == "-" * 60
    assert lines[-1].startswith("Total: ") and lines[-1].endswith(" node(s)")
    data = json.loads(ironflow("nodes", "--format", "json").stdout)
    names = [n["name"] for n in data]
    assert names == sorted(names)
    assert {"log", "code", "template_render", "if_node"} <= set(names)
    assert all(set(n) == {"name", "plugin", "description"} for n in data)


def test_plugins_json_lists_siblings_active():
    data = json.loads(ironflow("plugins", "--format", "json").stdout)
    by_name = {p["name"]: p for p in data}
    for name in ("nodes-http", "nodes-shell", "nodes-fs", "store-redis"):
        assert by_name[name]["status"] == "active", by_name[name]


def test_cli_53_list_pages_and_inspect(tmp_path):
    store = tmp_path / "runs"
    ids = []
    for _ in range(3):
        proc = ironflow("run", str(FLOWS / "greeting.lua"), "--store-dir", str(store),
                        "--format", "json")
        ids.append(json.loads(proc.stdout)["id"])
    page = json.loads(ironflow("list", "--store-dir", str(store), "--format", "json",
                               "--limit", "2").stdout)
    assert page["returned"] == 2 and page["has_more"] is True and page["limit"] == 2
    assert [r["id"] for r in page["runs"]] == ids[::-1][:2]
    rest = json.loads(ironflow("list", "--store-dir", str(store), "--format", "json",
                               "--limit", "2", "--after", page["next_cursor"]).stdout)
    assert [r["id"] for r in rest["runs"]] == [ids[0]] and rest["has_more"] is False
    table = ironflow("list", "--store-dir", str(store), "--limit", "2").stdout
    assert "RUN ID" in table and "More runs are available. Continue with --after " in table
    shown = json.loads(ironflow("inspect", ids[0], "--store-dir", str(store)).stdout)
    assert shown["id"] == ids[0] and set(shown) == {
        "id", "flow_name", "status", "started", "finished", "ctx", "tasks"}


def test_cli_50_list_input_errors(tmp_path):
    for args in (("--status", "nope"), ("--format", "xml"), ("--format", "text"),
                 ("--limit", "0")):
        usage = ironflow("list", *args, "--store-dir", str(tmp_path))
        assert usage.returncode == 2, (args, usage.stderr)
        assert "Traceback" not in usage.stderr and "Usage: ironflow list" in usage.stderr
    assert "'nope' is not one of 'pending'" in ironflow("list", "--status", "nope").stderr
    assert "--limit must be greater than zero" in ironflow("list", "--limit", "0").stderr
    over = ironflow("list", "--limit", "101", "--store-dir", str(tmp_path))
    assert "requested list limit 101 exceeds IRONFLOW_MAX_LIST_RECORDS (100)" in over.stderr
    bad = ironflow("list", env={"IRONFLOW_MAX_LIST_RECORDS": "0"})
    assert bad.stderr == ("Error: Invalid value '0' for IRONFLOW_MAX_LIST_RECORDS "
                          "(environment): expected a positive integer\n")


def test_cli_60_inspect_errors(tmp_path):
    assert "Invalid run ID" in ironflow("inspect", "run.id", "--store-dir", str(tmp_path)).stderr
    missing = ironflow("inspect", "nope123", "--store-dir", str(tmp_path))
    assert missing.returncode == 1 and "Run 'nope123' not found" in missing.stderr


def test_cli_10_dotenv_first_wins_never_overrides(tmp_path):
    envfile = write(tmp_path, "custom.env", "APP_NAME=fromfile\nAPP_NAME=second\nAPI_KEY=x\n")
    proc = ironflow("--dotenv", envfile, "run", str(FLOWS / "envread.lua"), "--format", "json",
                    "--store-dir", str(tmp_path / "r"))
    assert json.loads(proc.stdout)["ctx"]["log_message"] == "APP_NAME=fromfile, API_KEY=SET"
    proc = ironflow("run", str(FLOWS / "envread.lua"), "--dotenv", envfile, "--format", "json",
                    "--store-dir", str(tmp_path / "r"), env={"APP_NAME": "process"})
    assert json.loads(proc.stdout)["ctx"]["log_message"] == "APP_NAME=process, API_KEY=SET"
    missing = ironflow("--dotenv", str(tmp_path / "none.env"), "nodes")
    assert missing.returncode == 1 and "Dotenv file is not accessible" in missing.stderr
    bad = write(tmp_path, "bad.env", "SECRET=abc\nthis line is wrong\n")
    proc = ironflow("--dotenv", bad, "nodes")
    assert proc.returncode == 1 and "Failed to parse dotenv file" in proc.stderr
    assert "abc" not in proc.stderr and "wrong" not in proc.stderr


def test_cli_12_config_file_store_dir(tmp_path):
    config = write(tmp_path, "ironflow.yaml", f"store_dir: {tmp_path / 'cfgstore'}\nunknown: 1\n")
    proc = ironflow("-C", config, "run", str(FLOWS / "greeting.lua"))
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "cfgstore").glob("*.json"))
    assert "Config file not found" in ironflow("-C", str(tmp_path / "no.yaml"), "nodes").stderr


def test_unknown_store_backend_is_fatal(tmp_path):
    proc = ironflow("run", str(FLOWS / "greeting.lua"), env={"IRONFLOW_STORE": "nope"})
    assert proc.returncode == 1 and "Unknown state store backend 'nope'" in proc.stderr


def test_resume_continues_a_failed_run(tmp_path):
    flow = tmp_path / "resumable.lua"
    flow.write_text("""
local flow = Flow.new("resumable")
flow:step("first", function(ctx) return { first = "done" } end)
flow:step("second", function(ctx)
    if env("BREAK") then error("broken", 0) end
    return { second = ctx.first .. "+second" }
end):depends_on("first")
return flow
""")
    store = str(tmp_path / "runs")
    failed = ironflow("run", str(flow), "--store-dir", store, "--format", "json",
                      env={"BREAK": "1"})
    assert failed.returncode == 1
    old = json.loads(failed.stdout)
    # --as-new copies it into a new run and leaves the old record as it was
    proc = ironflow("resume", old["id"], "--as-new", "--flow", str(flow), "--store-dir", store,
                    "--format", "json")
    assert proc.returncode == 0, proc.stderr
    new = json.loads(proc.stdout)
    assert new["id"] != old["id"] and new["ctx"]["second"] == "done+second"
    assert new["tasks"]["first"]["started"] == old["tasks"]["first"]["started"]
    assert json.loads(ironflow("inspect", old["id"], "--store-dir", store).stdout) == old


def test_resume_continues_a_failed_run_in_place_without_its_file(tmp_path):
    """Issue 14: the flow travels with the run; resume keeps the run ID."""
    flow = tmp_path / "resumable.lua"
    flow.write_text("""
local flow = Flow.new("resumable")
flow:step("first", function(ctx) return { first = "done" } end)
flow:step("second", function(ctx)
    if env("BREAK") then error("broken", 0) end
    return { second = ctx.first .. "+second" }
end):depends_on("first")
return flow
""")
    store = str(tmp_path / "runs")
    old = json.loads(ironflow("run", str(flow), "--store-dir", store, "--format", "json",
                              env={"BREAK": "1"}).stdout)
    source = flow.read_text()
    flow.unlink()  # resume needs no file
    shown = json.loads(ironflow("inspect", old["id"], "--flow", "--store-dir", store).stdout)
    assert shown["flow"]["source"] == source and shown["flow"]["loader"] == "lua"
    proc = ironflow("resume", old["id"], "--store-dir", store, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    new = json.loads(proc.stdout)
    assert new["id"] == old["id"] and new["status"] == "success" and new["finished"]
    assert new["ctx"]["second"] == "done+second"
    assert new["tasks"]["first"] == old["tasks"]["first"]  # kept, not run again
    assert new["tasks"]["second"]["attempt"] == 2  # the next attempt number
    again = ironflow("resume", old["id"], "--store-dir", store)
    assert again.returncode == 1 and "already succeeded" in again.stderr
