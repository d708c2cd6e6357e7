"""``ironflow serve`` closes the runs of processes that died (ST-50..52, CLI-70, API-63).

A dead process is simulated the way it leaves the JSON store behind: a
``running`` record with a running task and a lease file nobody renews.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import trio

from ironflow_core.api.reconcile import keep_reconciling
from ironflow_core.errors import StoreUnavailableError
from ironflow_core.jsonutil import now_timestamp
from ironflow_core.model import RunRecord, RunStatus, TaskRecord, TaskStatus
from ironflow_core.stores.json_store import JsonStore
from ironflow_core.stores.memory import MemoryStore

from .flows import write_flows
from .server_process import API_KEY, ServerProcess, assert_error, clean_env

LEASE_ERROR = "task stopped after execution-owner lease expired"
HOUR = 3600 * 10**6


def micros_now() -> int:
    return time.time_ns() // 1000


def leave_running_run(store_dir: Path, run_id: str, *, lease_expires: int) -> None:
    """What a process executing ``slow.lua`` leaves on disk when it is killed mid-step."""

    async def write() -> None:
        store = JsonStore(store_dir)
        started = now_timestamp()
        await store.create_run(RunRecord(
            id=run_id, flow_name="slow", started=started,
            tasks={"wait": TaskRecord("wait", "delay"), "done": TaskRecord("done", "template_render")},
        ))
        await store.set_status(run_id, RunStatus.RUNNING)
        await store.upsert_tasks(run_id, [TaskRecord("wait", "delay", status=TaskStatus.RUNNING,
                                                     attempt=1, started=started)])
        await store.aclose()

    trio.run(write)
    leases = store_dir / ".ironflow-run-leases-v1"
    leases.mkdir(mode=0o700, exist_ok=True)
    (leases / f"{run_id}.lease").write_text(json.dumps(
        {"run_id": run_id, "owner": f"process-of-{run_id}", "expires_micros": lease_expires}
    ))


def test_st_52_serve_stalls_runs_of_dead_processes_before_it_serves(tmp_path: Path):
    flows = write_flows(tmp_path)
    server = ServerProcess(tmp_path, env=clean_env(IRONFLOW_API_KEY=API_KEY),
                           args=["--flows-dir", str(flows)])
    leave_running_run(server.store_dir, "dead-run", lease_expires=micros_now() - 10**6)
    leave_running_run(server.store_dir, "live-run", lease_expires=micros_now() + HOUR)
    leases = server.store_dir / ".ironflow-run-leases-v1"
    server.start()
    try:
        with server.client() as c:
            # CLI-70: reconciled before the listener was announced, so no polling here
            dead = c.get("/runs/dead-run").json()
            assert dead["status"] == "stalled" and dead["finished"] is not None
            assert dead["tasks"]["wait"]["status"] == "failed"
            assert dead["tasks"]["wait"]["error"] == LEASE_ERROR
            assert dead["tasks"]["done"]["status"] == "skipped"
            assert dead["tasks"]["done"]["error"] == LEASE_ERROR
            assert c.get("/runs/live-run").json()["status"] == "running"  # its owner lives
            assert os.listdir(leases) == ["live-run.lease"]
            # API-63: another process executes live-run, so it cannot be deleted here
            refused = c.delete("/runs/live-run")
            assert_error(refused, 409, "conflict", "Run 'live-run' is still executing")
            assert c.delete("/runs/dead-run").json() == {"deleted": "dead-run"}
            # ST-50: a run of this server holds a lease only while it executes
            ran = c.post("/flows/run", json={"file": "hello.lua", "context": {"name": "x"}})
            assert ran.json()["status"] == "success"
            assert os.listdir(leases) == ["live-run.lease"]
    finally:
        server.stop()
    assert "WARN  run dead-run marked stalled: its execution-owner lease expired" in server.stderr()
    assert "live-run marked" not in server.stderr()


class FlakyStore(MemoryStore):
    """Its first reconciliation fails, as a store briefly unreachable would."""

    def __init__(self) -> None:
        super().__init__()
        self.passes = 0

    async def reconcile_expired(self, now_micros: int) -> list[str]:
        self.passes += 1
        if self.passes == 2:
            raise StoreUnavailableError("cannot reach the store")
        return await super().reconcile_expired(now_micros)


async def dead_run(store: MemoryStore, run_id: str) -> None:
    await store.create_run(RunRecord(id=run_id, flow_name="f", started=now_timestamp(),
                                     tasks={"a": TaskRecord("a", "log")}))
    await store.set_status(run_id, RunStatus.RUNNING)
    await store.acquire_lease(run_id, "dead-owner", 0)  # expired at once: nobody renews it


async def test_st_52_serve_reconciles_at_start_up_then_every_30s(autojump_clock):
    store = FlakyStore()
    await dead_run(store, "first")
    async with trio.open_nursery() as nursery:
        await nursery.start(keep_reconciling, store)
        start = trio.current_time()
        assert (await store.get_run("first")).status is RunStatus.STALLED  # before started()
        await dead_run(store, "second")
        await trio.sleep(31)  # the pass at 30 s fails: logged, the server goes on
        assert (await store.get_run("second")).status is RunStatus.RUNNING
        await trio.sleep(30)
        second = await store.get_run("second")
        assert (second.status, second.tasks["a"].status) == (RunStatus.STALLED, TaskStatus.SKIPPED)
        assert store.passes == 3 and trio.current_time() - start == 61
        nursery.cancel_scope.cancel()
