"""Issue 14 through ``ironflow`` processes: kill -9, list, resume, recovery, bad files.

Real processes on a real JSON store: ``ironflow run`` is killed with SIGKILL
mid-step, and what a user sees afterwards is checked (``list``, ``inspect``,
``resume``, ``serve`` with ``IRONFLOW_RECOVERY=resume``, ``POST /runs/{id}/resume``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import trio

from ironflow_core.errors import StoreError
from ironflow_core.stores.json_store import JsonStore

from .flows import write_flows
from .server_process import API_KEY, ServerProcess, clean_env, ironflow_command

SLOW_FLOW = """
local flow = Flow.new("slowrun")
flow:step("first", function(ctx) return { first = "done" } end)
flow:step("wait", nodes.delay({ seconds = 4 })):depends_on("first")
flow:step("done", function(ctx) return { result = ctx.first .. "+waited" } end)
  :depends_on("wait")
return flow
"""


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess:
    return subprocess.run([*ironflow_command(), *args], capture_output=True, text=True,
                          env=clean_env(**(env or {})), timeout=timeout)


def start_and_kill(tmp_path: Path, store: Path, ttl: str = "1") -> str:
    """Start a run of SLOW_FLOW, SIGKILL it while ``wait`` runs; returns its run id."""
    flow = tmp_path / "slowrun.lua"
    flow.write_text(SLOW_FLOW)
    proc = subprocess.Popen(
        [*ironflow_command(), "run", str(flow), "--store-dir", str(store)],
        env=clean_env(IRONFLOW_LEASE_TTL_SECONDS=ttl, IRONFLOW_PROGRESS="off"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for name in os.listdir(store) if store.exists() else ():
                if name.endswith(".json") and not name.endswith(".summary.json"):
                    try:
                        record = trio.run(JsonStore(store).get_run, name[:-5])
                    except StoreError:
                        continue
                    wait = record.tasks.get("wait")
                    if wait is not None and wait.status == "running":
                        return name[:-5]
            time.sleep(0.05)
        raise AssertionError("the run never reached its delay step")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_killed_cli_run_shows_as_owner_gone_and_resumes_in_place(tmp_path: Path):
    store = tmp_path / "runs"
    run_id = start_and_kill(tmp_path, store)
    time.sleep(1.2)  # the 1 s lease expires
    listed = cli("list", "--store-dir", str(store))
    assert listed.returncode == 0, listed.stderr
    assert f"Note: run {run_id} is not running any more: owner gone" in listed.stdout
    shown = json.loads(cli("inspect", run_id, "--store-dir", str(store)).stdout)
    assert shown["status"] == "running" and shown["owner_gone"] is True
    (tmp_path / "slowrun.lua").unlink()  # the flow travels with the run
    resumed = cli("resume", run_id, "--store-dir", str(store), "--format", "json",
                  env={"IRONFLOW_LEASE_TTL_SECONDS": "1"}, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads(resumed.stdout)
    assert record["id"] == run_id and record["status"] == "success"
    assert record["ctx"]["result"] == "done+waited"
    assert record["tasks"]["first"]["attempt"] == 1  # recorded: not run again
    assert record["tasks"]["wait"]["attempt"] == 2  # in flight: ran again
    assert "owner gone" not in cli("list", "--store-dir", str(store)).stdout


def published_leases(leases: Path) -> list[str]:
    """Run IDs of the published lease files in ``leases``, leaving temporary files out."""
    if not leases.exists():
        return []
    return [name[:-6] for name in os.listdir(leases)
            if name.endswith(".lease") and not name.startswith(".")]


def test_resume_of_a_run_that_still_executes_is_refused(tmp_path: Path):
    flow = tmp_path / "slowrun.lua"
    flow.write_text(SLOW_FLOW.replace("seconds = 4", "seconds = 120"))
    store = tmp_path / "runs"
    proc = subprocess.Popen([*ironflow_command(), "run", str(flow), "--store-dir", str(store)],
                            env=clean_env(IRONFLOW_PROGRESS="off"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        leases = store / ".ironflow-run-leases-v1"
        # The lease is published as ``.<id>.lease.<hex>.tmp`` then renamed: only a
        # published ``<id>.lease`` names the run.
        while not (published := published_leases(leases)):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        [run_id] = published
        refused = cli("resume", run_id, "--store-dir", str(store))
        assert refused.returncode == 1
        assert refused.stderr.startswith(f"Error: Run '{run_id}' is still executing: owner ")
        assert "holds its lease until" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_context_values_no_store_can_keep_are_refused_by_the_cli(tmp_path: Path):
    flow = tmp_path / "slowrun.lua"
    flow.write_text('local f = Flow.new("x")\nf:step("a", function() return {} end)\nreturn f\n')
    for text in ('{"x": NaN}', '{"x": Infinity}', '{"x": 1e999}', '{"x": ' + "[" * 5000 +
                 "]" * 5000 + "}"):
        proc = cli("run", str(flow), "--store-dir", str(tmp_path / "runs"), "--context", text)
        assert proc.returncode == 1
        assert proc.stderr.startswith("Error: Failed to parse --context JSON: "), proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing stored


def test_serve_recovers_a_killed_run_in_place_and_resume_endpoint(tmp_path: Path):
    store = tmp_path / "store"
    run_id = start_and_kill(tmp_path, store)
    flows = write_flows(tmp_path)
    server = ServerProcess(tmp_path, env=clean_env(
        IRONFLOW_API_KEY=API_KEY, IRONFLOW_RECOVERY="resume", IRONFLOW_LEASE_TTL_SECONDS="2",
    ), args=["--flows-dir", str(flows)])
    time.sleep(1.2)
    server.start()
    try:
        with server.client() as c:
            deadline = time.monotonic() + 90
            while (record := c.get(f"/runs/{run_id}").json())["status"] != "success":
                assert record["status"] == "running", (record, server.stderr())
                assert time.monotonic() < deadline
                time.sleep(0.2)
            assert record["tasks"]["wait"]["attempt"] == 2
            assert record["ctx"]["result"] == "done+waited"
            refused = c.post(f"/runs/{run_id}/resume")
            assert refused.status_code == 409 and "already succeeded" in refused.text
            assert c.post("/runs/no-such-run/resume").status_code == 404
    finally:
        server.stop()


def test_bad_store_entries_are_skipped_and_reported(tmp_path: Path):
    flows = write_flows(tmp_path)
    server = ServerProcess(tmp_path, env=clean_env(IRONFLOW_API_KEY=API_KEY),
                           args=["--flows-dir", str(flows)])
    good = cli("run", str(flows / "hello.lua"), "--store-dir", str(server.store_dir),
               "--format", "json")
    run_id = json.loads(good.stdout)["id"]
    bad = {"00000000-0000-4000-8000-000000000001.json": "",
           "00000000-0000-4000-8000-000000000002.json": "[]",
           "not-a-uuid.json": "{}"}
    for name, text in bad.items():
        (server.store_dir / name).write_text(text)
    (server.store_dir / "x.json").mkdir()
    listed = cli("list", "--store-dir", str(server.store_dir))
    assert listed.returncode == 0, listed.stderr
    assert run_id in listed.stdout
    for name in [*bad, "x.json"]:
        if name != "not-a-uuid.json":  # a valid run id that is no UUID is just a run
            assert str(server.store_dir / name) in listed.stderr
    assert "Warning: skipped JSON store entry" in listed.stderr
    server.start()
    try:
        with server.client() as c:
            runs = c.get("/runs")
            assert runs.status_code == 200 and run_id in [r["id"] for r in runs.json()["runs"]]
            assert c.get("/health/ready").status_code == 200
    finally:
        server.stop()
