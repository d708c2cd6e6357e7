"""What a new user trips over (issue 18): errors, exit codes, signals and settings.

Every test drives the installed ``ironflow`` command in a subprocess, as a
user would, and checks the exact line a user reads and the exit code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .cli_helpers import FLOWS, IRONFLOW, ironflow

HELLO = FLOWS / "greeting.lua"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def only_error_line(proc: subprocess.CompletedProcess) -> str:
    """stderr must be exactly one ``Error: ...`` line; returns it."""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


# -------------------------------------------------------------- unknown nodes
def test_unknown_node_from_a_disabled_plugin_names_line_step_and_plugin(tmp_path):
    flow = write(tmp_path, "flow.lua", 'local flow = Flow.new("demo")\n'
                 'flow:step("fetch", nodes.http_get{ url = "https://example.com" })\n'
                 "return flow\n")
    expected = (f"Error: Unknown node type 'http_get' at {flow}:2 (step 'fetch'); plugin "
                "'nodes-http' (ironflow-nodes-http) is disabled by IRONFLOW_DISABLED_PLUGINS")
    env = {"IRONFLOW_DISABLED_PLUGINS": "nodes-http"}
    run = ironflow("run", flow, "--store-dir", str(tmp_path / "runs"), env=env)
    assert run.returncode == 1 and only_error_line(run) == expected and run.stdout == ""
    validate = ironflow("validate", flow, env=env)
    assert validate.returncode == 1
    assert f"  - {expected.removeprefix('Error: ')}\n" in validate.stdout


def test_typo_in_a_node_name_suggests_the_near_name(tmp_path):
    flow = write(tmp_path, "flow.lua", 'local flow = Flow.new("demo")\n'
                 'flow:step("show", nodes.templte_render{ template = "x", output_key = "y" })\n'
                 "return flow\n")
    run = ironflow("run", flow, "--store-dir", str(tmp_path / "runs"))
    assert only_error_line(run) == (f"Error: Unknown node type 'templte_render' at {flow}:2 "
                                    "(step 'show'); did you mean 'template_render'?")


# ------------------------------------------------------------ validate: all at once
def test_validate_reports_every_problem_at_once(tmp_path):
    flow = write(tmp_path, "flow.lua", """local flow = Flow.new("demo")
local fetch = flow:step("fetch", nodes.log{ message = "a" })
flow:step("show", nodes.template_render{ template = "x", outptu_key = "y" }):depends_on(fetch)
flow:step("typo", nodes.templte_render{})
flow:step("late", nodes.log{}):depends_on("ghost")
return flow
""")
    proc = ironflow("validate", flow)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[:4] == ["Flow: demo", "Steps: 4", "Warnings:",
        f"  {flow}:3:0 [unknown_config_key] Step 'show' (template_render): unknown config "
        "key 'outptu_key'; did you mean 'output_key'?"]
    errors = [line for line in proc.stdout.splitlines() if line.startswith("  - ")]
    assert errors == [
        f"  - Step 'show' depends on the builder of step 'fetch' at {flow}:3, but "
        "dependencies must be step names (strings); pass its name: :depends_on(\"fetch\")",
        "  - Step 'late' depends on 'ghost', which does not exist",
        f"  - Unknown node type 'templte_render' at {flow}:4 (step 'typo'); did you mean "
        "'template_render'?",
        "  - Step 'show' (template_render): required field 'output_key' is missing",
    ]
    assert only_error_line(proc) == "Error: 4 validation error(s) and 0 strict warning(s) found"


def test_unknown_config_key_is_an_error_only_under_strict(tmp_path):
    flow = write(tmp_path, "flow.lua", 'local flow = Flow.new("demo")\n'
                 'flow:step("say", nodes.log{ mesage = "hi" })\nreturn flow\n')
    loose = ironflow("validate", flow)
    assert loose.returncode == 0 and "did you mean 'message'?" in loose.stdout
    strict = ironflow("validate", flow, "--strict")
    assert strict.returncode == 1 and "strict validation rejected 1 warning(s)" in strict.stdout


# ------------------------------------------------------------ stores: no traceback
def test_unreachable_redis_is_one_error_line(tmp_path):
    env = {"IRONFLOW_STORE": "redis", "REDIS_URL": "redis://127.0.0.1:1/0"}
    run = ironflow("run", str(HELLO), env=env)
    assert run.returncode == 1 and run.stdout == ""
    assert only_error_line(run) == (
        "Error: cannot reach Redis at redis://127.0.0.1:1/0: Connection refused")
    resume = ironflow("resume", "some-run", "--flow", str(HELLO), env=env)
    assert resume.returncode == 1 and "cannot reach Redis" in only_error_line(resume)


def test_store_dir_that_is_a_file_fails_before_any_output(tmp_path):
    afile = write(tmp_path, "afile", "")
    run = ironflow("run", str(HELLO), "--store-dir", afile)
    assert run.returncode == 1 and run.stdout == ""
    assert only_error_line(run) == f"Error: --store-dir {afile} is not a directory"
    resume = ironflow("resume", "some-run", "--flow", str(HELLO), "--store-dir", afile)
    assert resume.returncode == 1 and "Traceback" not in resume.stderr
    only_error_line(resume)


# -------------------------------------------------------------- exit codes
def test_usage_errors_exit_2_before_any_output(tmp_path):
    both = ironflow("run", str(HELLO), "--context", "{}", "--context-file", "x.json")
    assert both.returncode == 2 and both.stdout == ""
    assert "--context and --context-file cannot be used together" in both.stderr
    bad_json = ironflow("run", str(HELLO), "--context", "{", "--store-dir", str(tmp_path))
    assert bad_json.returncode == 1 and bad_json.stdout == ""


def test_missing_flow_file_and_directory_exit_the_same(tmp_path):
    missing = ironflow("run", str(tmp_path / "nope.lua"))
    directory = ironflow("run", str(tmp_path))
    assert missing.returncode == directory.returncode == 1
    assert only_error_line(missing) == f"Error: Flow file '{tmp_path / 'nope.lua'}' not found"
    assert "must be a regular file" in only_error_line(directory)


SLOW = """local flow = Flow.new("slow")
flow:step("wait", nodes.delay{ seconds = 60 })
return flow
"""


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_cancel_the_run_cleanly_and_exit_128_plus_signal(tmp_path, signum, code):
    flow = write(tmp_path, "slow.lua", SLOW)
    store = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IRONFLOW_")}
    proc = subprocess.Popen([IRONFLOW, "run", flow, "--store-dir", str(store)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # plain progress: the step has started
        assert line.startswith("[wait] started"), line
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert "Status: cancelled" in out and "Traceback" not in err
    assert err.splitlines()[-1].endswith("finished with status cancelled")
    listed = ironflow("list", "--format", "json", "--store-dir", str(store))
    [run] = json.loads(listed.stdout)["runs"]
    assert run["status"] == "cancelled" and run["finished"]


# -------------------------------------------------------------- settings
@pytest.mark.parametrize(("env", "message"), [
    ({"IRONFLOW_LUA_MAX_SECONDS": "abc"},
     "Error: Invalid value 'abc' for IRONFLOW_LUA_MAX_SECONDS (environment): expected a "
     "non-negative integer (0 disables the limit)"),
    ({"IRONFLOW_LOG": "verbose"},
     "Error: Invalid value 'verbose' for IRONFLOW_LOG (environment): expected a level: "
     "trace, debug, info, warn, warning, error, off (or target=level pairs separated by "
     "commas)"),
    ({"IRONFLOW_MAX_CONCURRENT_TASKS": "lots"},
     "Error: Invalid value 'lots' for IRONFLOW_MAX_CONCURRENT_TASKS (environment): expected "
     "a non-negative integer"),
])
def test_bad_environment_settings_fail_before_any_output(tmp_path, env, message):
    proc = ironflow("run", str(HELLO), "--store-dir", str(tmp_path), env=env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert only_error_line(proc) == message


def test_yaml_settings_are_checked_like_the_environment(tmp_path):
    bad = write(tmp_path, "bad.yaml", "max_concurrent_tasks: lots\n")
    proc = ironflow("-C", bad, "run", str(HELLO), "--store-dir", str(tmp_path))
    assert proc.returncode == 1 and proc.stdout == ""
    assert only_error_line(proc) == (f"Error: Invalid value 'lots' for max_concurrent_tasks "
                                     f"({bad}): expected a non-negative integer")
    unknown = write(tmp_path, "unknown.yaml", "max_concurent_tasks: 2\n")
    proc = ironflow("-C", unknown, "nodes")
    assert proc.returncode == 0
    assert proc.stderr == (f"Warning: {unknown}: unknown setting 'max_concurent_tasks'; "
                           "did you mean 'max_concurrent_tasks'?\n")
    broken = write(tmp_path, "broken.yaml", "store_dir: runs\nwebhooks: [a, b\nport: 1\n")
    proc = ironflow("-C", broken, "nodes")
    assert proc.returncode == 1
    assert only_error_line(proc).startswith(
        f"Error: Failed to parse config file: {broken}: line 3, column 5: ")


def test_unknown_store_backend_fails_before_any_output(tmp_path):
    proc = ironflow("run", str(HELLO), env={"IRONFLOW_STORE": "nope"})
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Unknown state store backend 'nope'" in only_error_line(proc)


def test_dotenv_escapes_are_parsed_like_python_dotenv(tmp_path):
    envfile = write(tmp_path, "x.env", 'APP_NAME="C:\\\\new"\nAPP_NAME=second\nAPI_KEY=x\n')
    proc = ironflow("--dotenv", envfile, "run", str(FLOWS / "envread.lua"), "--format", "json",
                    "--store-dir", str(tmp_path / "r"))
    assert json.loads(proc.stdout)["ctx"]["log_message"] == "APP_NAME=C:\\new, API_KEY=SET"
    bad = write(tmp_path, "bad.env", "GOOD=1\nthis is not a line\n")
    proc = ironflow("--dotenv", bad, "nodes")
    assert only_error_line(proc) == f"Error: Failed to parse dotenv file: {bad}: line 2 is not KEY=VALUE"
