"""Issue 14: durable runs — resume in place, fencing, recovery, the store failing.

A run "killed" at some moment is built as the store holds it after a
``kill -9``: its record as written so far, its origin and flow, and a lease
that has expired. (The crash test in ``tests/e2e/test_crash.py`` kills real
processes; these tests pin the rules one by one.)
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
import trio

from ironflow_core.engine import FinalStatusError, open_resume, prepare_run
from ironflow_core.engine.recovery import (
    Recovery,
    RecoverySettings,
    nursery_starter,
)
from ironflow_core.errors import (
    ConfigError,
    FlowValidationError,
    InvalidInputError,
    IronflowError,
    RunConflictError,
    StoreError,
)
from ironflow_core.jsonutil import now_timestamp
from ironflow_core.loading import load_flow
from ironflow_core.model import RunOrigin, RunRecord, RunStatus, TaskRecord, TaskStatus
from ironflow_core.specs import FlowSource
from ironflow_core.stores.json_store import JsonStore
from ironflow_core.stores.memory import MemoryStore

from .engine_helpers import flow, registry, step

REG = registry()
ENV = {"IRONFLOW_MAX_CONCURRENT_TASKS": "4"}


class Events:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return self.events.append


def load(text: str, name: str = "flow.lua") -> Any:
    return load_flow(FlowSource(text=text, path=name), registry=REG, env=ENV)


async def uninterrupted(text: str, context: dict) -> RunRecord:
    executor = prepare_run(load(text), store=MemoryStore(), registry=REG, context=context,
                           env=ENV)
    return await executor.run()


async def killed_run(store: Any, text: str, context: dict, tasks: list[TaskRecord],
                     run_id: str = "run-1") -> str:
    """The state a kill -9 leaves: record so far, origin, flow, an expired lease."""
    definition = load(text)
    await store.create_run(RunRecord(
        id=run_id, flow_name=definition.name, status=RunStatus.RUNNING,
        started=now_timestamp(), ctx=dict(context),
        tasks={t.name: t for t in tasks},
    ))
    digest = await store.save_flow(definition.origin)
    await store.set_origin(run_id, RunOrigin(flow=digest, flow_name=definition.name,
                                             context=dict(context)))
    await store.acquire_lease(run_id, "dead-owner", 0.001)
    time.sleep(0.005)  # wall clock: the lease has expired
    return run_id


def done(name: str, output: dict, node: str = "code") -> TaskRecord:
    return TaskRecord(name=name, node_type=node, status=TaskStatus.SUCCESS, attempt=1,
                      output=output, started=now_timestamp(), finished=now_timestamp())


def in_flight(name: str, node: str = "script") -> TaskRecord:
    return TaskRecord(name=name, node_type=node, status=TaskStatus.RUNNING, attempt=1,
                      started=now_timestamp())


READER_WRITER = """
local flow = Flow.new("rw")
flow:step("reader", nodes.script({ sleep = 3, seen = { "shared" } }))
flow:step("writer", function(ctx) return { shared = "new" } end)
flow:step("after", function(ctx) return { final = ctx.shared } end):depends_on("reader", "writer")
return flow
"""


@pytest.fixture(params=["memory", "json"])
def store(request, tmp_path):
    return MemoryStore() if request.param == "memory" else JsonStore(tmp_path / "runs")


# ------------------------------------------------ resume keeps phase snapshots
async def test_resumed_phase_runs_against_the_snapshot_it_had(store, autojump_clock):
    """The issue's reader/writer: killed while reader slept, writer already recorded."""
    expected = await uninterrupted(READER_WRITER, {"shared": "old"})
    assert expected.ctx["reader_saw_shared"] == "old"
    run_id = await killed_run(store, READER_WRITER, {"shared": "old"},
                              [in_flight("reader"), done("writer", {"shared": "new"})])
    rec = Events()
    executor = await open_resume(store, run_id, registry=REG, env=ENV, observers=[rec])
    record = await executor.run()
    assert record.id == run_id and record.status is RunStatus.SUCCESS
    assert record.ctx == expected.ctx  # reader saw "old", writer's "new" won, after saw it
    assert record.tasks["writer"].attempt == 1  # kept, not run again
    assert record.tasks["reader"].attempt == 2  # ran again, with the next attempt number
    assert "writer" not in executor.services.scratch["attempts"]
    assert rec.events[0].type == "run_resumed"


@pytest.mark.parametrize("kept", ["first", "second"])
async def test_resumed_phase_commits_in_declaration_order(store, kept, autojump_clock):
    text = """
    local flow = Flow.new("order")
    flow:step("first", nodes.script({ out = { k = 1 } }))
    flow:step("second", nodes.script({ out = { k = 2 } }))
    flow:step("read", function(ctx) return { seen = ctx.k } end):depends_on("first", "second")
    return flow
    """
    value = 1 if kept == "first" else 2
    other = "second" if kept == "first" else "first"
    run_id = await killed_run(store, text, {}, [done(kept, {"k": value}, "script"),
                                                in_flight(other)])
    record = await (await open_resume(store, run_id, registry=REG, env=ENV)).run()
    assert record.ctx["k"] == 2 and record.ctx["seen"] == 2  # the later-declared step wins


async def test_outputs_of_later_phases_are_not_seen_by_a_rerun_earlier_phase(autojump_clock):
    """A stalled run may have merged its context; a resume starts from the initial one."""
    store = MemoryStore()
    text = """
    local flow = Flow.new("phases")
    flow:step("a", nodes.script({ seen = { "late" } }))
    flow:step("b", function(ctx) return { late = "set by b" } end):depends_on("a")
    return flow
    """
    run_id = await killed_run(store, text, {}, [in_flight("a")])
    await store.merge_context(run_id, {"late": "leaked"})  # as a stalled finalize leaves it
    record = await (await open_resume(store, run_id, registry=REG, env=ENV)).run()
    assert record.ctx["a_saw_late"] == "<missing>" and record.ctx["late"] == "set by b"


# -------------------------------------------------------- resume takes the lease
async def test_resume_refuses_a_run_whose_lease_is_live_and_names_the_holder(store):
    run_id = await killed_run(store, READER_WRITER, {}, [in_flight("reader")])
    await store.acquire_lease(run_id, "busy-owner", 60)
    with pytest.raises(RunConflictError, match=r"owner busy-owner holds its lease until "
                                               r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in \d+s\)"):
        await open_resume(store, run_id, registry=REG, env=ENV)
    assert (await store.get_run(run_id)).status is RunStatus.RUNNING  # untouched


async def test_resume_with_a_different_flow_is_refused(store):
    run_id = await killed_run(store, READER_WRITER, {}, [in_flight("reader")])
    other = load('local f = Flow.new("other")\nf:step("x", nodes.script({}))\nreturn f\n')
    with pytest.raises(IronflowError, match="belongs to flow 'rw', not 'other'"):
        await open_resume(store, run_id, registry=REG, env=ENV, flow=other)
    # the refused resume released the lease it took: a second try may proceed
    executor = await open_resume(store, run_id, registry=REG, env=ENV)
    await executor.lease.release()


async def test_as_new_leaves_the_old_record_untouched(store, autojump_clock):
    run_id = await killed_run(store, READER_WRITER, {"shared": "old"},
                              [in_flight("reader"), done("writer", {"shared": "new"})])
    before = await store.get_run(run_id)
    record = await (await open_resume(store, run_id, registry=REG, env=ENV, as_new=True)).run()
    assert record.id != run_id and record.ctx["reader_saw_shared"] == "old"
    assert await store.get_run(run_id) == before


# ---------------------------------------------------------- fencing in the engine
async def test_a_paused_owner_cannot_overwrite_the_new_owners_work(autojump_clock):
    """The first owner sleeps past its lease; a resume takes the run over."""
    store = MemoryStore()
    text = """
    local flow = Flow.new("slow")
    flow:step("slow", nodes.script({ sleep = 100, out = { who = "first owner" } }))
    return flow
    """
    first = prepare_run(load(text), store=store, registry=REG, env=ENV)
    async with trio.open_nursery() as nursery:
        outcome = {}

        async def run_first() -> None:
            outcome["first"] = await first.run()

        nursery.start_soon(run_first)
        await trio.sleep(10)
        store._leases[first.run_id] = (first.owner, 0)  # expired: the owner was paused
        second = await open_resume(store, first.run_id, registry=REG, env=ENV)
        outcome["second"] = await second.run()
    final = await store.get_run(first.run_id)
    assert final.status is RunStatus.SUCCESS
    assert first.lost_lease is not None  # its late writes were refused, not applied
    assert outcome["first"].status is not RunStatus.STALLED  # it wrote no "stalled"
    assert final.tasks["slow"].attempt == 2  # the second owner's attempt, not overwritten


# -------------------------------------------------- the store failing mid-run
class BrokenStore(MemoryStore):
    def __init__(self, fail_after: int, *, final: bool = False) -> None:
        super().__init__()
        self.calls = 0
        self.fail_after = fail_after
        self.final = final

    async def upsert_tasks(self, run_id, tasks, **kw):
        self.calls += 1
        if self.calls > self.fail_after:
            raise StoreError("No space left on device")
        await super().upsert_tasks(run_id, tasks, **kw)

    async def set_status(self, run_id, status, **kw):
        if self.final and status.terminal:
            raise StoreError("No space left on device")
        await super().set_status(run_id, status, **kw)


async def test_a_store_failure_in_a_parallel_phase_stalls_with_one_cause(autojump_clock):
    store = BrokenStore(fail_after=3)
    steps = [step(f"s{i}", config={"sleep": 1}) for i in range(8)]
    executor = prepare_run(flow(*steps), store=store, registry=REG, env=ENV)
    record = await executor.run()  # no ExceptionGroup, no _Stall
    assert record.status is RunStatus.STALLED
    assert executor.stall_reason == "No space left on device"


async def test_a_final_status_that_cannot_be_written_keeps_the_lease(autojump_clock):
    store = BrokenStore(fail_after=10**6, final=True)
    executor = prepare_run(flow(step("a")), store=store, registry=REG, env=ENV)
    with pytest.raises(FinalStatusError, match=r"ended success but its final status could not"):
        await executor.run()
    lease = await store.get_lease(executor.run_id)
    assert lease is not None and lease.owner == executor.owner  # kept: it will expire
    assert (await store.get_run(executor.run_id)).status is RunStatus.RUNNING
    assert await store.reconcile_expired(lease.expires_micros) == [executor.run_id]


# ---------------------------------------------------------- values at the edge
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
async def test_non_finite_numbers_in_the_context_are_refused_on_every_store(store, value):
    with pytest.raises(InvalidInputError, match="not a finite JSON number"):
        prepare_run(flow(step("a")), store=store, registry=REG, context={"x": value}, env=ENV)


async def test_deeply_nested_context_is_refused(store):
    deep: Any = "x"
    for _ in range(5000):
        deep = {"d": deep}
    with pytest.raises(InvalidInputError, match="nests deeper than 128 levels"):
        prepare_run(flow(step("a")), store=store, registry=REG, context={"x": deep}, env=ENV)


def test_a_deeply_nested_stored_record_is_corruption_not_a_crash(tmp_path):
    from ironflow_core.errors import StoreCorruptionError

    root = tmp_path / "runs"
    root.mkdir()
    body = "[" * 100_000 + "]" * 100_000
    (root / "run-1.json").write_text('{"id": "run-1", "flow_name": "f", "status": "running",'
                                     f' "started": null, "finished": null, "ctx": {{"x": {body}}},'
                                     ' "tasks": {}}')
    with pytest.raises(StoreCorruptionError, match="nests too deeply"):
        trio.run(JsonStore(root).get_run, "run-1")


@pytest.mark.parametrize(("field", "value"), [("backoff_s", 1e308), ("timeout_s", 1e300)])
def test_waits_longer_than_a_timer_can_hold_are_refused_when_planning(field, value):
    from ironflow_core.engine import plan_flow

    with pytest.raises(FlowValidationError, match="too long"):
        plan_flow(flow(step("a", max_retries=2, **{field: value})), REG)


def test_retries_with_a_huge_backoff_fail_validation_from_lua():
    from ironflow_core.engine import plan_flow

    definition = load('local f = Flow.new("r")\nf:step("a", nodes.script({})):retries(2, 1e308)\n'
                      'return f\n')
    with pytest.raises(FlowValidationError, match="Step 'a' retry backoff 1e\\+308s is too long"):
        plan_flow(definition, REG)


async def test_exponential_backoff_is_capped(autojump_clock, monkeypatch):
    from ironflow_core.engine import lease

    monkeypatch.setattr(lease, "RENEW_EVERY_SECONDS", math.inf)
    executor = prepare_run(
        flow(step("a", config={"fail": "no"}, max_retries=3, backoff_s=3e7)),
        store=MemoryStore(), registry=REG, env=ENV)
    start = trio.current_time()
    with trio.move_on_after(10**9):
        await executor.run()
    assert trio.current_time() - start == pytest.approx(3e7 + 31_536_000 * 2)


# -------------------------------------------------------------- recovery
def test_recovery_settings_are_strict():
    assert RecoverySettings.from_env({}) == RecoverySettings("stall", 3)
    assert RecoverySettings.from_env({"IRONFLOW_RECOVERY": "resume",
                                      "IRONFLOW_RECOVERY_MAX_ATTEMPTS": "5"}).max_attempts == 5
    with pytest.raises(ConfigError, match="'stall' or 'resume'"):
        RecoverySettings.from_env({"IRONFLOW_RECOVERY": "restart"})
    with pytest.raises(ConfigError):
        RecoverySettings.from_env({"IRONFLOW_RECOVERY_MAX_ATTEMPTS": "-1"})


def test_lease_ttl_setting():
    from ironflow_core.engine.lease import lease_ttl

    assert lease_ttl({}) == 90 and lease_ttl({"IRONFLOW_LEASE_TTL_SECONDS": "2.5"}) == 2.5
    for bad in ("0", "abc", "nan", "1e9"):
        with pytest.raises(ConfigError, match="IRONFLOW_LEASE_TTL_SECONDS"):
            lease_ttl({"IRONFLOW_LEASE_TTL_SECONDS": bad})


async def test_recovery_stall_mode_only_stalls(store):
    run_id = await killed_run(store, READER_WRITER, {}, [in_flight("reader")])
    report = await Recovery(store, settings=RecoverySettings()).tick()
    assert report.stalled == (run_id,) and report.resumed == ()
    assert (await store.get_run(run_id)).status is RunStatus.STALLED


async def test_recovery_resume_mode_continues_orphans_in_place(store, autojump_clock):
    run_id = await killed_run(store, READER_WRITER, {"shared": "old"},
                              [in_flight("reader"), done("writer", {"shared": "new"})])
    async with trio.open_nursery() as nursery:
        recovery = Recovery(store, settings=RecoverySettings("resume", 3),
                            start=nursery_starter(store, nursery, registry=REG, env=ENV))
        report = await recovery.tick()
        assert report.resumed == (run_id,)
    record = await store.get_run(run_id)
    assert record.status is RunStatus.SUCCESS and record.ctx["reader_saw_shared"] == "old"
    assert (await store.get_origin(run_id)).recoveries == 1


async def test_recovery_gives_up_after_the_maximum_attempts(store):
    run_id = await killed_run(store, READER_WRITER, {}, [in_flight("reader")])
    origin = await store.get_origin(run_id)
    origin.recoveries = 2
    await store.set_origin(run_id, origin)
    started = []

    async def start(run_id: str) -> None:
        started.append(run_id)

    report = await Recovery(store, settings=RecoverySettings("resume", 2), start=start).tick()
    assert report.left_stalled == (run_id,) and started == []
    assert (await store.get_run(run_id)).status is RunStatus.STALLED


# ------------------------------------------------------------- sub-flows
async def test_sub_flows_travel_with_the_run_and_resume_as_recorded(tmp_path,
                                                                           autojump_clock):
    store = JsonStore(tmp_path / "runs")
    child = tmp_path / "child.lua"
    child.write_text('local f = Flow.new("child")\n'
                     'f:step("c", function(ctx)\n'
                     '  if env("BREAK") then error("broken", 0) end\n'
                     '  return { from_child = ctx.n * 2 }\nend)\nreturn f\n')
    parent = load('local f = Flow.new("parent")\n'
                  'f:step("sub", nodes.subworkflow({ flow = "child.lua", '
                  'input = { n = "n" } }))\nreturn f\n', str(tmp_path / "parent.lua"))
    first = await prepare_run(parent, store=store, registry=REG, env={**ENV, "BREAK": "1"},
                              context={"n": 21, "_flow_dir": str(tmp_path)}).run()
    assert first.status is RunStatus.FAILED
    origin = await store.get_origin(first.id)
    assert list(origin.subflows) == [str(child)]
    # The sub-flow is recorded with the run: a resume runs the recorded one, not
    # whatever the file holds now (its path must still resolve, SUB-1).
    child.write_text('local f = Flow.new("child")\nf:step("c", function(ctx) '
                     'error("edited since", 0) end)\nreturn f\n')
    record = await (await open_resume(store, first.id, registry=REG, env=ENV)).run()
    assert record.status is RunStatus.SUCCESS, record.tasks["sub"].error
    assert record.id == first.id and record.tasks["sub"].attempt == 2


async def test_a_succeeded_run_whose_lease_is_still_held_is_refused_as_succeeded(store):
    """Between writing its final status and releasing its lease, a finished run is
    still leased: a resume then hears that it already succeeded, not that it runs."""
    run_id = await killed_run(store, READER_WRITER, {"shared": "old"}, [])
    await store.acquire_lease(run_id, "finishing-owner", 60)
    with pytest.raises(RunConflictError, match="is still executing"):
        await open_resume(store, run_id, registry=REG, env=ENV)  # still running: busy
    await store.set_status(run_id, RunStatus.SUCCESS, owner="finishing-owner")
    with pytest.raises(IronflowError, match="already succeeded; nothing to resume") as caught:
        await open_resume(store, run_id, registry=REG, env=ENV)
    assert not isinstance(caught.value, RunConflictError)
