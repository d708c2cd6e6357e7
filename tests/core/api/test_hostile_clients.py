"""A real ``ironflow serve`` attacked the way issue 13 found it.

Hostile bodies (deep nesting, lone surrogates) on every body-reading endpoint,
ad-hoc flows that read the server's secrets through ``env()`` or load files
through ``subworkflow``, and a drain while steps and flow loads are stuck in
Lua loops and pattern matches with a long Lua time budget.
"""

from __future__ import annotations

import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.core.api.flows import HELLO
from tests.core.api.server_process import (
    API_KEY,
    ServerProcess,
    assert_error,
    clean_env,
    post_in_background,
    wait_for_run,
)

HOOK_SECRET = "hook-secret-abcdef0123456789"
REDIS_PASSWORD = "redis-password-42"
FILE_SECRET = "sk-live-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hostile")
    flows = root / "flows"
    flows.mkdir()
    (flows / "hello.lua").write_text(HELLO)
    (root / "secrets.env").write_text(f'OPENAI_KEY="{FILE_SECRET}"\n')
    (root / "secret.lua").write_text(f'local k = "{FILE_SECRET}" x\n')
    (flows / "link.lua").symlink_to(root / "secret.lua")
    (root / "ironflow.yaml").write_text("""
webhooks:
  hook:
    flow: hello.lua
    signature:
      type: hmac_sha256
      header: x-signature
      secret_env: HOOK_SECRET
  open: hello.lua
""")
    env = clean_env(
        IRONFLOW_API_KEY=API_KEY, HOOK_SECRET=HOOK_SECRET,
        REDIS_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0",
        IRONFLOW_ENV_ALLOWLIST="IRONFLOW_API_KEY,HOOK_SECRET,REDIS_URL,VISIBLE",
        VISIBLE="yes",
    )
    proc = ServerProcess(root, env=env, args=["--flows-dir", str(flows)]).start()
    proc.root = root  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        proc.stop()


def _runs(client: httpx.Client) -> list[dict]:
    return client.get("/runs").json()["runs"]


DEEP = b'{"context": {"x": ' + b"[" * 5000 + b"]" * 5000 + b'}, "file": "hello.lua"}'
SURROGATE = b'{"file": "hello.lua", "context": {"name": "\\ud800"}}'


@pytest.mark.parametrize("path", ["/flows/run", "/flows/validate", "/webhooks/open"])
@pytest.mark.parametrize(("body", "message"), [
    (DEEP, "The request body nests arrays/objects more than 128 levels deep"),
    (SURROGATE, "The request body contains a lone UTF-16 surrogate escape (such as \\ud800); "
                "strings must be valid Unicode"),
])
def test_hostile_json_bodies_answer_400_and_create_nothing(server, path, body, message):
    with server.client() as c:
        before = _runs(c)
        response = c.post(path, content=body, headers={"content-type": "application/json"})
        assert_error(response, 400, "bad_request", message)
        assert _runs(c) == before


def test_adhoc_flows_never_read_server_secrets(server):
    source = """
local flow = Flow.new("peek")
flow:step("peek", function(ctx)
  return { key = env("IRONFLOW_API_KEY"), hook = env("HOOK_SECRET"),
           redis = env("REDIS_URL"), visible = env("VISIBLE") }
end)
return flow
"""
    with server.client() as c:
        reply = c.post("/flows/run", json={"source": source}).json()
        assert reply["status"] == "success", reply
        record = c.get(f"/runs/{reply['run_id']}").text
    assert json.loads(record)["ctx"]["visible"] == "yes"
    for secret in (API_KEY, HOOK_SECRET, REDIS_PASSWORD):
        assert secret not in record


def test_adhoc_flows_cannot_load_files_outside_the_flows_dir(server):
    root = server.root
    with server.client() as c:
        for target in (str(root / "secrets.env"), str(root / "secret.lua"), "link.lua",
                       "../secret.lua"):
            source = f"""
local flow = Flow.new("steal")
flow:step("load", nodes.subworkflow({{ flow = {json.dumps(target)} }}))
return flow
"""
            reply = c.post("/flows/run", json={"source": source}).json()
            assert reply["status"] == "failed", (target, reply)
            record = c.get(f"/runs/{reply['run_id']}").json()
            error = record["tasks"]["load"]["error"]
            assert FILE_SECRET not in json.dumps(record)
            assert "outside the flows directory" in error or "not a .lua file" in error, error


STUCK_LOOP = """
local flow = Flow.new("stuck_loop")
flow:step("spin", function() while true do end end)
return flow
"""
STUCK_PATTERN = """
local flow = Flow.new("stuck_pattern")
flow:step("match", function()
  -- backtracking of O(n^4) steps: hours for the matcher, whatever its speed per step
  return { r = string.find(string.rep("a", 5000), ".-.-.-.-b") }
end)
return flow
"""
STUCK_LOAD = "while true do end\n"


def test_sigterm_drains_within_grace_while_lua_is_stuck(tmp_path: Path):
    """Steps in a Lua loop and a pattern match, and a flow load in a loop, all stop."""
    flows = tmp_path / "flows"
    flows.mkdir()
    env = clean_env(IRONFLOW_API_KEY=API_KEY, IRONFLOW_SHUTDOWN_GRACE_SECONDS="1",
                    IRONFLOW_LUA_MAX_SECONDS="600", IRONFLOW_LUA_MAX_INSTRUCTIONS="0",
                    IRONFLOW_MAX_CONCURRENT_WORKFLOWS="4")
    server = ServerProcess(tmp_path, env=env, args=["--flows-dir", str(flows)]).start()
    try:
        with server.client() as c, ThreadPoolExecutor(3) as pool:
            loop, loop_id = post_in_background(pool, server, {"source": STUCK_LOOP}, "loop")
            pattern, pattern_id = post_in_background(
                pool, server, {"source": STUCK_PATTERN}, "pattern")
            load, _ = post_in_background(pool, server, {"source": STUCK_LOAD}, "load")
            wait_for_run(c, loop_id)
            wait_for_run(c, pattern_id)
            time.sleep(0.5)  # let the load and the steps get into their loops
            signalled = time.monotonic()
            server.signal(signal.SIGTERM)
            assert loop.result(60).json()["status"] == "cancelled"
            assert pattern.result(60).json()["status"] == "cancelled"
            assert_error(load.result(60), 503, "service_unavailable")
            assert server.wait(60) == 0
            # Grace (1 s) plus the run finalization bound, far from the 600 s Lua budget.
            assert time.monotonic() - signalled < 40
    finally:
        server.kill()


def test_code_built_at_load_time_obeys_the_source_limit(server):
    source = """
local flow = Flow.new("big")
flow:step("big", nodes.code({ source = "return 1 --" .. string.rep("x", 6000000) }))
return flow
"""
    with server.client() as c:
        before = _runs(c)
        response = c.post("/flows/run", json={"source": source})
        body = assert_error(response, 400, "bad_request")
        assert "Lua code sources exceed the flow source limit of 1048576 bytes" in body["error"]
        assert _runs(c) == before
