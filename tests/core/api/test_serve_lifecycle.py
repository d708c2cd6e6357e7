"""``ironflow serve`` start-up checks and graceful shutdown (CLI-70, API-3, ENG-121, ENG-170)."""

from __future__ import annotations

import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .flows import write_flows
from .server_process import (
    API_KEY,
    ServerProcess,
    assert_error,
    clean_env,
    post_in_background,
    run_cli,
    wait_for_run,
)


@pytest.mark.parametrize(("env", "args", "config", "message"), [
    ({}, [], "",
     "Error: API authentication is required when binding to '127.0.0.1'. Set "
     "IRONFLOW_API_KEY, or set IRONFLOW_ALLOW_UNAUTHENTICATED_API=true to opt out."),
    ({"IRONFLOW_ALLOW_UNAUTHENTICATED_API": "yes"}, [], "",
     "Error: Invalid value 'yes' for IRONFLOW_ALLOW_UNAUTHENTICATED_API (environment): "
     "expected true or false"),
    ({"IRONFLOW_API_KEY": API_KEY, "IRONFLOW_ALLOW_ADHOC_FLOWS": "false"}, [], "",
     "Error: allow_adhoc_flows=false requires a configured flows_dir"),
    ({"IRONFLOW_API_KEY": API_KEY, "SHORT_SECRET": "too-short"}, [],
     "webhooks:\n  h:\n    flow: x.lua\n    signature: {header: x-sig, secret_env: SHORT_SECRET}\n",
     "Error: webhook 'h': the secret in SHORT_SECRET must be at least 16 bytes"),
])
def test_cli_70_invalid_settings_refuse_to_start(tmp_path: Path, env, args, config, message):
    if config:
        (tmp_path / "ironflow.yaml").write_text(config)
    result = run_cli(["serve", "--host", "127.0.0.1", "--port", "0", *args], cwd=tmp_path,
                     env=clean_env(**env), timeout=20)
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert "Traceback" not in result.stderr


def test_cli_70_bind_failure_names_the_address(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(["serve", "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path,
                         env=clean_env(IRONFLOW_API_KEY=API_KEY), timeout=20)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: failed to bind API server to 127.0.0.1:{port}: ")


def test_cli_70_sigterm_drains_then_cancels(tmp_path: Path):
    """Accepted runs finish within the grace period; the rest are recorded cancelled.

    Two runs execute at once (IRONFLOW_MAX_CONCURRENT_WORKFLOWS=2), so the third
    accepted run waits as ``pending`` and still completes during the drain.
    """
    flows = write_flows(tmp_path)
    env = clean_env(IRONFLOW_API_KEY=API_KEY, IRONFLOW_SHUTDOWN_GRACE_SECONDS="3",
                    IRONFLOW_MAX_CONCURRENT_WORKFLOWS="2")
    server = ServerProcess(tmp_path, env=env, args=["--flows-dir", str(flows)]).start()
    try:
        with server.client() as c, ThreadPoolExecutor(3) as pool:
            quick, quick_id = post_in_background(
                pool, server, {"file": "slow.lua", "context": {"seconds": 1.2}}, "quick")
            stuck, stuck_id = post_in_background(
                pool, server, {"file": "slow.lua", "context": {"seconds": 60}}, "stuck")
            wait_for_run(c, quick_id)
            wait_for_run(c, stuck_id)
            queued, queued_id = post_in_background(
                pool, server, {"file": "slow.lua", "context": {"seconds": 0.2}}, "queued")
            assert wait_for_run(c, queued_id)["status"] == "pending"  # waits for a slot
            server.signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            while c.get("/health/ready").status_code != 503:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert c.get("/health/ready").json()["status"] == "draining"
            assert c.get("/health/live").status_code == 200
            refused = c.post("/flows/run", json={"file": "hello.lua"})
            assert_error(refused, 503, "service_unavailable")
            assert quick.result(20).json() == {"run_id": quick_id, "flow_name": "slow",
                                               "status": "success"}
            assert queued.result(20).json()["status"] == "success"
            stuck_reply = stuck.result(20).json()
            assert stuck_reply == {"run_id": stuck_id, "flow_name": "slow",
                                   "status": "cancelled"}
        assert server.wait(20) == 0
    finally:
        server.kill()
    # The records on disk agree (read back through the CLI).
    listing = run_cli(["list", "--format", "json", "--store-dir", str(server.store_dir)],
                      cwd=tmp_path, env=clean_env())
    statuses = {r["id"]: r["status"] for r in json.loads(listing.stdout)["runs"]}
    assert statuses == {quick_id: "success", queued_id: "success", stuck_id: "cancelled"}
    record = json.loads(run_cli(["inspect", stuck_id, "--store-dir", str(server.store_dir)],
                                cwd=tmp_path, env=clean_env()).stdout)
    assert record["finished"] is not None
    assert record["tasks"]["wait"]["status"] == "cancelled"
