"""The state-store conformance suite (semantics.md#stores, ENG-13, ENG-21): one suite, every store.

It ships with ironflow-core so a third-party store runs the very suite the
built-in stores pass (it needs pytest and pytest-trio). Use it by subclassing
``StoreConformance`` in a ``test_*.py`` module and implementing
``make_store`` (a fresh, empty store per call)::

    from ironflow_core.store_conformance import StoreConformance

    class TestRedisStore(StoreConformance):
        @pytest.fixture(autouse=True)
        def _server(self, redis_url):       # any fixtures the store needs
            self.url = redis_url

        async def make_store(self):
            return RedisStore(self.url, prefix=f"t{uuid.uuid4().hex}:")

        def write_volume(self, store):      # optional: bytes sent to storage
            return store.stats.bytes_written

The class itself is not collected (its name does not start with ``Test``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

try:
    import pytest
except ImportError:  # pragma: no cover - exercised in a venv without pytest
    raise ImportError(
        "ironflow_core.store_conformance is a pytest suite: install the plugin kit with "
        "pip install 'ironflow-core[testing]' (pytest and pytest-trio)"
    ) from None
import trio

from ironflow_core.errors import (
    InvalidInputError,
    LeaseLostError,
    RunConflictError,
    RunNotFoundError,
)
from ironflow_core.jsonutil import dumps
from ironflow_core.model import (
    FlowSourceRecord,
    RunOrigin,
    RunRecord,
    RunStatus,
    TaskRecord,
    TaskStatus,
)
from ironflow_core.specs import StateStore

T0 = "2026-01-01T00:00:00.000000Z"
T1 = "2026-01-01T00:00:01.000000Z"
T2 = "2026-01-01T00:00:02.000000Z"

LEASE_ERROR = "task stopped after execution-owner lease expired"
MINUTE = 60_000_000
"""One minute in microseconds: ``reconcile_expired`` is handed a "now" this far ahead."""


def now_micros() -> int:
    """Wall-clock microseconds, as lease expiries are kept."""
    return time.time_ns() // 1000

VALID_IDS = [
    "a",
    "A9",
    "run-2026",
    "tenant_1-run_42",
    "3f2b8c1e-5d4a-4f6b-9c2d-1e0f3a4b5c6d",
    "idem-0123456789abcdef",
    "a" * 128,
]
INVALID_IDS = [
    ("", "run ID must not be empty"),
    ("-run", "run ID must start and end with an ASCII letter or digit"),
    ("run-", "run ID must start and end with an ASCII letter or digit"),
    ("_run", "run ID must start and end with an ASCII letter or digit"),
    ("run_", "run ID must start and end with an ASCII letter or digit"),
    ("run.id", "run ID may contain only ASCII letters, digits, '-' and '_'"),
    ("run/id", "run ID may contain only ASCII letters, digits, '-' and '_'"),
    ("run id", "run ID may contain only ASCII letters, digits, '-' and '_'"),
    ("rún", "run ID may contain only ASCII letters, digits, '-' and '_'"),
    ("..", "run ID may contain only ASCII letters, digits, '-' and '_'"),
    ("run\x00id", "run ID may contain only ASCII letters, digits, '-' and '_'"),
    ("a" * 129, "run ID must not exceed 128 bytes"),
]


def record(
    run_id: str = "run-1",
    *,
    started: str | None = T0,
    status: RunStatus = RunStatus.PENDING,
    flow_name: str = "flow",
    ctx: dict[str, Any] | None = None,
    tasks: dict[str, TaskRecord] | None = None,
) -> RunRecord:
    """A run record for a test, with its own copies of ``ctx`` and ``tasks``."""
    return RunRecord(
        id=run_id,
        flow_name=flow_name,
        status=status,
        started=started,
        finished=None,
        ctx=dict(ctx or {}),
        tasks=dict(tasks or {}),
    )


def task(name: str, status: TaskStatus = TaskStatus.PENDING, **fields: Any) -> TaskRecord:
    """A task record for a test (node type ``code`` unless given)."""
    return TaskRecord(name=name, node_type=fields.pop("node_type", "code"), status=status, **fields)


def cursor_payload(cursor: str | None) -> str:
    """The JSON text inside a cursor (a page that has one)."""
    assert cursor is not None, "the page has no next cursor"
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()


def make_cursor(payload: str) -> str:
    """A cursor made from JSON text (to try malformed ones)."""
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


class StoreConformance:
    """Behaviour every ``StateStore`` must have; subclasses provide ``make_store``."""

    async def make_store(self) -> StateStore:
        """A fresh, empty store: the one thing a subclass must provide."""
        raise NotImplementedError

    def write_volume(self, store: StateStore) -> int | None:
        """Bytes the store has written to its backend so far, if it can tell."""
        return None

    def storage_touched(self, store: StateStore) -> bool | None:
        """Whether anything reached the backend (for "rejected before storage")."""
        return None

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[StateStore]:
        """A fresh store, closed when the test ends."""
        store = await self.make_store()
        try:
            yield store
        finally:
            await store.aclose()

    # ------------------------------------------------------------ ST-12 basics
    async def test_st_12_create_then_get_round_trips_the_record(self):
        async with self.opened() as store:
            original = record(
                "run-1",
                flow_name="Flöw ✓",
                ctx={"n": 3, "f": 3.0, "nested": {"b": [1, 2.5, None, True]}, "s": "ü/é"},
                tasks={
                    "fetch": task("fetch"),
                    "done": task(
                        "done", TaskStatus.FAILED, attempt=2, output={"code": 7},
                        error="Command 'sh' exited with code 7", started=T0, finished=T1,
                    ),
                },
            )
            await store.create_run(original)
            got = await store.get_run("run-1")
            assert got.to_json() == original.to_json()
            assert dumps(got.ctx) == dumps(original.ctx)  # 3 and 3.0 stay distinct (JSON-2)
            assert got.status is RunStatus.PENDING and got.finished is None

    async def test_st_12_store_keeps_its_own_copy(self):
        async with self.opened() as store:
            original = record(ctx={"list": [1]}, tasks={"a": task("a", output={"x": [1]})})
            await store.create_run(original)
            original.ctx["list"].append(2)
            original.tasks["a"].output["x"].append(2)
            got = await store.get_run("run-1")
            got.ctx["list"].append(3)
            again = await store.get_run("run-1")
            assert again.ctx == {"list": [1]}
            assert again.tasks["a"].output == {"x": [1]}

    async def test_st_12_duplicate_create_is_a_conflict(self):
        async with self.opened() as store:
            await store.create_run(record("run-1", flow_name="first"))
            with pytest.raises(RunConflictError):
                await store.create_run(record("run-1", flow_name="second"))
            assert (await store.get_run("run-1")).flow_name == "first"

    async def test_st_12_get_missing_run_is_not_found(self):
        async with self.opened() as store:
            with pytest.raises(RunNotFoundError, match=r"^Run 'nope' not found$"):
                await store.get_run("nope")

    async def test_st_12_mutating_a_missing_run_is_not_found(self):
        async with self.opened() as store:
            await store.create_run(record("other"))
            with pytest.raises(RunNotFoundError):
                await store.set_status("nope", RunStatus.RUNNING)
            with pytest.raises(RunNotFoundError):
                await store.upsert_tasks("nope", [task("a")])
            with pytest.raises(RunNotFoundError):
                await store.merge_context("nope", {"a": 1})
            with pytest.raises(RunNotFoundError):
                await store.delete_run("nope")
            assert [s.id for s in (await store.list_runs()).runs] == ["other"]

    # --------------------------------------------------------- status, ENG-13
    async def test_eng_13_finished_is_set_once_and_never_moves(self):
        async with self.opened() as store:
            await store.create_run(record())
            await store.set_status("run-1", RunStatus.RUNNING)
            got = await store.get_run("run-1")
            assert (got.status, got.finished) == (RunStatus.RUNNING, None)
            await store.set_status("run-1", RunStatus.SUCCESS, at=T1)
            got = await store.get_run("run-1")
            assert (got.status, got.finished) == (RunStatus.SUCCESS, T1)
            await store.set_status("run-1", RunStatus.STALLED, at=T2)
            got = await store.get_run("run-1")
            assert (got.status, got.finished) == (RunStatus.STALLED, T1)
            await store.set_status("run-1", RunStatus.RUNNING)
            got = await store.get_run("run-1")
            assert (got.status, got.finished) == (RunStatus.RUNNING, T1)

    async def test_eng_13_terminal_status_without_time_stamps_now(self):
        async with self.opened() as store:
            await store.create_run(record())
            await store.set_status("run-1", RunStatus.CANCELLED)
            got = await store.get_run("run-1")
            assert got.status is RunStatus.CANCELLED
            assert got.finished is not None and got.finished.endswith("Z")
            summary = (await store.list_runs()).runs[0]
            assert (summary.status, summary.finished) == (RunStatus.CANCELLED, got.finished)

    # ------------------------------------------------------------- tasks, ctx
    async def test_eng_21_upsert_inserts_and_replaces_whole_records(self):
        async with self.opened() as store:
            await store.create_run(record(tasks={"a": task("a"), "b": task("b")}))
            await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING, attempt=1, started=T0)])
            await store.upsert_tasks("run-1", [
                task("a", TaskStatus.FAILED, attempt=1, started=T0, finished=T1, error="boom"),
                task("c", TaskStatus.SKIPPED, finished=T1),
            ])
            # ENG-22: a retry rewrites the record to running without `finished`.
            await store.upsert_tasks("run-1", [
                task("a", TaskStatus.RUNNING, attempt=2, started=T2, error="boom"),
            ])
            got = await store.get_run("run-1")
            assert sorted(got.tasks) == ["a", "b", "c"]
            assert got.tasks["a"].to_json() == {
                "name": "a", "status": "running", "attempt": 2, "node_type": "code",
                "error": "boom", "started": T2,
            }
            assert got.tasks["b"].to_json() == {
                "name": "b", "status": "pending", "attempt": 0, "node_type": "code",
            }
            assert got.tasks["c"].to_json() == {
                "name": "c", "status": "skipped", "attempt": 0, "node_type": "code",
                "finished": T1,
            }
            assert (await store.list_runs()).runs[0].task_count == 3

    async def test_eng_21_outputs_keep_their_json_types(self):
        async with self.opened() as store:
            await store.create_run(record(tasks={"a": task("a")}))
            output = {"int": 1, "float": 1.0, "big": 2**62, "text": "ü\n\"", "empty": {}, "list": []}
            await store.upsert_tasks("run-1", [task("a", TaskStatus.SUCCESS, output=output)])
            got = await store.get_run("run-1")
            assert dumps(got.tasks["a"].output) == dumps(output)

    async def test_st_12_merge_context_adds_and_overwrites_but_never_removes(self):
        async with self.opened() as store:
            await store.create_run(record(ctx={"keep": 1, "over": "old", "_flow_dir": "/x"}))
            await store.merge_context("run-1", {"over": "new", "added": [1, 2]})
            await store.merge_context("run-1", {})
            got = await store.get_run("run-1")
            assert got.ctx == {"keep": 1, "over": "new", "added": [1, 2], "_flow_dir": "/x"}

    # ---------------------------------------------------------------- delete
    async def test_st_12_delete_removes_the_run_and_a_second_delete_is_not_found(self):
        async with self.opened() as store:
            await store.create_run(record("run-1"))
            await store.create_run(record("run-2"))
            await store.delete_run("run-1")
            with pytest.raises(RunNotFoundError):
                await store.get_run("run-1")
            with pytest.raises(RunNotFoundError):
                await store.delete_run("run-1")
            assert [s.id for s in (await store.list_runs()).runs] == ["run-2"]
            await store.create_run(record("run-1", flow_name="again"))
            assert (await store.get_run("run-1")).flow_name == "again"

    async def test_st_13_a_late_writer_cannot_resurrect_a_deleted_run(self):
        async with self.opened() as store:
            await store.create_run(record(tasks={"a": task("a")}))
            await store.set_status("run-1", RunStatus.RUNNING)
            await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING, attempt=1)])
            await store.delete_run("run-1")
            with pytest.raises(RunNotFoundError):
                await store.upsert_tasks("run-1", [task("a", TaskStatus.SUCCESS, attempt=1)])
            with pytest.raises(RunNotFoundError):
                await store.merge_context("run-1", {"x": 1})
            with pytest.raises(RunNotFoundError):
                await store.set_status("run-1", RunStatus.FAILED)
            with pytest.raises(RunNotFoundError):
                await store.get_run("run-1")
            assert (await store.list_runs()).runs == ()

    async def test_st_13_delete_racing_with_writers_never_resurrects(self):
        async with self.opened() as store:
            await store.create_run(record(tasks={f"t{i}": task(f"t{i}") for i in range(20)}))
            outcomes: list[str] = []

            async def writer(i: int) -> None:
                try:
                    for attempt in range(1, 4):
                        await store.upsert_tasks(
                            "run-1", [task(f"t{i}", TaskStatus.RUNNING, attempt=attempt)]
                        )
                        await trio.sleep(0)
                    outcomes.append("done")
                except RunNotFoundError:
                    outcomes.append("gone")

            async def deleter() -> None:
                await trio.sleep(0)
                await store.delete_run("run-1")

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(writer, i)
                nursery.start_soon(deleter)
            assert len(outcomes) == 20
            with pytest.raises(RunNotFoundError):
                await store.get_run("run-1")
            assert (await store.list_runs()).runs == ()

    # ------------------------------------------------------- ST-50..52 leases
    async def test_st_50_a_live_lease_belongs_to_its_owner_only(self):
        async with self.opened() as store:
            await store.create_run(record())
            await store.acquire_lease("run-1", "owner-a", 90)
            await store.acquire_lease("run-1", "owner-a", 90)  # re-taking one's own is fine
            await store.renew_lease("run-1", "owner-a", 90)
            with pytest.raises(RunConflictError, match="owned by another live execution"):
                await store.acquire_lease("run-1", "owner-b", 90)
            with pytest.raises(RunConflictError, match="no longer holds its execution-owner"):
                await store.renew_lease("run-1", "owner-b", 90)
            await store.release_lease("run-1", "owner-b")  # not b's: a no-op
            await store.renew_lease("run-1", "owner-a", 90)
            await store.release_lease("run-1", "owner-a")
            await store.release_lease("run-1", "owner-a")  # idempotent
            with pytest.raises(RunConflictError):
                await store.renew_lease("run-1", "owner-a", 90)  # released means lost
            await store.acquire_lease("run-1", "owner-b", 90)

    async def test_st_50_an_expired_lease_can_be_taken_over_but_not_renewed(self):
        async with self.opened() as store:
            await store.create_run(record())
            await store.acquire_lease("run-1", "owner-a", 0)
            with pytest.raises(RunConflictError):
                await store.renew_lease("run-1", "owner-a", 90)
            await store.acquire_lease("run-1", "owner-b", 90)
            with pytest.raises(RunConflictError):
                await store.acquire_lease("run-1", "owner-a", 90)

    async def test_st_50_leases_of_missing_runs(self):
        async with self.opened() as store:
            with pytest.raises(RunNotFoundError):
                await store.acquire_lease("nope", "owner", 90)
            with pytest.raises(RunConflictError):
                await store.renew_lease("nope", "owner", 90)
            await store.release_lease("nope", "owner")
            await store.create_run(record())
            await store.acquire_lease("run-1", "owner", 90)
            await store.set_status("run-1", RunStatus.SUCCESS)
            await store.delete_run("run-1")
            with pytest.raises(RunConflictError):  # deleting the run removed its lease
                await store.renew_lease("run-1", "owner", 90)
            await store.create_run(record())
            await store.acquire_lease("run-1", "someone-else", 90)

    async def test_st_50_lease_calls_validate_the_run_id(self):
        async with self.opened() as store:
            for call in (
                lambda: store.acquire_lease("run/1", "o", 90),
                lambda: store.renew_lease("run/1", "o", 90),
                lambda: store.release_lease("run/1", "o"),
            ):
                with pytest.raises(InvalidInputError):
                    await call()

    async def test_st_35_a_live_lease_protects_a_non_terminal_run_from_deletion(self):
        async with self.opened() as store:
            await store.create_run(record())
            await store.set_status("run-1", RunStatus.RUNNING)
            await store.acquire_lease("run-1", "owner", 90)
            with pytest.raises(RunConflictError, match=r"^Run 'run-1' is still executing$"):
                await store.delete_run("run-1")
            assert (await store.get_run("run-1")).status is RunStatus.RUNNING
            await store.set_status("run-1", RunStatus.SUCCESS)
            await store.delete_run("run-1")  # terminal: the lease no longer protects it
            await store.create_run(record("run-2"))
            await store.acquire_lease("run-2", "owner", 0)
            await store.delete_run("run-2")  # an expired lease protects nothing
            assert (await store.list_runs()).runs == ()

    # ---------------------------------------------- fencing (issue 14)
    async def test_fencing_the_lease_owner_writes_and_others_are_refused(self):
        async with self.opened() as store:
            await store.create_run(record("run-1"))
            await store.acquire_lease("run-1", "owner-a", 60)
            await store.upsert_tasks("run-1", [task("a")], owner="owner-a")
            await store.merge_context("run-1", {"k": 1}, owner="owner-a")
            await store.set_status("run-1", RunStatus.RUNNING, owner="owner-a")
            await store.set_origin("run-1", RunOrigin(flow=None, flow_name="flow"),
                                   owner="owner-a")
            for write in (
                store.upsert_tasks("run-1", [task("b")], owner="owner-b"),
                store.merge_context("run-1", {"k": 2}, owner="owner-b"),
                store.set_status("run-1", RunStatus.FAILED, owner="owner-b"),
                store.reopen_run("run-1", owner="owner-b"),
                store.set_origin("run-1", RunOrigin(flow=None, flow_name="x"), owner="owner-b"),
            ):
                with pytest.raises(LeaseLostError):
                    await write
            got = await store.get_run("run-1")
            assert set(got.tasks) == {"a"} and got.ctx == {"k": 1}
            assert got.status is RunStatus.RUNNING
            origin = await store.get_origin("run-1")
            assert origin is not None and origin.flow_name == "flow"

    async def test_fencing_an_owner_whose_lease_was_taken_over_cannot_write(self):
        async with self.opened() as store:
            await store.create_run(record("run-1"))
            await store.acquire_lease("run-1", "paused", 0.001)
            await trio.sleep(0.01)  # expired; a new owner takes the run over
            await store.acquire_lease("run-1", "new-owner", 60)
            await store.upsert_tasks("run-1", [task("a", TaskStatus.RUNNING)], owner="new-owner")
            with pytest.raises(LeaseLostError):  # the paused process wakes up
                await store.upsert_tasks("run-1", [task("a", TaskStatus.FAILED)], owner="paused")
            with pytest.raises(LeaseLostError):
                await store.set_status("run-1", RunStatus.STALLED, owner="paused")
            got = await store.get_run("run-1")
            assert got.tasks["a"].status is TaskStatus.RUNNING
            assert got.status is RunStatus.PENDING

    async def test_fencing_a_reconciled_or_released_lease_refuses_its_owner(self):
        async with self.opened() as store:
            await store.create_run(record("run-1", status=RunStatus.RUNNING))
            await store.acquire_lease("run-1", "owner-a", 1)
            assert await store.reconcile_expired(now_micros() + MINUTE) == ["run-1"]
            with pytest.raises(LeaseLostError):
                await store.set_status("run-1", RunStatus.SUCCESS, owner="owner-a")
            assert (await store.get_run("run-1")).status is RunStatus.STALLED
            await store.create_run(record("run-2"))
            await store.acquire_lease("run-2", "owner-b", 60)
            await store.release_lease("run-2", "owner-b")
            with pytest.raises(LeaseLostError):
                await store.merge_context("run-2", {"late": True}, owner="owner-b")
            # unfenced writes (no owner) are not checked
            await store.merge_context("run-2", {"tool": True})
            assert (await store.get_run("run-2")).ctx == {"tool": True}

    async def test_get_lease_reports_owner_and_expiry(self):
        async with self.opened() as store:
            await store.create_run(record("run-1"))
            assert await store.get_lease("run-1") is None
            before = now_micros()
            await store.acquire_lease("run-1", "owner-a", 60)
            lease = await store.get_lease("run-1")
            assert lease is not None and lease.owner == "owner-a"
            assert before + 59 * 10**6 <= lease.expires_micros <= now_micros() + 61 * 10**6
            await store.release_lease("run-1", "owner-a")
            assert await store.get_lease("run-1") is None

    async def test_reopen_puts_a_finished_run_back_to_running(self):
        async with self.opened() as store:
            await store.create_run(record("run-1"))
            await store.set_status("run-1", RunStatus.STALLED, at=T1)
            await store.acquire_lease("run-1", "owner-a", 60)
            await store.reopen_run("run-1", owner="owner-a")
            got = await store.get_run("run-1")
            assert got.status is RunStatus.RUNNING and got.finished is None
            assert [r.status for r in (await store.list_runs()).runs] == [RunStatus.RUNNING]
            await store.set_status("run-1", RunStatus.SUCCESS, at=T2, owner="owner-a")
            assert (await store.get_run("run-1")).finished == T2

    # ------------------------------------- the flow travels with the run
    async def test_flows_are_content_addressed_and_stored_once(self):
        async with self.opened() as store:
            flow = FlowSourceRecord(source="local f = Flow.new('x')\nreturn f\n",
                                    loader="lua", file_name="flows/x.lua")
            digest = await store.save_flow(flow)
            assert digest == flow.digest and len(digest) == 64
            assert await store.save_flow(flow) == digest  # idempotent
            assert await store.load_flow(digest) == flow
            other = FlowSourceRecord(source=flow.source + " ", loader="lua",
                                     file_name="flows/x.lua")
            assert other.digest != digest
            assert await store.load_flow(other.digest) is None

    async def test_origin_is_kept_beside_the_record_not_in_its_ctx(self):
        async with self.opened() as store:
            await store.create_run(record("run-1", ctx={"a": 1}))
            assert await store.get_origin("run-1") is None
            origin = RunOrigin(flow="ab" * 32, flow_name="flow", context={"a": 1, "n": [1.5]},
                               subflows={"/x/child.lua": "cd" * 32}, recoveries=2)
            await store.set_origin("run-1", origin)
            assert await store.get_origin("run-1") == origin
            got = await store.get_run("run-1")
            assert got.ctx == {"a": 1}  # the record stays upstream's
            with pytest.raises(RunNotFoundError):
                await store.set_origin("run-9", origin)
            await store.delete_run("run-1")
            with pytest.raises(RunNotFoundError):
                await store.get_origin("run-1")

    async def test_values_no_store_can_keep_are_refused_alike(self):
        async with self.opened() as store:
            deep: Any = 1
            for _ in range(200):
                deep = [deep]
            for bad in ({"x": float("nan")}, {"x": float("inf")}, {"x": deep}):
                with pytest.raises(InvalidInputError):
                    await store.create_run(record("run-1", ctx=bad))
            await store.create_run(record("run-1"))
            for bad in ({"x": float("nan")}, {"x": deep}):
                with pytest.raises(InvalidInputError):
                    await store.merge_context("run-1", bad)
            assert (await store.get_run("run-1")).ctx == {}

    async def test_st_52_reconcile_stalls_runs_whose_lease_expired(self):
        async with self.opened() as store:
            tasks = {
                "done": task("done", TaskStatus.SUCCESS, attempt=1, started=T0, finished=T1,
                             output={"x": 1}),
                "busy": task("busy", TaskStatus.RUNNING, attempt=2, started=T1, error="boom"),
                "next": task("next"),
                "gone": task("gone", TaskStatus.SKIPPED, finished=T1),
            }
            await store.create_run(record(ctx={"init": 1}, tasks=tasks))
            await store.set_status("run-1", RunStatus.RUNNING)
            await store.acquire_lease("run-1", "dead-owner", 90)
            assert await store.reconcile_expired(now_micros()) == []  # still live
            assert await store.reconcile_expired(now_micros() + 2 * MINUTE) == ["run-1"]
            got = await store.get_run("run-1")
            assert got.status is RunStatus.STALLED
            assert got.finished is not None and got.finished.endswith("Z")
            assert got.ctx == {"init": 1}
            assert got.tasks["done"].to_json() == tasks["done"].to_json()
            assert got.tasks["gone"].to_json() == tasks["gone"].to_json()
            busy = got.tasks["busy"]
            assert (busy.status, busy.error, busy.attempt, busy.started) == (
                TaskStatus.FAILED, LEASE_ERROR, 2, T1)
            assert busy.finished == got.finished
            nxt = got.tasks["next"]
            assert (nxt.status, nxt.error, nxt.finished) == (
                TaskStatus.SKIPPED, LEASE_ERROR, got.finished)
            summary = (await store.list_runs(status=RunStatus.STALLED)).runs
            assert [(s.id, s.finished) for s in summary] == [("run-1", got.finished)]
            assert (await store.list_runs(status=RunStatus.RUNNING)).runs == ()
            # the lease is gone: the late owner cannot renew, a second pass finds nothing
            with pytest.raises(RunConflictError):
                await store.renew_lease("run-1", "dead-owner", 90)
            assert await store.reconcile_expired(now_micros() + 2 * MINUTE) == []
            await store.delete_run("run-1")

    async def test_st_52_reconcile_keeps_finished_and_handles_pending_runs(self):
        async with self.opened() as store:
            await store.create_run(record("was-done", tasks={"a": task("a", TaskStatus.RUNNING)}))
            await store.set_status("was-done", RunStatus.FAILED, at=T1)
            await store.set_status("was-done", RunStatus.RUNNING)  # finished stays T1
            await store.create_run(record("waiting", tasks={"a": task("a")}))
            for run_id in ("was-done", "waiting"):
                await store.acquire_lease(run_id, "dead-owner", 1)
            stalled = await store.reconcile_expired(now_micros() + MINUTE)
            assert sorted(stalled) == ["waiting", "was-done"]
            was_done = await store.get_run("was-done")
            assert (was_done.status, was_done.finished) == (RunStatus.STALLED, T1)
            assert was_done.tasks["a"].status is TaskStatus.FAILED
            waiting = await store.get_run("waiting")
            assert waiting.status is RunStatus.STALLED
            assert (waiting.tasks["a"].status, waiting.tasks["a"].error) == (
                TaskStatus.SKIPPED, LEASE_ERROR)

    async def test_st_52_reconcile_leaves_live_unleased_and_finished_runs_alone(self):
        async with self.opened() as store:
            running = {"a": task("a", TaskStatus.RUNNING, attempt=1, started=T0)}
            for run_id in ("live", "unleased", "finished", "renewed"):
                await store.create_run(record(run_id, tasks=running))
                await store.set_status(run_id, RunStatus.RUNNING)
            await store.acquire_lease("live", "owner", 3600)
            await store.acquire_lease("renewed", "owner", 1)
            await store.renew_lease("renewed", "owner", 3600)
            await store.acquire_lease("finished", "owner", 1)
            await store.set_status("finished", RunStatus.SUCCESS, at=T2)
            assert await store.reconcile_expired(now_micros() + MINUTE) == []
            for run_id in ("live", "unleased", "renewed"):
                got = await store.get_run(run_id)
                assert (got.status, got.finished) == (RunStatus.RUNNING, None)
                assert got.tasks["a"].to_json() == running["a"].to_json()
            got = await store.get_run("finished")
            assert (got.status, got.finished) == (RunStatus.SUCCESS, T2)
            assert got.tasks["a"].status is TaskStatus.RUNNING
            # the expired lease of the finished run was removed, the live ones kept
            await store.acquire_lease("finished", "another", 90)
            with pytest.raises(RunConflictError):
                await store.acquire_lease("live", "another", 90)
            await store.renew_lease("renewed", "owner", 90)

    async def test_st_52_reconcile_drops_the_lease_of_a_deleted_run(self):
        async with self.opened() as store:
            await store.create_run(record())
            await store.acquire_lease("run-1", "owner", 0)
            await store.delete_run("run-1")
            assert await store.reconcile_expired(now_micros() + MINUTE) == []
            with pytest.raises(RunNotFoundError):
                await store.get_run("run-1")

    # ---------------------------------------------------------- ST-1 run IDs
    @pytest.mark.parametrize("run_id", VALID_IDS)
    async def test_st_1_canonical_ids_are_accepted(self, run_id):
        async with self.opened() as store:
            await store.create_run(record(run_id))
            assert (await store.get_run(run_id)).id == run_id
            await store.delete_run(run_id)

    @pytest.mark.parametrize(("run_id", "reason"), INVALID_IDS)
    async def test_st_1_invalid_ids_are_rejected_before_storage(self, run_id, reason):
        expected = f"^Invalid run ID: {reason}$"
        async with self.opened() as store:
            calls = [
                lambda: store.create_run(record(run_id)),
                lambda: store.get_run(run_id),
                lambda: store.delete_run(run_id),
                lambda: store.set_status(run_id, RunStatus.RUNNING),
                lambda: store.upsert_tasks(run_id, [task("a")]),
                lambda: store.merge_context(run_id, {"a": 1}),
            ]
            for call in calls:
                with pytest.raises(InvalidInputError, match=expected):
                    await call()
            assert self.storage_touched(store) in (None, False)

    # ----------------------------------------------------- ST-20..22 listing
    async def test_st_20_order_is_newest_first_then_id_desc_and_null_started_last(self):
        async with self.opened() as store:
            same_micro = "2026-01-01T00:00:00.123456Z"
            same_micro_nanos = "2026-01-01T00:00:00.123456789Z"
            runs = [
                ("old", "2025-12-31T23:59:59Z"),
                ("tie-a", same_micro),
                ("tie-c", same_micro_nanos),
                ("tie-b", same_micro),
                ("newest", "2026-01-01T00:00:01.5Z"),
                ("null-a", None),
                ("null-b", None),
                ("offset", "2026-01-01T01:00:00.999+02:00"),
            ]
            for run_id, started in runs:
                await store.create_run(record(run_id, started=started))
            page = await store.list_runs()
            assert [s.id for s in page.runs] == [
                "newest", "tie-c", "tie-b", "tie-a", "old", "offset", "null-b", "null-a",
            ]
            assert page.next_cursor is None and not page.has_more
            # The same order page by page, one item at a time.
            seen, after = [], None
            while True:
                page = await store.list_runs(limit=1, after=after)
                seen += [s.id for s in page.runs]
                if page.next_cursor is None:
                    break
                after = page.next_cursor
            assert seen == [
                "newest", "tie-c", "tie-b", "tie-a", "old", "offset", "null-b", "null-a",
            ]

    async def test_st_21_summaries_carry_no_ctx_or_tasks(self):
        async with self.opened() as store:
            await store.create_run(record(ctx={"big": "x" * 100}, tasks={"a": task("a")}))
            summary = (await store.list_runs()).runs[0]
            assert summary.to_json() == {
                "id": "run-1", "flow_name": "flow", "status": "pending", "started": T0,
                "finished": None, "task_count": 1,
            }

    async def test_st_21_status_filter(self):
        async with self.opened() as store:
            for i, status in enumerate(
                [RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.SUCCESS, RunStatus.RUNNING]
            ):
                await store.create_run(record(f"run-{i}", started=f"2026-01-01T00:00:0{i}Z"))
                await store.set_status(f"run-{i}", status, at=T2)
            ok = await store.list_runs(status=RunStatus.SUCCESS)
            assert [s.id for s in ok.runs] == ["run-2", "run-0"]
            assert [s.id for s in (await store.list_runs(status=RunStatus.FAILED)).runs] == [
                "run-1"
            ]
            assert (await store.list_runs(status=RunStatus.CANCELLED)).runs == ()

    async def test_cli_53_101_runs_make_a_page_of_100_and_a_page_of_1(self):
        async with self.opened() as store:
            for i in range(101):
                await store.create_run(record(f"run-{i:03d}", started=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z"))
            first = await store.list_runs(limit=100)
            assert len(first.runs) == 100 and first.has_more
            assert first.runs[0].id == "run-100" and first.runs[-1].id == "run-001"
            second = await store.list_runs(limit=100, after=first.next_cursor)
            assert [s.id for s in second.runs] == ["run-000"]
            assert not second.has_more and second.next_cursor is None

    async def test_st_22_cursor_is_the_portable_encoding(self):
        async with self.opened() as store:
            for run_id, started in [("b", "2026-01-01T00:00:00.123000Z"), ("a", None), ("c", T2)]:
                await store.create_run(record(run_id, started=started))
            page = await store.list_runs(limit=1)
            assert cursor_payload(page.next_cursor) == (
                '{"version":1,"status":null,"started":"2026-01-01T00:00:02Z","id":"c"}'
            )
            page = await store.list_runs(limit=1, after=page.next_cursor)
            assert cursor_payload(page.next_cursor) == (
                '{"version":1,"status":null,"started":"2026-01-01T00:00:00.123Z","id":"b"}'
            )
            assert page.next_cursor is not None and "=" not in page.next_cursor
            await store.set_status("a", RunStatus.FAILED, at=T1)
            page = await store.list_runs(limit=1, status=RunStatus.PENDING)
            assert cursor_payload(page.next_cursor) == (
                '{"version":1,"status":"pending","started":"2026-01-01T00:00:02Z","id":"c"}'
            )
            # A cursor written by hand (or by upstream) is honoured.
            after_c = make_cursor('{"version":1,"status":null,"started":"2026-01-01T00:00:02.000000000Z","id":"c"}')
            assert [s.id for s in (await store.list_runs(after=after_c)).runs] == ["b", "a"]

    async def test_st_22_a_cursor_is_bound_to_its_status_filter(self):
        async with self.opened() as store:
            for i in range(3):
                await store.create_run(record(f"run-{i}", started=f"2026-01-01T00:00:0{i}Z"))
            unfiltered = (await store.list_runs(limit=1)).next_cursor
            filtered = (await store.list_runs(limit=1, status=RunStatus.PENDING)).next_cursor
            match = "^run-list cursor does not match the status filter$"
            with pytest.raises(InvalidInputError, match=match):
                await store.list_runs(status=RunStatus.PENDING, after=unfiltered)
            with pytest.raises(InvalidInputError, match=match):
                await store.list_runs(after=filtered)
            with pytest.raises(InvalidInputError, match=match):
                await store.list_runs(status=RunStatus.FAILED, after=filtered)
            page = await store.list_runs(status=RunStatus.PENDING, after=filtered)
            assert [s.id for s in page.runs] == ["run-1", "run-0"]

    async def test_st_22_next_page_works_after_the_cursor_run_was_deleted(self):
        async with self.opened() as store:
            for i in range(5):
                await store.create_run(record(f"run-{i}", started=f"2026-01-01T00:00:0{i}Z"))
            page = await store.list_runs(limit=2)
            assert [s.id for s in page.runs] == ["run-4", "run-3"]
            await store.delete_run("run-3")
            await store.delete_run("run-2")
            rest = await store.list_runs(limit=2, after=page.next_cursor)
            assert [s.id for s in rest.runs] == ["run-1", "run-0"] and not rest.has_more

    @pytest.mark.parametrize(
        "cursor",
        [
            "",
            "x" * 1025,
            "not-a-cursor",
            "!!!!",
            make_cursor('{"version":1,"status":null,"started":null,"id":"a"}') + "=",
            make_cursor("[1,2]"),
            make_cursor("{"),
            make_cursor('{"version":2,"status":null,"started":null,"id":"a"}'),
            make_cursor('{"version":true,"status":null,"started":null,"id":"a"}'),
            make_cursor('{"version":1,"status":null,"started":null}'),
            make_cursor('{"version":1,"status":null,"started":null,"id":"../outside"}'),
            make_cursor('{"version":1,"status":null,"started":null,"id":""}'),
            make_cursor('{"version":1,"status":"bogus","started":null,"id":"a"}'),
            make_cursor('{"version":1,"status":null,"started":"yesterday","id":"a"}'),
            make_cursor('{"version":1,"status":null,"started":null,"id":"a","id":"b"}'),
            base64.b64encode(b'{"version":1,"status":null,"started":null,"id":"a?"}').decode(),
        ],
    )
    async def test_st_22_invalid_cursors_are_rejected(self, cursor):
        async with self.opened() as store:
            await store.create_run(record())
            with pytest.raises(InvalidInputError, match=r"^invalid run-list cursor$"):
                await store.list_runs(after=cursor)

    async def test_st_22_cursor_with_non_zero_trailing_bits_is_rejected(self):
        good = make_cursor('{"version":1,"status":null,"started":null,"id":"ab"}')
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        last = good[-1]
        tweaked = good[:-1] + alphabet[alphabet.index(last) + 1]
        assert base64.urlsafe_b64decode(tweaked + "=" * (-len(tweaked) % 4)) == (
            base64.urlsafe_b64decode(good + "=" * (-len(good) % 4))
        )
        async with self.opened() as store:
            assert (await store.list_runs(after=good)).runs == ()
            with pytest.raises(InvalidInputError, match=r"^invalid run-list cursor$"):
                await store.list_runs(after=tweaked)

    async def test_list_limit_must_be_positive(self):
        async with self.opened() as store:
            with pytest.raises(InvalidInputError):
                await store.list_runs(limit=0)

    # ------------------------------------------------- cost and concurrency
    async def test_persistence_stays_linear_over_2000_steps(self):
        """semantics.md#design-data-flow: a step's update costs O(that step), never a record rewrite."""
        steps = 2000
        async with self.opened() as store:
            names = [f"step_{i:04d}" for i in range(steps)]
            await store.create_run(record(tasks={n: task(n) for n in names}))
            await store.set_status("run-1", RunStatus.RUNNING)
            before = self.write_volume(store)
            payload_bytes = 0
            for i, name in enumerate(names):
                running = task(name, TaskStatus.RUNNING, attempt=1, started=T0)
                done = task(name, TaskStatus.SUCCESS, attempt=1, started=T0, finished=T1,
                            output={"value": i, "text": "hello world"})
                await store.upsert_tasks("run-1", [running])
                await store.upsert_tasks("run-1", [done])
                payload_bytes += len(dumps(running.to_json())) + len(dumps(done.to_json()))
            await store.merge_context("run-1", {"result": steps})
            await store.set_status("run-1", RunStatus.SUCCESS, at=T2)
            got = await store.get_run("run-1")
            assert got.ctx == {"result": steps} and got.status is RunStatus.SUCCESS
            assert all(t.status is TaskStatus.SUCCESS for t in got.tasks.values())
            assert got.tasks["step_1999"].output == {"value": 1999, "text": "hello world"}
            after = self.write_volume(store)
            if before is not None and after is not None:
                final_size = len(json.dumps(got.to_json(), indent=2))
                # Rewriting the record per update would write ~steps × final_size.
                assert after - before < 6 * (payload_bytes + final_size)

    async def test_st_13_concurrent_upserts_from_many_tasks_lose_nothing(self):
        async with self.opened() as store:
            count = 200
            await store.create_run(record(tasks={f"t{i}": task(f"t{i}") for i in range(count)}))
            await store.set_status("run-1", RunStatus.RUNNING)

            async def step(i: int) -> None:
                name = f"t{i}"
                await store.upsert_tasks("run-1", [task(name, TaskStatus.RUNNING, attempt=1)])
                await trio.sleep(0)
                await store.upsert_tasks("run-1", [
                    task(name, TaskStatus.SUCCESS, attempt=1, output={"i": i, "pad": "p" * 200}),
                    task(f"extra{i}", TaskStatus.SKIPPED),
                ])
                await store.merge_context("run-1", {f"k{i}": i})

            async with trio.open_nursery() as nursery:
                for i in range(count):
                    nursery.start_soon(step, i)
            got = await store.get_run("run-1")
            assert len(got.tasks) == 2 * count
            for i in range(count):
                assert got.tasks[f"t{i}"].status is TaskStatus.SUCCESS
                assert got.tasks[f"t{i}"].output["i"] == i
                assert got.ctx[f"k{i}"] == i
            assert (await store.list_runs()).runs[0].task_count == 2 * count

    async def test_many_runs_written_concurrently_stay_separate(self):
        async with self.opened() as store:
            async def one(i: int) -> None:
                run_id = f"run-{uuid.uuid4()}"
                await store.create_run(record(run_id, tasks={"a": task("a")}))
                await store.set_status(run_id, RunStatus.RUNNING)
                await store.upsert_tasks(run_id, [task("a", TaskStatus.SUCCESS, output={"i": i})])
                await store.set_status(run_id, RunStatus.SUCCESS)
                got = await store.get_run(run_id)
                assert got.tasks["a"].output == {"i": i}

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(one, i)
            page = await store.list_runs()
            assert len(page.runs) == 20
            assert {s.status for s in page.runs} == {RunStatus.SUCCESS}
