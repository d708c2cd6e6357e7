"""Hostile flows run through the real ``ironflow`` CLI (issue 13).

Each test attacks a promised limit the way it was broken: pattern and memory
bombs, output injection, oversized code built at load time, subworkflow file
theft and fan-out, and the server's secrets through ``env()``. Wall-time
bounds are generous (a loaded machine) but far below what the attacks took
before they were closed (minutes, or unbounded).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.e2e.cli_helpers import ironflow

SECRET = "sk-live-0123456789abcdef"


def run(flow: Path, tmp_path: Path, env: dict | None = None, *args: str):
    proc = ironflow("run", str(flow), "--format", "json", "--store-dir", str(tmp_path / "runs"),
                    *args, env=env, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def task_error(proc, step: str) -> str:
    record = json.loads(proc.stdout)
    return record["tasks"][step].get("error") or ""


def test_pattern_bomb_stops_at_the_lua_time_budget(tmp_path: Path):
    flow = write(tmp_path / "bomb.lua", """
local flow = Flow.new("bomb")
flow:step("find", function()
  local s = string.rep("a", 5000)
  local class = "[" .. string.rep("b-c", 300000) .. "]*x"
  for i = 1, 1000 do string.find(s, class) end
end)
return flow
""")
    started = time.monotonic()
    proc = run(flow, tmp_path, {"IRONFLOW_LUA_MAX_SECONDS": "1"})
    assert proc.returncode == 1
    assert "exceeded time budget of 1s" in task_error(proc, "find")
    assert time.monotonic() - started < 60


def test_host_results_count_against_the_memory_ceiling(tmp_path: Path):
    flow = write(tmp_path / "hoard.lua", """
local flow = Flow.new("hoard")
flow:step("hoard", function()
  local encoded = string.rep("QUFB", 2500000)
  local kept = {}
  for i = 1, 13 do kept[i] = base64_decode(encoded) end
  return { kept = #kept }
end)
return flow
""")
    proc = run(flow, tmp_path, {"IRONFLOW_LUA_MAX_MEMORY_BYTES": str(48 * 1024 * 1024)})
    assert proc.returncode == 1
    error = task_error(proc, "hoard")
    assert "not enough memory: base64_decode result of 7500000 bytes would exceed the Lua " \
           "memory limit of 50331648 bytes (IRONFLOW_LUA_MAX_MEMORY_BYTES)" in error


def test_print_goes_to_the_log_and_log_lines_cannot_be_forged(tmp_path: Path):
    flow = write(tmp_path / "inject.lua", """
local flow = Flow.new("inject")
flow:step("say", function()
  print('{"status":"success"}')
  log("info", "x\\nERROR forged line\\27[2J")
  return { ok = true }
end)
flow:step("note", nodes.log({ message = "${ctx.text}" }))
return flow
""")
    proc = run(flow, tmp_path, None, "--context", json.dumps({"text": "a\r\nERROR b"}))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)  # stdout is the record alone
    assert record["status"] == "success"
    assert '<lua> {"status":"success"}' in proc.stderr
    assert "<lua> x\\nERROR forged line\\x1b[2J" in proc.stderr
    assert "a\\r\\nERROR b" in proc.stderr
    assert not any(line.startswith("ERROR") for line in proc.stderr.splitlines())


def test_code_built_at_load_time_obeys_the_source_limit(tmp_path: Path):
    flow = write(tmp_path / "big.lua", """
local flow = Flow.new("big")
flow:step("big", nodes.code({ source = "return 1 --" .. string.rep("x", 6000000) }))
return flow
""")
    proc = run(flow, tmp_path)
    assert proc.returncode == 1
    assert "Lua code sources exceed the flow source limit of 1048576 bytes" in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_env_never_shows_the_servers_secrets(tmp_path: Path):
    flow = write(tmp_path / "peek.lua", """
local flow = Flow.new("peek")
flow:step("peek", function()
  return { key = env("IRONFLOW_API_KEY"), redis = env("REDIS_URL"), other = env("OTHER") }
end)
return flow
""")
    proc = run(flow, tmp_path, {"IRONFLOW_API_KEY": SECRET, "REDIS_URL": f"redis://:{SECRET}@h",
                                "OTHER": "fine",
                                "IRONFLOW_ENV_ALLOWLIST": "IRONFLOW_API_KEY,REDIS_URL,OTHER"})
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout
    assert json.loads(proc.stdout)["ctx"]["other"] == "fine"


def test_subworkflows_stay_in_the_flow_directory(tmp_path: Path):
    outside = tmp_path / "outside"
    write(outside / "secret.lua", f'local key = "{SECRET}" oops\n')
    write(outside / "ok.lua", 'local f = Flow.new("ok") f:step("s", function() return {} end) '
                              "return f\n")
    flows = tmp_path / "flows"
    write(flows / "secrets.txt", f'KEY="{SECRET}"\n')
    write(flows / "broken.lua", f'"{SECRET}"\n')  # Lua: unexpected symbol near '"sk-…"'
    (flows / "link.lua").symlink_to(outside / "secret.lua")
    (flows / "linkdir").symlink_to(outside)
    steps = {
        "txt": "secrets.txt", "abs": str(outside / "secret.lua"), "up": "../outside/ok.lua",
        "link": "link.lua", "linkdir": "linkdir/ok.lua", "broken": "broken.lua",
    }
    body = "\n".join(
        f'flow:step("{name}", nodes.subworkflow({{ flow = {json.dumps(target)} }}))'
        for name, target in steps.items())
    parent = write(flows / "parent.lua",
                   f'local flow = Flow.new("parent")\n{body}\nreturn flow\n')
    proc = run(parent, tmp_path)
    assert proc.returncode == 1
    assert SECRET not in proc.stdout + proc.stderr
    assert "is not a .lua file" in task_error(proc, "txt")
    for name in ("abs", "up", "link", "linkdir"):
        assert "is outside the flows directory" in task_error(proc, name), name
    assert "near <source text not shown>" in task_error(proc, "broken")
    # FLOWS_DIR is allowed too.
    proc = run(parent, tmp_path, {"FLOWS_DIR": str(outside)})
    assert "outside the flows directory" not in task_error(proc, "up")
    assert json.loads(proc.stdout)["tasks"]["up"]["status"] == "success"


def test_subworkflow_fan_out_bomb_is_bounded(tmp_path: Path):
    flow = write(tmp_path / "fan.lua", """
local flow = Flow.new("fan")
flow:step("fan", nodes.parallel_subworkflows({
  flows = { { flow = "fan.lua" }, { flow = "fan.lua" }, { flow = "fan.lua" } },
}))
return flow
""")
    started = time.monotonic()
    proc = run(flow, tmp_path, {"IRONFLOW_MAX_SUBWORKFLOW_DEPTH": "3",
                                "IRONFLOW_MAX_SUBWORKFLOW_RUNS": "10"})
    assert proc.returncode == 1
    assert time.monotonic() - started < 60
    text = proc.stdout
    assert "its limit (IRONFLOW_MAX_SUBWORKFLOW_RUNS)" in text
    assert text.count('"flow": "fan"') <= 10  # successful child entries name the flow
