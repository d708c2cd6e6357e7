"""Runs through the redis queue between real processes (issue 16).

``ironflow serve`` and ``ironflow submit`` record and enqueue; an
``ironflow worker`` subprocess executes; events come back through Redis. The
kill storm (4 workers, 40 runs, ~10 SIGKILLs) is the short version of
``bench/kill_storm.py``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from tests.core.api.server_process import API_KEY, ServerProcess, read_sse, run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from cluster import Workers, cluster_env
from kill_storm import storm

FLOW = """
local flow = Flow.new("queued")
flow:step("a", nodes.delay({ seconds = 0.05 }))
flow:step("b", nodes.template_render({ template = "hi ${ctx.who}", output_key = "greeting" }))
  :depends_on("a")
return flow
"""

FAILING = """
local flow = Flow.new("failing")
flow:step("a", nodes.shell_command({ cmd = "false" }))
return flow
"""


@pytest.fixture
def worker_pool(redis_url, tmp_path):  # type: ignore[no-untyped-def]
    env = cluster_env(redis_url, IRONFLOW_LEASE_TTL_SECONDS="3")
    pool = Workers(tmp_path, env, concurrency=2)
    pool.start()
    yield pool
    pool.stop_all()


def wait_for_workers(redis_client, count: int) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 60
    while redis_client.hlen("ironflow:{queue}:workers") < count:
        assert time.monotonic() < deadline, "workers never announced themselves"
        time.sleep(0.05)


def test_submit_wait_and_workers_through_the_cli(worker_pool, redis_client, tmp_path):
    env = worker_pool.env
    (tmp_path / "f.lua").write_text(FLOW)
    (tmp_path / "bad.lua").write_text(FAILING)
    wait_for_workers(redis_client, 1)
    listed = run_cli(["workers", "--format", "json"], cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    status = json.loads(listed.stdout)
    assert [w["name"] for w in status["workers"]] == ["worker-1"]
    assert status["workers"][0]["runs_in_hand"] == 0 and status["workers"][0]["pid"] > 0

    done = run_cli(["submit", "f.lua", "--context", '{"who": "Ada"}', "--wait",
                    "--format", "json"], cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "success" and record["ctx"]["greeting"] == "hi Ada"

    queued = run_cli(["submit", "f.lua", "--format", "json"], cwd=tmp_path, env=env)
    assert queued.returncode == 0, queued.stderr
    run_id = json.loads(queued.stdout)["run_id"]
    failed = run_cli(["submit", "bad.lua", "--wait"], cwd=tmp_path, env=env)
    assert failed.returncode == 1
    assert "finished with status failed" in failed.stderr
    shown = run_cli(["inspect", run_id], cwd=tmp_path, env=env)
    deadline = time.monotonic() + 30
    while json.loads(shown.stdout)["status"] != "success":
        assert time.monotonic() < deadline
        time.sleep(0.2)
        shown = run_cli(["inspect", run_id], cwd=tmp_path, env=env)
    assert redis_client.xpending("ironflow:{queue}:runs", "workers")["pending"] == 0


def test_serve_enqueues_for_workers_answers_202_and_streams_their_events(
        worker_pool, redis_client, tmp_path):
    server = ServerProcess(tmp_path, env={**worker_pool.env, "IRONFLOW_API_KEY": API_KEY}).start()
    try:
        with server.client() as client:
            ready = client.get("/health/ready")
            assert ready.status_code == 200
            assert ready.json()["queue"]["queue"] == "redis"
            body = {"source": FLOW, "context": {"who": "Bo"}}
            waited = client.post("/flows/run", json=body)
            assert waited.status_code == 200, waited.text
            assert waited.json()["status"] == "success"
            run_id = waited.json()["run_id"]
            record = client.get(f"/runs/{run_id}").json()
            assert record["ctx"]["greeting"] == "hi Bo"
            frames = read_sse(client, run_id)
            types = [frame["data"]["type"] for frame in frames if "data" in frame]
            assert types[0] == "run_started" and types[-1] == "run_finished"

            accepted = client.post("/flows/run", json=body,
                                   headers={"Prefer": "respond-async, wait=5"})
            assert accepted.status_code == 202, accepted.text
            reply = accepted.json()
            assert reply["status"] == "pending"
            assert reply["url"] == f"/runs/{reply['run_id']}"
            assert accepted.headers["location"] == reply["url"]
            deadline = time.monotonic() + 30
            while client.get(reply["url"]).json()["status"] != "success":
                assert time.monotonic() < deadline
                time.sleep(0.1)

            keyed = [client.post("/flows/run", json=body, headers={"Idempotency-Key": "k-1"})
                     for _ in range(2)]
            assert [r.status_code for r in keyed] == [200, 200]
            assert keyed[0].json()["run_id"] == keyed[1].json()["run_id"]
        assert redis_client.xlen("ironflow:{queue}:runs") == 0
    finally:
        server.stop()


def test_kill_storm_every_run_succeeds_and_no_recorded_step_runs_twice(redis_server, tmp_path):
    verdict = storm(runs=40, workers=4, kills=10, every=0.4, ttl=1.5, directory=tmp_path,
                    timeout=240, quiet=True, slow=2.0)
    # kills land only on workers that announced themselves, while runs remain; on a
    # fast moment the runs may all finish before the tenth, so demand at least half
    assert verdict["kills"] >= 5, verdict
    assert verdict["statuses"] == {"success": 40}, verdict
    assert verdict["steps_rerun_after_recorded_success"] == 0, verdict
    assert verdict["pending_messages"] == 0, verdict
    assert verdict["leases_left"] == 0, verdict
    assert verdict["dead_letters"] == 0, verdict
