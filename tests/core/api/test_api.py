"""``ironflow serve`` over a real loopback socket (semantics.md#api, #serve).

One authenticated server with a flows dir and webhooks serves most tests;
small dedicated servers cover auth off, the ad-hoc policy and admission.
Every test names the contract rule it checks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .flows import (
    BROKEN,
    FAILING,
    HELLO,
    SECRET_MARKER,
    UNKNOWN_DEPENDENCY,
    write_flows,
)
from .server_process import (
    API_KEY,
    ServerProcess,
    assert_error,
    clean_env,
    post_in_background,
    read_sse,
    wait_for_run,
)

WEBHOOK_SECRET = "webhook-secret-0123456789abcdef"
SOURCE_LIMIT = 4096
UNAUTHORIZED = "missing or invalid API authentication"


def _config(flows: Path) -> str:
    return f"""
webhooks:
  simple: {flows / "hello.lua"}
  signed:
    flow: webhook.lua
    forward_headers: [traceparent]
    signature:
      type: hmac_sha256
      header: x-signature
      secret_env: HOOK_SECRET
  missing_flow: nowhere.lua
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("api")
    flows = write_flows(root)
    (root / "ironflow.yaml").write_text(_config(flows))
    env = clean_env(IRONFLOW_API_KEY=API_KEY, HOOK_SECRET=WEBHOOK_SECRET,
                    IRONFLOW_MAX_FLOW_SOURCE_BYTES=str(SOURCE_LIMIT),
                    IRONFLOW_MAX_LIST_RECORDS="20")
    proc = ServerProcess(root, env=env, args=["--flows-dir", str(flows), "--max-body", "65536"])
    proc.start()
    proc.flows = flows  # type: ignore[attr-defined]
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess):
    with server.client() as c:
        yield c


def run_source(client: httpx.Client, source: str, **body: Any) -> httpx.Response:
    return client.post("/flows/run", json={"source": source, **body})


# ------------------------------------------------------------------ auth, health
def test_api_2_health_routes_need_no_key(server: ServerProcess):
    with server.client(auth=False) as anon:
        for path in ("/health", "/health/live"):
            response = anon.get(path)
            assert response.status_code == 200
            assert response.json() == {"status": "ok", "version": "0.1.0"}
        ready = anon.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"  # API-65


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer wrong-key"},
    {"Authorization": f"bearer {API_KEY}"},  # exact "Bearer " prefix only
    {"Authorization": API_KEY},
    {"X-API-Key": API_KEY + "x"},
])
def test_api_2_missing_or_invalid_key_is_401_plain_text(server: ServerProcess, headers):
    with server.client(auth=False, headers=headers) as anon:
        for method, path in (("GET", "/nodes"), ("GET", "/runs"), ("POST", "/flows/run"),
                             ("GET", "/openapi.json"), ("POST", "/webhooks/simple")):
            response = anon.request(method, path)
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("text/plain")
            assert response.text == UNAUTHORIZED


def test_api_2_bearer_and_x_api_key_both_accepted(server: ServerProcess):
    for headers in ({"Authorization": f"Bearer {API_KEY}"}, {"X-API-Key": API_KEY}):
        with server.client(auth=False, headers=headers) as c:
            assert c.get("/nodes").status_code == 200


def test_api_64_nodes_sorted_with_descriptions(client: httpx.Client):
    body = client.get("/nodes").json()
    names = [n["node_type"] for n in body["nodes"]]
    assert names == sorted(names)
    assert body["total"] == len(names)
    assert {"delay", "log", "template_render"} <= set(names)
    log_node = next(n for n in body["nodes"] if n["node_type"] == "log")
    assert log_node["description"] == "Write a message to the workflow log"


def test_api_5_unknown_route_is_json_404(client: httpx.Client):
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.put("/flows/run"), 405, "method_not_allowed")


def test_api_4_no_cors_headers_by_default(client: httpx.Client):
    response = client.get("/nodes", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in response.headers


# ------------------------------------------------------------------ POST /flows/run
def test_api_15_inline_run_waits_and_returns_the_final_status(server, client):
    response = run_source(client, HELLO, context={"name": "Ada"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"run_id", "flow_name", "status"}
    assert body["flow_name"] == "hello"
    assert body["status"] == "success"
    record = client.get(f"/runs/{body['run_id']}").json()
    assert record["status"] == "success"
    assert record["ctx"]["greeting"] == "Hello, Ada!"
    # API-14: inline runs get the configured flows_dir as _flow_dir
    assert record["ctx"]["_flow_dir"] == os.path.realpath(server.flows)
    assert set(record["tasks"]) == {"greet", "note"}


def test_prefer_respond_async_answers_202_with_the_run_url_and_the_run_goes_on(server, client):
    response = client.post("/flows/run", json={"file": "slow.lua", "context": {"seconds": 0.3}},
                           headers={"Prefer": "handling=lenient, respond-async"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending" and body["url"] == f"/runs/{body['run_id']}"
    assert response.headers["location"] == body["url"]
    assert response.headers["preference-applied"] == "respond-async"
    deadline = time.monotonic() + 10
    while client.get(body["url"]).json()["status"] != "success":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_api_15_client_disconnect_does_not_cancel_the_run(server, client):
    key = f"disconnect-{time.monotonic_ns()}"
    run_id = "idem-" + hashlib.sha256(key.encode()).hexdigest()
    with server.client(timeout=0.3) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/flows/run", json={"file": "slow.lua", "context": {"seconds": 0.8}},
                       headers={"Idempotency-Key": key})
    deadline = time.monotonic() + 10
    while (record := client.get(f"/runs/{run_id}").json())["status"] != "success":
        assert record["status"] in ("pending", "running")
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert record["tasks"]["done"]["status"] == "success"


def test_api_15_failed_run_is_still_200(client: httpx.Client):
    body = run_source(client, FAILING).json()
    assert body["status"] == "failed"
    record = client.get(f"/runs/{body['run_id']}").json()
    assert record["tasks"]["parse"]["status"] == "failed"


def test_api_14_caller_flow_dir_is_overridden(server, client):
    body = run_source(client, HELLO, context={"name": "x", "_flow_dir": "/etc"}).json()
    record = client.get(f"/runs/{body['run_id']}").json()
    assert record["ctx"]["_flow_dir"] == os.path.realpath(server.flows)


def test_api_10_exactly_one_source(client: httpx.Client):
    none = "Exactly one of 'source', 'source_base64', or 'file' is required"
    several = "Only one of 'source', 'source_base64', or 'file' may be provided"
    assert_error(client.post("/flows/run", json={}), 400, "bad_request", none)
    assert_error(client.post("/flows/run", json={"source": None, "file": None}), 400,
                 "bad_request", none)
    assert_error(client.post("/flows/run", json={"source": HELLO, "file": "hello.lua"}), 400,
                 "bad_request", several)
    # null counts as absent
    ok = client.post("/flows/run", json={"source": None, "file": "hello.lua"})
    assert ok.status_code == 200


def test_api_6_body_errors_use_the_json_error_shape(client: httpx.Client):
    no_type = client.post("/flows/run", content=json.dumps({"source": HELLO}))
    assert_error(no_type, 415, "unsupported_media_type")
    text = client.post("/flows/run", content="{}", headers={"Content-Type": "text/plain"})
    assert_error(text, 415, "unsupported_media_type")
    malformed = client.post("/flows/run", content="{nope",
                            headers={"Content-Type": "application/json"})
    assert_error(malformed, 400, "bad_request")
    array = client.post("/flows/run", json=[1, 2])
    assert_error(array, 422, "unprocessable_entity")
    context = client.post("/flows/run", json={"source": HELLO, "context": [1]})
    assert_error(context, 422, "unprocessable_entity")
    wrong_type = client.post("/flows/run", json={"source": 42})
    assert_error(wrong_type, 422, "unprocessable_entity")


def test_api_1_body_over_max_body_is_413(client: httpx.Client):
    big = {"source": HELLO, "context": {"pad": "x" * 70_000}}
    assert_error(client.post("/flows/run", json=big), 413, "payload_too_large")


def test_api_12_source_base64(client: httpx.Client):
    encoded = base64.b64encode(HELLO.encode()).decode()
    body = client.post("/flows/run", json={"source_base64": encoded,
                                           "context": {"name": "B"}}).json()
    assert body["status"] == "success"
    bad = client.post("/flows/run", json={"source_base64": "not base64!"})
    assert assert_error(bad, 400, "bad_request")["error"].startswith(
        "Invalid base64 in 'source_base64': ")
    unpadded = client.post("/flows/run", json={"source_base64": encoded.rstrip("=") + "A"})
    assert unpadded.status_code == 400
    not_utf8 = base64.b64encode(b"\xff\xfe\xfd").decode()
    response = client.post("/flows/run", json={"source_base64": not_utf8})
    assert assert_error(response, 400, "bad_request")["error"].startswith(
        "Base64 payload is not valid UTF-8: ")
    huge = base64.b64encode(b"-" * (SOURCE_LIMIT + 10)).decode()
    response = client.post("/flows/run", json={"source_base64": huge})
    assert assert_error(response, 400, "bad_request")["error"].startswith(
        f"Decoded 'source_base64' exceeds the {SOURCE_LIMIT}-byte flow source limit")


def test_api_13_inline_load_failure_is_400(client: httpx.Client):
    response = run_source(client, "return 42")
    assert assert_error(response, 400, "bad_request")["error"].startswith(
        "Failed to parse flow: ")


def test_arch6_invalid_flow_is_400_with_validation_errors_and_no_run(client: httpx.Client):
    before = client.get("/runs", params={"limit": 20}).json()["runs"]
    response = run_source(client, UNKNOWN_DEPENDENCY)
    body = assert_error(response, 400, "bad_request")
    assert body["errors"] and any("ghost" in e for e in body["errors"])
    after = client.get("/runs", params={"limit": 20}).json()["runs"]
    assert [r["id"] for r in after] == [r["id"] for r in before]


# ------------------------------------------------------------------ file resolution
def test_api_30_file_inside_flows_dir(server, client):
    body = client.post("/flows/run", json={"file": "sub/nested.lua",
                                           "context": {"name": "N"}}).json()
    assert body["status"] == "success"
    record = client.get(f"/runs/{body['run_id']}").json()
    assert record["ctx"]["_flow_dir"] == os.path.realpath(server.flows / "sub")
    absolute = client.post("/flows/run", json={"file": str(server.flows / "hello.lua")})
    assert absolute.json()["status"] == "success"


@pytest.mark.parametrize("file", [
    "../outside.lua",
    "sub/../../outside.lua",
    "sub/../hello.lua",  # any '..' component is refused, even one that stays inside
    "escape.lua",        # a symlink leading out of the root
    "missing.lua",
    "sub",
])
def test_api_30_escapes_and_missing_files_look_the_same(server, client, file):
    response = client.post("/flows/run", json={"file": file})
    body = assert_error(response, 404, "not_found", "Flow file not found")
    assert SECRET_MARKER not in response.text
    assert str(server.cwd) not in body["error"]


def test_api_30_absolute_path_outside_root_is_404(server, client):
    response = client.post("/flows/run", json={"file": str(server.cwd / "outside.lua")})
    assert_error(response, 404, "not_found", "Flow file not found")


def test_api_13_file_load_failure_hides_the_content(client: httpx.Client):
    response = client.post("/flows/run", json={"file": "broken.lua"})
    assert_error(response, 400, "bad_request", "Failed to load flow file")
    assert SECRET_MARKER not in response.text
    assert BROKEN not in response.text


# ------------------------------------------------------------------ validate
def test_api_51_validate_valid_and_invalid(client: httpx.Client):
    good = client.post("/flows/validate", json={"source": HELLO})
    assert good.status_code == 200
    assert good.json() == {"valid": True, "flow_name": "hello", "steps": 2}
    bad = client.post("/flows/validate", json={"source": UNKNOWN_DEPENDENCY}).json()
    assert bad["valid"] is False and bad["flow_name"] == "invalid" and bad["steps"] == 1
    assert any("ghost" in e for e in bad["errors"])
    unloadable = client.post("/flows/validate", json={"source": "return 42"}).json()
    assert unloadable["valid"] is False
    assert unloadable["flow_name"] is None and unloadable["steps"] is None
    assert len(unloadable["errors"]) == 1
    broken = client.post("/flows/validate", json={"file": "broken.lua"}).json()
    assert broken == {"valid": False, "flow_name": None, "steps": None,
                      "errors": ["Failed to load flow file"]}
    assert SECRET_MARKER not in json.dumps(broken)


TYPO_FLOW = """local flow = Flow.new("typo")
flow:step("show", nodes.templte_render{ template = "x", output_key = "y" })
return flow
"""
TYPO_MESSAGE = ("Unknown node type 'templte_render' at line 2 (step 'show'); "
                "did you mean 'template_render'?")


def test_unknown_node_type_same_message_from_validate_and_run(client: httpx.Client):
    validated = client.post("/flows/validate", json={"source": TYPO_FLOW}).json()
    assert validated["valid"] is False and validated["errors"] == [TYPO_MESSAGE]
    run = client.post("/flows/run", json={"source": TYPO_FLOW})
    # API-12 keeps its "Failed to parse flow: " prefix in front of the same message
    assert_error(run, 400, "bad_request", f"Failed to parse flow: {TYPO_MESSAGE}")


def test_validate_reports_config_keys_and_required_fields(client: httpx.Client):
    source = """local flow = Flow.new("keys")
flow:step("show", nodes.template_render{ template = "x", outptu_key = "y" })
return flow
"""
    reply = client.post("/flows/validate", json={"source": source}).json()
    assert reply["errors"] == ["Step 'show' (template_render): required field 'output_key' "
                               "is missing"]
    assert reply["warnings"] == [{
        "code": "unknown_config_key", "line": 2, "column": 0, "step": "show",
        "message": "Step 'show' (template_render): unknown config key 'outptu_key'; "
                   "did you mean 'output_key'?"}]


def test_api_50_validate_request_errors(client: httpx.Client):
    assert_error(client.post("/flows/validate", json={}), 400, "bad_request")
    assert_error(client.post("/flows/validate", json={"file": "../outside.lua"}), 404,
                 "not_found", "Flow file not found")
    assert_error(client.post("/flows/validate", json={"source": HELLO, "strict": "yes"}),
                 422, "unprocessable_entity")
    strict = client.post("/flows/validate", json={"source": HELLO, "strict": True})
    assert strict.json()["valid"] is True


# ------------------------------------------------------------------ idempotency
def test_api_20_invalid_idempotency_key_is_400(client: httpx.Client):
    message = ("Idempotency-Key must contain 1 through 128 ASCII letters, digits, "
               "'-', '_', '.', or ':'")
    for key in ("has space", "x" * 129, "slash/key", ""):
        response = client.post("/flows/run", json={"source": HELLO},
                               headers={"Idempotency-Key": key})
        assert_error(response, 400, "bad_request", message)
    marker = client.post("/flows/run", json={"source": HELLO,
                                             "context": {"_ironflow_idempotency": "x"}},
                         headers={"Idempotency-Key": "k-marker"})
    assert_error(marker, 400, "bad_request")


def test_api_21_22_same_key_same_body_returns_the_same_run(client: httpx.Client):
    key = f"order-{time.monotonic_ns()}"
    request = {"source": HELLO, "context": {"name": "idem"}}
    first = client.post("/flows/run", json=request, headers={"Idempotency-Key": key})
    second = client.post("/flows/run", json=request, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    run_id = first.json()["run_id"]
    assert run_id == "idem-" + hashlib.sha256(key.encode()).hexdigest()
    other = client.post("/flows/run", json={"source": HELLO, "context": {"name": "other"}},
                        headers={"Idempotency-Key": key})
    assert_error(other, 409, "conflict",
                 "Idempotency-Key was already used for a different request")
    # deleting the run frees the key
    assert client.delete(f"/runs/{run_id}").json() == {"deleted": run_id}
    again = client.post("/flows/run", json={"source": HELLO, "context": {"name": "other"}},
                        headers={"Idempotency-Key": key})
    assert again.json()["run_id"] == run_id and again.json()["status"] == "success"


def test_api_22_concurrent_identical_requests_create_one_run(server, client):
    key = f"burst-{time.monotonic_ns()}"
    request = {"file": "slow.lua", "context": {"seconds": 0.5}}

    def send(_: int) -> dict:
        with server.client() as c:
            response = c.post("/flows/run", json=request, headers={"Idempotency-Key": key})
            assert response.status_code == 200, response.text
            return response.json()

    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(send, range(6)))
    run_ids = {r["run_id"] for r in replies}
    assert len(run_ids) == 1
    assert any(r["status"] == "success" for r in replies)
    assert {r["status"] for r in replies} <= {"pending", "running", "success"}
    record = client.get(f"/runs/{run_ids.pop()}").json()
    assert record["tasks"]["wait"]["attempt"] == 1  # executed exactly once


# ------------------------------------------------------------------ runs
def test_api_60_run_ids_are_validated_before_storage(client: httpx.Client):
    cases = {
        "-run": "run ID must start and end with an ASCII letter or digit",
        "run_": "run ID must start and end with an ASCII letter or digit",
        "run.id": "run ID may contain only ASCII letters, digits, '-' and '_'",
        "run%2Fid": "run ID may contain only ASCII letters, digits, '-' and '_'",
        "r%C3%BAn": "run ID may contain only ASCII letters, digits, '-' and '_'",
        "a" * 129: "run ID must not exceed 128 bytes",
    }
    for raw, reason in cases.items():
        for method in ("GET", "DELETE"):
            response = client.request(method, f"/runs/{raw}")
            assert_error(response, 400, "bad_request", reason)
        assert_error(client.get(f"/runs/{raw}/events"), 400, "bad_request", reason)
    assert_error(client.get("/runs/no-such-run"), 404, "not_found",
                 "Run 'no-such-run' not found")
    assert_error(client.delete("/runs/no-such-run"), 404, "not_found")


def test_api_61_list_pages_follow_the_cursor(client: httpx.Client):
    made = {run_source(client, HELLO, context={"name": str(i)}).json()["run_id"]
            for i in range(4)}
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if after:
            params["after"] = after
        page = client.get("/runs", params=params).json()
        assert set(page) == {"runs", "limit", "returned", "has_more", "next_cursor"}
        assert page["limit"] == 3 and page["returned"] == len(page["runs"])
        seen += [r["id"] for r in page["runs"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        after = page["next_cursor"]
    assert len(seen) == len(set(seen))
    assert made <= set(seen)
    failed = client.get("/runs", params={"status": "failed"}).json()
    assert all(r["status"] == "failed" for r in failed["runs"])
    assert client.get("/runs").json()["limit"] == 20  # min(50, IRONFLOW_MAX_LIST_RECORDS)


def test_api_61_list_parameter_errors(client: httpx.Client):
    assert_error(client.get("/runs?offset=3"), 400, "bad_request",
                 "offset pagination is not supported; use the `after` cursor")
    assert_error(client.get("/runs?status=done"), 400, "bad_request",
                 "Invalid status 'done'. Use: pending, running, success, failed, stalled, "
                 "cancelled")
    for query in ("limit=0", "limit=21", "limit=abc", "limit=-1", "limit=2&limit=3"):
        assert_error(client.get(f"/runs?{query}"), 400, "bad_request")
    assert_error(client.get("/runs?after=garbage!"), 400, "bad_request")
    run_source(client, HELLO)
    run_source(client, HELLO)
    cursor = client.get("/runs?limit=1").json()["next_cursor"]
    assert cursor
    assert_error(client.get(f"/runs?limit=1&status=success&after={cursor}"), 400,
                 "bad_request")
    assert client.get("/runs?unknown=1").status_code == 200


def test_api_63_delete_run_then_404(client: httpx.Client):
    run_id = run_source(client, HELLO).json()["run_id"]
    assert client.delete(f"/runs/{run_id}").json() == {"deleted": run_id}
    assert_error(client.get(f"/runs/{run_id}"), 404, "not_found")
    assert_error(client.delete(f"/runs/{run_id}"), 404, "not_found")
    assert_error(client.get(f"/runs/{run_id}/events"), 404, "not_found")


def test_api_63_delete_of_an_executing_run_is_409(server, client):
    with ThreadPoolExecutor(1) as pool:
        future, run_id = post_in_background(
            pool, server, {"file": "slow.lua", "context": {"seconds": 1.0}},
            f"executing-{time.monotonic_ns()}")
        wait_for_run(client, run_id)
        assert_error(client.delete(f"/runs/{run_id}"), 409, "conflict",
                     f"Run '{run_id}' is still executing")
        assert future.result().json()["status"] == "success"
    assert client.get(f"/runs/{run_id}").json()["status"] == "success"


def test_api_5_storage_corruption_is_an_opaque_500(server, client):
    corrupt = server.store_dir / "corrupt-run.json"
    corrupt.write_text("{ this is not json " + SECRET_MARKER)
    try:
        response = client.get("/runs/corrupt-run")
    finally:
        corrupt.unlink()  # other tests list this store
    body = assert_error(response, 500, "internal_error", "Internal server error")
    assert response.headers["x-error-id"] == body["error_id"]
    assert set(body) == {"error", "code", "error_id"}
    assert SECRET_MARKER not in response.text and "Traceback" not in response.text
    assert body["error_id"] in server.stderr()  # the detail is logged under the same id


# ------------------------------------------------------------------ SSE
def test_api_71_replay_of_a_finished_run(client: httpx.Client):
    run_id = run_source(client, HELLO, context={"name": "sse"}).json()["run_id"]
    frames = read_sse(client, run_id)
    types = [f["event"] for f in frames]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.count("task_succeeded") == 2
    for frame in frames:
        assert frame["id"] == frame["data"]["id"]
        assert frame["data"]["run_id"] == run_id
        assert frame["data"]["type"] == frame["event"]
        assert "output" not in frame["data"] and "input" not in frame["data"]  # ENG-160
    assert frames[-1]["data"]["run_status"] == "success"


def test_api_70_resume_with_last_event_id_or_after(client: httpx.Client):
    run_id = run_source(client, HELLO, context={"name": "resume"}).json()["run_id"]
    frames = read_sse(client, run_id)
    ids = [f["id"] for f in frames]
    resumed = read_sse(client, run_id, headers={"Last-Event-ID": ids[1]})
    assert [f["id"] for f in resumed] == ids[2:]
    via_query = read_sse(client, run_id, params={"after": ids[2]})
    assert [f["id"] for f in via_query] == ids[3:]
    # the header wins over the query
    both = read_sse(client, run_id, headers={"Last-Event-ID": ids[3]}, params={"after": ids[0]})
    assert [f["id"] for f in both] == ids[4:]
    # resuming after the last event closes without inventing one (API-72)
    assert read_sse(client, run_id, headers={"Last-Event-ID": ids[-1]}) == []


def test_api_70_cursor_errors(client: httpx.Client):
    run_id = run_source(client, HELLO).json()["run_id"]
    other = run_source(client, HELLO).json()["run_id"]
    foreign = read_sse(client, other)[0]["id"]
    for cursor in ("00000000-0000-4000-8000-000000000000", foreign):
        response = client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": cursor})
        assert_error(response, 410, "event_cursor_gone", "Event cursor is no longer available")
    twice = client.get(f"/runs/{run_id}/events",
                       headers=[("Last-Event-ID", "a"), ("Last-Event-ID", "b")])
    assert_error(twice, 400, "bad_request")
    assert_error(client.get(f"/runs/{run_id}/events", params={"after": "a\nb"}), 400,
                 "bad_request")
    not_utf8 = client.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": b"\xff\xfe"})
    assert_error(not_utf8, 400, "bad_request", "Last-Event-ID must be valid UTF-8")


def test_api_71_live_stream_follows_a_running_run(server, client):
    with ThreadPoolExecutor(1) as pool:
        future, run_id = post_in_background(
            pool, server, {"file": "slow.lua", "context": {"seconds": 0.6}},
            f"live-{time.monotonic_ns()}")
        wait_for_run(client, run_id)
        started = time.monotonic()
        frames = read_sse(client, run_id)
        elapsed = time.monotonic() - started
        assert future.result().json()["status"] == "success"
    types = [f["event"] for f in frames]
    assert "task_started" in types and types[-1] == "run_finished"
    assert elapsed < 5


# ------------------------------------------------------------------ webhooks
def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_api_40_unknown_webhook_is_404(client: httpx.Client):
    assert_error(client.post("/webhooks/nope"), 404, "not_found", "Webhook 'nope' not found")


def test_api_44_simple_webhook_runs_with_the_body_as_context(server, client):
    response = client.post("/webhooks/simple", json={"name": "Hook"})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success"
    record = client.get(f"/runs/{body['run_id']}").json()
    assert record["ctx"]["greeting"] == "Hello, Hook!"
    assert record["ctx"]["_webhook"] == "simple"
    assert record["ctx"]["_flow_dir"] == os.path.realpath(server.flows)
    empty = client.post("/webhooks/simple")  # API-42: empty body -> {}
    assert empty.json()["status"] == "success"


def test_api_41_43_signed_webhook_forwards_headers_without_persisting_them(client):
    raw = json.dumps({"name": "Signed"}).encode()
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    response = client.post("/webhooks/signed", content=raw, headers={
        "Content-Type": "application/json", "X-Signature": sign(raw), "traceparent": trace})
    assert response.status_code == 200, response.text
    record = client.get(f"/runs/{response.json()['run_id']}").json()
    assert record["status"] == "success"
    assert record["ctx"]["greeting"] == "Hello, Signed!"
    assert record["ctx"]["header_hash"] == hashlib.sha256(trace.encode()).hexdigest()
    assert "_headers" not in record["ctx"]  # ENG-130: the overlay is never persisted
    assert trace not in json.dumps(record)


def test_api_41_bad_signatures_are_403_and_start_nothing(client: httpx.Client):
    before = client.get("/runs", params={"limit": 20}).json()["runs"][0]["id"]
    raw = json.dumps({"name": "x"}).encode()
    json_type = {"Content-Type": "application/json"}
    cases = [
        {},
        {"X-Signature": sign(raw + b" ")},
        {"X-Signature": sign(raw).replace("sha256=", "sha1=")},
        {"X-Signature": "sha256=zz"},
    ]
    for headers in cases:
        response = client.post("/webhooks/signed", content=raw, headers={**json_type, **headers})
        assert_error(response, 403, "forbidden", "invalid webhook signature")
    twice = client.post("/webhooks/signed", content=raw, headers=[
        ("Content-Type", "application/json"), ("X-Signature", sign(raw)),
        ("X-Signature", sign(raw))])
    assert_error(twice, 403, "forbidden", "invalid webhook signature")
    assert client.get("/runs", params={"limit": 20}).json()["runs"][0]["id"] == before


def test_signed_webhook_needs_no_api_key_but_a_valid_signature(server):
    raw = json.dumps({"name": "NoKey"}).encode()
    with server.client(auth=False) as anonymous:
        response = anonymous.post("/webhooks/signed", content=raw, headers={
            "Content-Type": "application/json", "X-Signature": sign(raw)})
        assert response.status_code == 200, response.text
        assert anonymous.get(f"/runs/{response.json()['run_id']}").status_code == 401
        forged = anonymous.post("/webhooks/signed", content=raw, headers={
            "Content-Type": "application/json", "X-Signature": sign(raw + b" ")})
        assert_error(forged, 403, "forbidden", "invalid webhook signature")
        # Without a signing secret the API key is still required.
        assert anonymous.post("/webhooks/simple", json={"name": "x"}).status_code == 401


def test_api_42_43_webhook_body_and_header_errors(client: httpx.Client):
    def post(raw: bytes, content_type: str = "application/json", **headers: str):
        return client.post("/webhooks/signed", content=raw, headers={
            "Content-Type": content_type, "X-Signature": sign(raw), **headers})

    assert_error(post(b'{"a": 1}', "text/plain"), 415, "unsupported_media_type")
    assert post(b'{"name": "v"}', "application/vnd.api+json; charset=utf-8").status_code == 200
    assert_error(post(b"[1, 2]"), 400, "bad_request", "webhook request body must be a JSON object")
    assert_error(post(b"{broken"), 400, "bad_request")
    for key in ("_headers", "_webhook", "_flow_dir"):
        assert_error(post(json.dumps({key: 1}).encode()), 400, "bad_request")
    assert post(b"{}", traceparent="push").status_code == 200  # no minimum length
    assert_error(post(b"{}", traceparent="bad\x01"), 400, "bad_request")
    twice = client.post("/webhooks/signed", content=b"{}", headers=[
        ("Content-Type", "application/json"), ("X-Signature", sign(b"{}")),
        ("traceparent", "a" * 20), ("traceparent", "b" * 20)])
    assert_error(twice, 400, "bad_request")
    assert_error(client.post("/webhooks/missing_flow"), 404, "not_found", "Flow file not found")


# ------------------------------------------------------------------ OpenAPI
OPENAPI_31_SUBSET = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
        "info": {"type": "object", "required": ["title", "version"]},
        "paths": {
            "type": "object",
            "propertyNames": {"pattern": "^/"},
            "additionalProperties": {
                "type": "object",
                "propertyNames": {"enum": ["get", "put", "post", "delete", "options", "head",
                                           "patch", "trace", "summary", "description",
                                           "parameters", "servers"]},
                "additionalProperties": {"$ref": "#/$defs/operation"},
            },
        },
        "components": {"type": "object"},
        "security": {"type": "array"},
    },
    "$defs": {
        "operation": {
            "type": "object",
            "required": ["responses"],
            "properties": {
                "responses": {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": {"pattern": "^([1-5][0-9X]{2}|default)$"},
                    "additionalProperties": {"type": "object", "required": ["description"]},
                },
                "parameters": {"type": "array", "items": {
                    "type": "object", "required": ["name", "in"],
                    "properties": {"in": {"enum": ["query", "header", "path", "cookie"]}},
                }},
                "requestBody": {"type": "object", "required": ["content"]},
                "security": {"type": "array"},
            },
        },
    },
}


def test_openapi_document_is_valid_and_matches_the_routes(server, client):
    from jsonschema import Draft202012Validator
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    from ironflow_core.api.app import ROUTES

    document = client.get("/openapi.json").json()
    Draft202012Validator(OPENAPI_31_SUBSET).validate(document)
    documented = {(path, method.upper()) for path, item in document["paths"].items()
                  for method in item}
    assert documented == {(path, method) for path, methods in ROUTES for method in methods}
    for name, schema in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        assert name
    # every path parameter in a template is declared, and every route is live
    for path, item in document["paths"].items():
        for op in item.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
        live = client.request(next(iter(item)).upper(),
                              path.replace("{run_id}", "no-such-run").replace("{name}", "nope"))
        assert live.status_code not in (405,), path

    # real responses match the documented schemas
    registry = Registry().with_resource("urn:ironflow:openapi",
                                        DRAFT202012.create_resource(document))

    def check(response: httpx.Response, path: str, method: str = "get") -> None:
        content = document["paths"][path][method]["responses"][str(response.status_code)]
        schema = content["content"]["application/json"]["schema"]
        Draft202012Validator({"$ref": "urn:ironflow:openapi" + schema["$ref"]},
                             registry=registry).validate(response.json())

    run = run_source(client, HELLO)
    check(run, "/flows/run", "post")
    check(client.get("/runs"), "/runs")
    check(client.get(f"/runs/{run.json()['run_id']}"), "/runs/{run_id}")
    check(client.get("/runs/bad.id"), "/runs/{run_id}")
    check(client.get("/nodes"), "/nodes")
    check(client.get("/health/ready"), "/health/ready")
    check(client.post("/flows/validate", json={"source": HELLO}), "/flows/validate", "post")
    check(client.delete(f"/runs/{run.json()['run_id']}"), "/runs/{run_id}", "delete")


# ------------------------------------------------------------------ other servers
@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory):
    """Auth off by explicit opt-in, no flows dir: files resolve against the cwd."""
    root = tmp_path_factory.mktemp("open")
    write_flows(root)
    proc = ServerProcess(root, env=clean_env(IRONFLOW_ALLOW_UNAUTHENTICATED_API="true"),
                         api_key=None).start()
    yield proc
    proc.stop()


def test_api_3_unauthenticated_when_explicitly_allowed(open_server: ServerProcess):
    with open_server.client() as c:
        assert c.get("/nodes").status_code == 200
        body = c.post("/flows/run", json={"source": HELLO}).json()
        assert body["status"] == "success"
        record = c.get(f"/runs/{body['run_id']}").json()
        assert "_flow_dir" not in record["ctx"]  # API-14: no flows_dir, inline run


def test_api_31_files_without_flows_dir(open_server: ServerProcess):
    with open_server.client() as c:
        relative = c.post("/flows/run", json={"file": "flows/hello.lua"}).json()
        assert relative["status"] == "success"
        assert c.get(f"/runs/{relative['run_id']}").json()["ctx"]["_flow_dir"] == "flows"
        absolute = c.post("/flows/run", json={"file": str(open_server.cwd / "outside.lua")})
        assert absolute.json()["status"] == "success"
        missing = c.post("/flows/run", json={"file": "flows/none.lua"})
        assert_error(missing, 404, "not_found", "Flow file not found: flows/none.lua")
        gone = c.post("/flows/run", json={"file": str(open_server.cwd / "none.lua")})
        assert_error(gone, 400, "bad_request", "Failed to load flow file")


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory):
    """Ad-hoc sources off, one admitted run at a time, a tiny event memory, CORS on."""
    root = tmp_path_factory.mktemp("strict")
    flows = write_flows(root)
    env = clean_env(IRONFLOW_API_KEY=API_KEY, IRONFLOW_ALLOW_ADHOC_FLOWS="false",
                    IRONFLOW_MAX_CONCURRENT_RUNS="1", IRONFLOW_EVENT_MEMORY_CAPACITY="10",
                    IRONFLOW_CORS_ORIGINS="http://app.example")
    proc = ServerProcess(root, env=env, args=["--flows-dir", str(flows)]).start()
    yield proc
    proc.stop()


def test_api_11_adhoc_sources_forbidden(strict_server: ServerProcess):
    with strict_server.client() as c:
        for path in ("/flows/run", "/flows/validate"):
            assert_error(c.post(path, json={"source": HELLO}), 403, "forbidden")
            # checked before decoding anything
            assert_error(c.post(path, json={"source_base64": "!!"}), 403, "forbidden")
        assert c.post("/flows/run", json={"file": "hello.lua"}).json()["status"] == "success"


def test_eng_121_run_admission_limit_is_503(strict_server: ServerProcess):
    with strict_server.client() as c, ThreadPoolExecutor(1) as pool:
        future, run_id = post_in_background(
            pool, strict_server, {"file": "slow.lua", "context": {"seconds": 1.0}},
            f"admit-{time.monotonic_ns()}")
        wait_for_run(c, run_id)
        busy = c.post("/flows/run", json={"file": "hello.lua"})
        assert_error(busy, 503, "service_unavailable")
        assert future.result().json()["status"] == "success"
        assert c.post("/flows/run", json={"file": "hello.lua"}).status_code == 200


def test_api_74_evicted_cursor_is_gone(strict_server: ServerProcess):
    with strict_server.client() as c:
        first = c.post("/flows/run", json={"file": "many.lua"}).json()["run_id"]
        oldest = read_sse(c, first)
        assert len(oldest) <= 10
        c.post("/flows/run", json={"file": "many.lua"})
        response = c.get(f"/runs/{first}/events", headers={"Last-Event-ID": oldest[0]["id"]})
        assert_error(response, 410, "event_cursor_gone")


def test_api_4_cors_echoes_configured_origins(strict_server: ServerProcess):
    with strict_server.client(auth=False) as anon:
        preflight = anon.options("/flows/run", headers={
            "Origin": "http://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"
        other = anon.get("/health", headers={"Origin": "http://other.example"})
        assert "access-control-allow-origin" not in other.headers


def test_api_61_limit_cap_follows_max_list_records(strict_server: ServerProcess):
    with strict_server.client() as c:
        assert c.get("/runs").json()["limit"] == 50
        assert c.get("/runs?limit=100").status_code == 200
        assert_error(c.get("/runs?limit=101"), 400, "bad_request")


HOG_SECONDS = 5
"""How long the spinning load holds the only load slot (its Lua time budget): well
past the 1 s a blocked request queues before its 503, so a slow machine still
sends that request while the slot is held."""


def flow_loads_in_progress(client: httpx.Client) -> float:
    """The server's ``ironflow_active_work{kind="flow_load"}`` gauge."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('ironflow_active_work{kind="flow_load"}'):
            return float(line.split()[-1])
    return 0.0


def test_eng_121_flow_load_limit_is_503_when_a_load_hogs_the_slot(tmp_path: Path):
    """The blocked request is sent once the server reports the spinning load in its
    only slot (not after a guessed sleep), and gets its 503 while that load still runs."""
    env = clean_env(IRONFLOW_API_KEY=API_KEY, IRONFLOW_MAX_CONCURRENT_FLOW_LOADS="1",
                    IRONFLOW_LUA_MAX_SECONDS=str(HOG_SECONDS), IRONFLOW_LUA_MAX_INSTRUCTIONS="0",
                    IRONFLOW_METRICS_ENABLED="true")
    server = ServerProcess(tmp_path, env=env, args=["--flows-dir", str(write_flows(tmp_path))])
    server.start()
    try:
        with server.client() as c, ThreadPoolExecutor(1) as pool:
            def spin() -> httpx.Response:
                with server.client() as other:
                    return other.post("/flows/validate", json={"file": "spin.lua"})

            spinning = pool.submit(spin)
            deadline = time.monotonic() + 30
            while flow_loads_in_progress(c) < 1:
                assert not spinning.done(), spinning.result().text
                assert time.monotonic() < deadline
                time.sleep(0.02)
            started = time.monotonic()
            blocked = c.post("/flows/validate", json={"file": "hello.lua"})
            assert_error(blocked, 503, "service_unavailable")
            assert not spinning.done()  # refused while the slot is still held
            assert time.monotonic() - started < HOG_SECONDS
            assert spinning.result(30).json() == {"valid": False, "flow_name": None,
                                                  "steps": None,
                                                  "errors": ["Failed to load flow file"]}
            assert flow_loads_in_progress(c) == 0
            assert c.post("/flows/validate", json={"file": "hello.lua"}).json()["valid"] is True
    finally:
        server.stop()
