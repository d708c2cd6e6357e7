"""semantics.md#acceptance acceptance for the plugin nodes (files, ZIP, shell, HTTP), via the CLI.

The flows under ``plugins/`` are our own, written to exercise what the upstream
``04-file-operations``, ``05-http`` and ``06-shell`` examples pin. Files live
under ``tmp_path`` (passed with ``--context``); the HTTP flows talk to a real
server on 127.0.0.1 started here, with the httpbin-style routes they call.
Operator policies (``IRONFLOW_SHELL_ALLOW``, ``IRONFLOW_FS_ROOTS``) and the
process-group kill of SH-5 are checked through the same real runs.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from .cli_helpers import run_json

PLUGIN_FLOWS = Path(__file__).parent / "plugins"


def run_plugin(name: str, tmp_path: Path, context: dict | None = None,
               env: dict | None = None) -> tuple[int, dict, str]:
    """``run_json`` for a flow under ``plugins/`` (an absolute path overrides ``flows/``)."""
    return run_json(str(PLUGIN_FLOWS / name), tmp_path, context, env)


# --------------------------------------------------------------------------- HTTP mock

SAMPLE_DOCUMENT = {
    "library": {
        "name": "Loopback Lending",
        "books": [
            {"title": "Graphs for Gardeners", "copies": 2},
            {"title": "The Quiet Scheduler", "copies": 5},
        ],
    }
}


class MockHandler(BaseHTTPRequestHandler):
    """httpbin-shaped routes: echo endpoints, auth checks and ``/status/<n>``."""

    protocol_version = "HTTP/1.1"
    server: MockServer

    def log_message(self, format: str, *args: object) -> None:
        """Keep pytest output clean."""

    def _reply(self, status: int, payload: object = None,
               headers: dict[str, str] | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        self.server.hits.append({"method": self.command, "path": parts.path,
                                 "time": time.monotonic(), "headers": dict(self.headers)})
        echo = {
            "args": dict(parse_qsl(parts.query)),
            "headers": dict(self.headers),
            "data": raw.decode("utf-8", "replace"),
            "url": f"http://{self.headers.get('Host')}{self.path}",
        }
        segments = [s for s in parts.path.split("/") if s]
        route = segments[0] if segments else ""
        if route in ("get", "post", "put", "delete"):
            if self.command.lower() != route:
                self._reply(405, {"error": "method not allowed"})
            else:
                self._reply(200, echo)
        elif route == "json":
            self._reply(200, SAMPLE_DOCUMENT)
        elif route == "bearer":
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            if scheme == "Bearer" and token:
                self._reply(200, {"authenticated": True, "token": token})
            else:
                self._reply(401, None, {"WWW-Authenticate": "Bearer"})
        elif route == "basic-auth" and len(segments) == 3:
            expected = base64.b64encode(f"{segments[1]}:{segments[2]}".encode()).decode()
            if self.headers.get("Authorization") == f"Basic {expected}":
                self._reply(200, {"authenticated": True, "user": segments[1]})
            else:
                self._reply(401, None, {"WWW-Authenticate": 'Basic realm="mock"'})
        elif route == "status" and len(segments) == 2 and segments[1].isdigit():
            code = int(segments[1])
            # A long Retry-After: the flow's max_retry_after must cap the wait.
            extra = {"Retry-After": "30"} if code == 429 else {}
            self._reply(code, None, extra)
        else:
            self._reply(404, {"error": "no such route"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class MockServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), MockHandler)
        self.hits: list[dict] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServer]:
    server = MockServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def mock(mock_server: MockServer) -> MockServer:
    """The shared server with this test's request log only."""
    mock_server.hits.clear()
    return mock_server


# --------------------------------------------------------------------------- 04 files


@pytest.mark.parametrize(("context", "timestamp"), [
    ({"timestamp": "2026-02-26"}, "2026-02-26"),
    ({}, ""),  # optional: a missing key renders empty (INT-7)
])
def test_read_write_files(tmp_path, context, timestamp):
    work = tmp_path / "work"
    work.mkdir()
    (work / "neighbour.txt").write_text("already here")
    code, record, stderr = run_plugin("read_write_files.lua", tmp_path,
                                      {"dir": str(work), **context})
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    content = f"Hello from IronFlow!\nTimestamp: {timestamp}"
    assert ctx["result_content"] == content
    assert ctx["result_path"] == f"{work}/note.txt" and ctx["result_success"] is True
    assert ctx["write_file_path"] == f"{work}/note.txt" and ctx["write_file_success"] is True
    assert ctx["log_message"] == f"Read back: {content}"
    # LD-1/LD-2: the listing ran after the write, sorted by name.
    assert ctx["tmp_files"] == [
        {"name": "neighbour.txt", "type": "file", "path": f"{work}/neighbour.txt"},
        {"name": "note.txt", "type": "file", "path": f"{work}/note.txt"},
    ]
    assert ctx["delete_file_success"] is True and ctx["delete_file_path"] == f"{work}/note.txt"
    assert sorted(p.name for p in work.iterdir()) == ["neighbour.txt"]


def test_copy_move_files(tmp_path):
    code, record, stderr = run_plugin("copy_move_files.lua", tmp_path, {"dir": str(tmp_path)})
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["result_content"] == "Hello from IronFlow"
    assert ctx["copy_file_source"] == f"{tmp_path}/original.txt"
    assert ctx["copy_file_destination"] == f"{tmp_path}/duplicate.txt"
    assert ctx["move_file_destination"] == f"{tmp_path}/renamed.txt"
    assert ctx["copy_file_success"] is True and ctx["move_file_success"] is True
    assert ctx["log_message"] == "After copy and move: Hello from IronFlow"
    # ENG-91: both cleanups share a phase; the later-declared one's key wins.
    assert ctx["delete_file_path"] == f"{tmp_path}/renamed.txt"
    for name in ("original.txt", "duplicate.txt", "renamed.txt"):
        assert not (tmp_path / name).exists()
    assert record["tasks"]["drop_original"]["output"]["delete_file_path"] == (
        f"{tmp_path}/original.txt")


def test_zip_workflow(tmp_path):
    code, record, stderr = run_plugin("zip_workflow.lua", tmp_path, {"dir": str(tmp_path)})
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["zip_create_files"] == 2 and ctx["zip_create_success"] is True
    assert ctx["zip_create_path"] == f"{tmp_path}/bundle.zip"
    assert ctx["zip_members_count"] == 2
    assert [m["name"] for m in ctx["zip_members"]] == ["alpha.txt", "beta.txt"]
    assert {m["method"] for m in ctx["zip_members"]} == {"Deflated"}
    assert [m["size"] for m in ctx["zip_members"]] == [10, 11]
    assert all(m["is_directory"] is False for m in ctx["zip_members"])
    assert ctx["extracted_items"] == ["alpha.txt", "beta.txt"]
    assert ctx["extracted_items_count"] == 2
    assert ctx["zip_extract_destination"] == f"{tmp_path}/unpacked"
    assert ctx["log_message"] == f"2 members unpacked into {tmp_path}/unpacked"
    # The archive is gone; the source and extracted folders stay.
    assert not (tmp_path / "bundle.zip").exists()
    assert (tmp_path / "source" / "alpha.txt").read_text() == "first file"
    assert (tmp_path / "unpacked" / "alpha.txt").read_text() == "first file"
    assert (tmp_path / "unpacked" / "beta.txt").read_text() == "second file"


def test_zip_created_by_a_flow_is_a_standard_archive(tmp_path):
    """ZC-1/ZC-3/ZC-5: files only, files before subfolders, mode 0600, readable by zipfile."""
    src = tmp_path / "pack"
    (src / "inner").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "top.txt").write_text("top")
    (src / "inner" / "deep.txt").write_text("deep")
    code, record, stderr = run_plugin("zip_interop.lua", tmp_path,
                                      {"src": str(src), "out": str(tmp_path / "p.zip")})
    assert code == 0, stderr
    with zipfile.ZipFile(tmp_path / "p.zip") as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["pack/top.txt", "pack/inner/deep.txt"]
        assert archive.read("pack/inner/deep.txt") == b"deep"
        assert {(i.external_attr >> 16) & 0o777 for i in infos} == {0o600}
    assert record["ctx"]["zip_create_files"] == 2


# --------------------------------------------------------------------------- 06 shell


def test_run_commands(tmp_path):
    code, record, stderr = run_plugin("run_commands.lua", tmp_path)
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    user = pwd.getpwuid(os.geteuid()).pw_name
    assert ctx["user_stdout"] == f"{user}\n"  # SH-2: no trimming
    assert ctx["user_code"] == 0 and ctx["user_success"] is True and ctx["user_stderr"] == ""
    assert ctx["disk_success"] is True
    assert ctx["disk_stdout"].rstrip().endswith("/")  # df's last column: the mount point
    assert ctx["echo_stdout"] == "Hello IronFlow from shell_command node\n"
    assert ctx["probe_code"] == 7
    assert ctx["probe_success"] is False
    assert ctx["probe_stderr"] == "service not ready"
    assert ctx["probe_stdout"] == ""
    assert "probe_output_truncated" not in ctx  # SH-3: only present when a cap was hit
    assert record["tasks"]["probe"]["status"] == "success"  # SH-4 with fail_on_nonzero=false
    assert ctx["log_message"] == f"user={user}\n probe=7"


def test_sh_6_structured_failure_recovered_with_error_output(tmp_path):
    code, record, stderr = run_plugin("shell_structured_failure.lua", tmp_path)
    ctx, tasks = record["ctx"], record["tasks"]
    assert code == 0 and record["status"] == "success", stderr
    expected = {"command_stdout": "completed", "command_stderr": "rejected",
                "command_code": 7, "command_success": False}
    job = tasks["job"]
    assert job["status"] == "failed"
    assert job["error"] == "Command 'sh' exited with code 7"
    assert "rejected" not in job["error"]
    assert job["output"] == expected  # ENG-82 (a): stored on the failed task
    assert {k: ctx[k] for k in expected} == expected  # (b): published to the context
    assert ctx["rescued_output"] == expected  # (c): handed to on_error as _error_output
    assert ctx["rescued_from"] == "job"
    assert ctx["rescued_message"] == (
        "Task 'job' failed after 1 attempts: Command 'sh' exited with code 7")
    assert "_error_output" not in ctx and "_error_step" not in ctx  # overlay only
    assert tasks["after"]["status"] == "success"  # ENG-113: recovery unblocks dependents
    assert ctx["log_message"] == "job exited 7; stdout was completed"


def _live_group_members(pgid: int) -> list[tuple[int, str]]:
    """Processes (pid, state) of process group ``pgid`` that are not zombies."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            found.append((int(entry.name), state))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sh_5_timeouts_kill_the_shell_process_group(tmp_path):
    started = time.monotonic()
    code, record, stderr = run_plugin("shell_timeout_tree.lua", tmp_path, {"dir": str(tmp_path)})
    elapsed = time.monotonic() - started
    tasks = record["tasks"]
    assert code == 1 and record["status"] == "failed", stderr
    assert elapsed < 15, f"run took {elapsed:.1f}s: the 30 s sleeps were waited for"
    # ENG-72: the step deadline; SH-5: the node's own timeout. Neither keeps output.
    assert tasks["hang"]["error"] == "Task 'hang' timed out after 1s total"
    assert tasks["hang_node"]["error"] == (
        "Command 'sh' timed out after 0.5s (process terminated)")
    for name in ("hang", "hang_node"):
        assert tasks[name]["status"] == "failed"
        assert not tasks[name].get("output")
    assert tasks["never"]["status"] == "skipped"
    for pids in ("step.pids", "node.pids"):
        shell_pid, pgid, background_pid = map(int, (tmp_path / pids).read_text().split())
        assert pgid == shell_pid  # SH-5: the child is started as a group leader
        deadline = time.monotonic() + 3  # signal delivery and reaping are asynchronous
        while (_live_group_members(pgid) or _alive(background_pid)) and (
                time.monotonic() < deadline):
            time.sleep(0.05)
        assert _live_group_members(pgid) == [], pids
        assert not _alive(background_pid), pids


def test_shell_allow_refusal_names_the_variable(tmp_path):
    code, record, stderr = run_plugin("shell_allow.lua", tmp_path, {"dir": str(tmp_path)},
                                      env={"IRONFLOW_SHELL_ALLOW": "echo"})
    tasks = record["tasks"]
    assert code == 1 and record["status"] == "failed", stderr
    assert tasks["admitted"]["status"] == "success"
    assert record["ctx"]["admitted_stdout"] == "allowed\n"
    assert tasks["refused"]["status"] == "failed"
    assert tasks["refused"]["error"] == (
        "shell_command: program 'sh' is not allowed by IRONFLOW_SHELL_ALLOW")
    assert "refused_code" not in record["ctx"]
    assert not (tmp_path / "marker").exists()  # refused before anything started


def test_fs_roots_refusal_names_the_variable(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the root")
    context = {
        "inside": str(allowed / "kept.txt"),
        "outside": str(secret),
        # `..` resolves outside the root even though the text starts inside it.
        "escape": str(allowed / ".." / "escaped.txt"),
    }
    code, record, stderr = run_plugin("fs_roots.lua", tmp_path, context,
                                      env={"IRONFLOW_FS_ROOTS": str(allowed)})
    tasks, ctx = record["tasks"], record["ctx"]
    assert code == 1 and record["status"] == "failed", stderr
    assert tasks["inside"]["status"] == "success"
    assert (allowed / "kept.txt").read_text() == "kept"
    assert tasks["peek"]["status"] == "failed"
    assert tasks["peek"]["error"] == (
        f"read_file: '{secret}' is outside the directories allowed by IRONFLOW_FS_ROOTS")
    assert tasks["escape"]["status"] == "failed"
    assert tasks["escape"]["error"] == (
        f"write_file: '{context['escape']}' is outside the directories allowed by "
        "IRONFLOW_FS_ROOTS")
    assert "peek_content" not in ctx
    assert not (tmp_path / "escaped.txt").exists()


# --------------------------------------------------------------------------- 05 http


def test_api_call(tmp_path, mock):
    code, record, stderr = run_plugin("api_call.lua", tmp_path, {"base": mock.base})
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["api_status"] == 200 and ctx["api_success"] is True
    assert ctx["api_data"] == SAMPLE_DOCUMENT  # HTTP-4: JSON body parsed
    assert ctx["api_headers"]["content-type"] == "application/json"
    assert ctx["api_attempts"] == 1
    assert ctx["log_message"] == "status=200 ok=true"


@pytest.mark.parametrize(("env", "token"), [({}, "demo-token"), ({"API_TOKEN": "t-42"}, "t-42")])
def test_authenticated_request(tmp_path, mock, env, token):
    code, record, stderr = run_plugin("authenticated_request.lua", tmp_path,
                                      {"base": mock.base}, env=env)
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["bearer_status"] == 200 and ctx["basic_status"] == 200
    assert ctx["bearer_data"] == {"authenticated": True, "token": token}
    assert ctx["basic_data"] == {"authenticated": True, "user": "user"}
    assert ctx["log_message"] == "bearer=200 basic=200"


def test_http_methods(tmp_path, mock):
    code, record, stderr = run_plugin("http_methods.lua", tmp_path,
                                      {"base": mock.base, "who": "Alice Smith"})
    ctx = record["ctx"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["generic_status"] == 200
    assert ctx["put_result_status"] == 200
    assert ctx["delete_result_status"] == 200
    assert ctx["post_result_status"] == 200
    assert ctx["generic_data"]["args"] == {"via": "generic"}
    # HTTP-3 json: compact, sorted keys, strings interpolated.
    assert ctx["put_result_data"]["data"] == '{"name":"Alice Smith","role":"admin"}'
    assert ctx["put_result_data"]["headers"]["Content-Type"] == "application/json"
    # HTTP-3 form: sorted pairs, %20 for space, only unreserved characters kept.
    assert ctx["post_result_data"]["data"] == "count=3&name=Alice%20Smith&note=a%26b%3Dc"
    assert ctx["post_result_data"]["headers"]["Content-Type"] == (
        "application/x-www-form-urlencoded")
    assert sorted((h["method"], h["path"]) for h in mock.hits) == [
        ("DELETE", "/delete"), ("GET", "/get"), ("POST", "/post"), ("PUT", "/put")]
    assert ctx["log_message"] == "GET 200, PUT 200, DELETE 200, POST 200"


@pytest.mark.parametrize(("site", "route"), [
    ("HTTPBIN.ORG", "has_httpbin"),  # case_sensitive = false
    ("example.net", "no_httpbin"),
])
def test_if_body_contains(tmp_path, mock, site, route):
    code, record, stderr = run_plugin("if_body_contains.lua", tmp_path,
                                      {"base": mock.base, "site": site})
    ctx, tasks = record["ctx"], record["tasks"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["_route_inspect"] == route
    assert ctx["_contains_inspect"] is (route == "has_httpbin")
    assert "_route_resp" not in ctx  # DSL-26: the config's _step_name is ignored
    other = "no_httpbin" if route == "has_httpbin" else "has_httpbin"
    assert tasks[route]["status"] == "success" and tasks[other]["status"] == "skipped"
    assert json.loads(ctx["resp_text"])["args"] == {"site": site}


def test_if_http_status_success_route(tmp_path, mock):
    code, record, stderr = run_plugin("if_http_status.lua", tmp_path, {"base": mock.base})
    ctx, tasks = record["ctx"], record["tasks"]
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["target_status"] == "200" and ctx["probe_status"] == 200
    assert ctx["_route_route"] == "success"
    assert ctx["_status_code_route"] == 200 and ctx["_status_class_route"] == "2xx"
    assert "_status_code_probe" not in ctx
    assert ctx["log_message"] == "HTTP  success"  # [quirk] the key read does not exist
    for name in ("unauthorized", "rate_limited", "unexpected"):
        assert tasks[name]["status"] == "skipped"


def test_if_http_status_class_route_for_another_2xx(tmp_path, mock):
    code, record, _ = run_plugin("if_http_status.lua", tmp_path,
                                 {"base": mock.base, "target_status": "204"})
    assert code == 0
    assert record["ctx"]["_route_route"] == "success"  # IHS-2: class key "2xx"
    assert record["ctx"]["probe_data"] == ""  # HTTP-4: empty body


def test_if_http_status_non_2xx_fails_the_probe(tmp_path, mock):
    code, record, stderr = run_plugin("if_http_status.lua", tmp_path,
                                      {"base": mock.base, "target_status": "429"})
    ctx, tasks = record["ctx"], record["tasks"]
    assert code == 1 and record["status"] == "failed", stderr
    # HTTP-7, with the URL path redacted (ENG-140).
    assert tasks["probe"]["error"] == f"HTTP GET {mock.base}/[REDACTED] returned status 429"
    assert "probe_status" not in ctx  # HTTP-7: no output published
    assert tasks["route"]["status"] == "skipped"
    assert "_route_route" not in ctx


@pytest.mark.parametrize(("target", "attempts", "route", "message"), [
    (None, 2, "rate_limited", "Rate limited after 2 attempt(s)"),
    ("503", 2, "provider_error", "Provider failed with 503 after 2 attempt(s)"),
    ("200", 1, "ok", "Provider answered 200 after 1 attempt(s)"),
    ("404", 1, "other", "Unhandled status 404, success=false"),
])
def test_status_inspection_retry(tmp_path, mock, target, attempts, route, message):
    context = {"base": mock.base} | ({} if target is None else {"target_status": target})
    code, record, stderr = run_plugin("status_inspection_retry.lua", tmp_path, context)
    ctx, tasks = record["ctx"], record["tasks"]
    status = int(target or "429")
    assert code == 0 and record["status"] == "success", stderr
    assert ctx["provider_status"] == status
    assert ctx["provider_success"] is (status < 300)
    assert ctx["provider_attempts"] == attempts
    assert ctx["_route_route"] == route
    assert tasks[route]["status"] == "success"
    assert ctx["log_message"] == message
    hits = [h for h in mock.hits if h["path"] == f"/status/{status}"]
    assert len(hits) == attempts
    if status == 429:
        assert ctx["provider_headers"]["retry-after"] == "30"
        gap = hits[1]["time"] - hits[0]["time"]
        # HTTP-6: Retry-After (30 s) is honoured but capped by max_retry_after (0.3 s).
        assert 0.25 <= gap < 5, gap


def test_http_1_retry_delay_below_minimum_fails_before_any_request(tmp_path, mock):
    code, record, stderr = run_plugin("status_inspection_retry.lua", tmp_path,
                                      {"base": mock.base, "backoff": 0})
    assert code == 1 and record["status"] == "failed", stderr
    assert record["tasks"]["probe"]["error"] == (
        "HTTP status_retry_backoff must be at least 0.01 seconds when status retries are enabled")
    assert mock.hits == []
    assert record["tasks"]["route"]["status"] == "skipped"
