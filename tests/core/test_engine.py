"""Engine semantics (semantics.md#engine), on programmatic flows with scripted nodes."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ironflow_core.engine import execute, plan_flow, prepare_run
from ironflow_core.errors import FlowValidationError, RunConflictError, StoreError
from ironflow_core.model import RunStatus, TaskStatus
from ironflow_core.stores.leases import clock_micros
from ironflow_core.stores.memory import MemoryStore

from .engine_helpers import flow, registry, step

REG = registry()
ENV = {"IRONFLOW_MAX_CONCURRENT_TASKS": "4"}


class Recorder:
    def __init__(self) -> None:
        self.events: list = []

    def on_event(self, event) -> None:
        self.events.append(event)


async def run(f, *, context=None, env=ENV, observers=(), store=None):
    store = store or MemoryStore()
    executor = prepare_run(f, store=store, registry=REG, context=context or {}, env=env,
                           observers=observers)
    record = await executor.run()
    return record, executor


async def test_eng_3_phase_peers_never_see_each_other_but_later_phases_see_all(autojump_clock):
    f = flow(
        step("a", config={"out": {"a": 1}}),
        step("b", config={"out": {"b": 2}, "sleep": 1, "seen": ["a"]}),
        step("c", deps=("a",), config={"seen": ["b"]}),
    )
    record, _ = await run(f)
    assert record.status is RunStatus.SUCCESS
    assert record.ctx["b_saw_a"] == "<missing>"  # same phase peer
    assert record.ctx["c_saw_b"] == 2  # earlier phase, not a dependency


async def test_eng_91_later_declared_producer_wins_regardless_of_completion(autojump_clock):
    f = flow(
        step("slow_first", config={"out": {"k": "first"}, "sleep": 2}),
        step("fast_second", config={"out": {"k": "second"}}),
    )
    for _ in range(3):
        record, _ = await run(f)
        assert record.ctx["k"] == "second"
        assert record.tasks["slow_first"].output == {"k": "first"}


async def test_eng_30_concurrency_one_peer_output_invisible(autojump_clock):
    f = flow(step("a", config={"out": {"a": 1}}), step("b", config={"seen": ["a"]}))
    record, _ = await run(f, env={"IRONFLOW_MAX_CONCURRENT_TASKS": "1"})
    assert record.ctx["b_saw_a"] == "<missing>"


async def test_eng_120_concurrency_limit_is_respected_and_zero_means_one(autojump_clock):
    steps = [step(f"s{i}", config={"sleep": 1}) for i in range(6)]
    _, ex = await run(flow(*steps), env={"IRONFLOW_MAX_CONCURRENT_TASKS": "2"})
    assert ex.services.scratch["running"][1] == 2
    record, ex = await run(flow(*steps), env={"IRONFLOW_MAX_CONCURRENT_TASKS": "0"})
    assert record.status is RunStatus.SUCCESS
    assert ex.services.scratch["running"][1] == 1


async def test_eng_45_route_skipped_step_does_not_block_join(autojump_clock):
    f = flow(
        step("check", node="router", config={"route": "high"}),
        step("high", deps=("check",), route="high", config={"out": {"branch": "high"}}),
        step("low", deps=("check",), route="low", config={"out": {"branch": "low"}}),
        step("join", deps=("high", "low"), config={"out": {"joined": True}}),
    )
    record, _ = await run(f)
    assert record.status is RunStatus.SUCCESS
    assert record.tasks["low"].status is TaskStatus.SKIPPED
    assert record.tasks["low"].attempt == 0 and record.tasks["low"].started is None
    assert record.ctx["branch"] == "high" and record.ctx["joined"] is True
    assert record.ctx["_route_check"] == "high"  # ENG-51


async def test_eng_50_route_from_a_non_conditional_dependency_never_matches(autojump_clock):
    f = flow(step("a"), step("b", deps=("a",), route="true"))
    record, _ = await run(f)
    assert record.tasks["b"].status is TaskStatus.SKIPPED


async def test_eng_60_failure_skips_dependents_transitively_independents_continue(
    autojump_clock,
):
    rec = Recorder()
    f = flow(
        step("bad", config={"fail": "boom"}),
        step("child", deps=("bad",)),
        step("grandchild", deps=("child",)),
        step("free", config={"out": {"free": True}}),
    )
    record, _ = await run(f, observers=[rec])
    assert record.status is RunStatus.FAILED
    assert record.tasks["bad"].status is TaskStatus.FAILED
    assert record.tasks["bad"].error == "boom"  # ENG-24: not the wrapper text
    assert record.tasks["child"].status is TaskStatus.SKIPPED
    assert record.tasks["grandchild"].status is TaskStatus.SKIPPED
    assert record.ctx["free"] is True
    reasons = {e.step: e.reason for e in rec.events if e.type == "task_skipped"}
    assert reasons == {"child": "dependency failed", "grandchild": "dependency failed"}


async def test_dsl_35_backoff_doubles_and_attempts_are_retries_plus_one(autojump_clock):
    f = flow(step("flaky", max_retries=3, backoff_s=1.0, config={"fail": "nope"}))
    start = trio.current_time()
    record, ex = await run(f)
    times = [t - start for (_, _, t) in ex.services.scratch["log"]]
    assert [round(t, 3) for t in times] == [0, 1, 3, 7]
    assert record.tasks["flaky"].attempt == 4
    assert record.status is RunStatus.FAILED


async def test_eng_76_timeout_shorter_than_backoff_gives_one_attempt(autojump_clock):
    rec = Recorder()
    f = flow(step("work", max_retries=3, backoff_s=0.2, timeout_s=0.05,
                  config={"fail": "always"}))
    record, _ = await run(f, observers=[rec])
    task = record.tasks["work"]
    assert task.attempt == 1
    assert task.error == "Task 'work' timed out after 0.05s total"
    assert not [e for e in rec.events if e.type == "task_retrying"]


async def test_eng_76_timeout_bounds_all_attempts(autojump_clock):
    f = flow(step("work", max_retries=4, backoff_s=0, timeout_s=0.2,
                  config={"fail": "always", "sleep": 0.08}))
    record, _ = await run(f)
    task = record.tasks["work"]
    assert task.attempt == 3
    assert task.error == "Task 'work' timed out after 0.2s total"


async def test_eng_76_fail_once_then_succeed_has_one_retry_event(autojump_clock):
    rec = Recorder()
    f = flow(step("work", max_retries=2, backoff_s=0.01, timeout_s=0.5,
                  config={"fail": "once", "fail_times": 1, "out": {"ok": 1}}))
    record, _ = await run(f, observers=[rec])
    assert record.status is RunStatus.SUCCESS
    assert record.tasks["work"].attempt == 2
    assert len([e for e in rec.events if e.type == "task_retrying"]) == 1


async def test_eng_82_structured_failure_publishes_final_output_only(autojump_clock):
    f = flow(step("sh", max_retries=2, backoff_s=0,
                  config={"fail": "exit 3", "failure_output": {"code": 3}}))
    record, _ = await run(f)
    assert record.status is RunStatus.FAILED
    assert record.ctx["attempt"] == 3 and record.ctx["code"] == 3
    assert record.tasks["sh"].output == {"code": 3, "attempt": 3}


async def test_eng_73_timeout_during_backoff_keeps_previous_structured_output(autojump_clock):
    f = flow(step("sh", max_retries=2, backoff_s=5, timeout_s=1,
                  config={"fail": "exit 3", "failure_output": {"code": 3}}))
    record, _ = await run(f)
    task = record.tasks["sh"]
    assert task.error == "Task 'sh' timed out after 1s total"
    assert task.output == {"code": 3, "attempt": 1}
    assert record.ctx["code"] == 3


async def test_eng_113_recovery_resolves_failure_and_dependents_run(autojump_clock):
    f = flow(
        step("risky", on_error="handler", config={"fail": "read failed"}),
        step("handler", config={"echo_error": True, "out": {"caught": True}}),
        step("after", deps=("risky",), config={"out": {"after": True}, "seen": ["caught"]}),
    )
    record, _ = await run(f)
    assert record.status is RunStatus.SUCCESS
    assert record.tasks["risky"].status is TaskStatus.FAILED
    assert record.ctx["caught"] is True
    assert record.ctx["saw_error_step"] == "risky"
    assert record.ctx["saw_error_node_type"] == "script"
    assert record.ctx["saw_error_message"] == "Task 'risky' failed after 1 attempts: read failed"
    assert "saw_error_output" not in record.ctx  # plain errors carry no output
    assert record.ctx["after_saw_caught"] is True  # dependents wait for the handler
    assert not [k for k in record.ctx if k.startswith("_error")]


async def test_eng_112_handler_sees_structured_output_of_its_source(autojump_clock):
    f = flow(
        step("src", on_error="h", config={"fail": "x", "failure_output": {"code": 7}}),
        step("h", config={"echo_error": True}),
    )
    record, _ = await run(f)
    assert record.ctx["saw_error_output"] == {"code": 7, "attempt": 1}


async def test_eng_111_untriggered_handler_and_its_dependents_skip(autojump_clock):
    rec = Recorder()
    f = flow(
        step("ok", on_error="h"),
        step("h"),
        step("after_h", deps=("h",)),
        step("after_ok", deps=("ok",), config={"out": {"ran": True}}),
    )
    record, _ = await run(f, observers=[rec])
    assert record.status is RunStatus.SUCCESS
    assert record.tasks["h"].status is TaskStatus.SKIPPED
    assert record.tasks["after_h"].status is TaskStatus.SKIPPED
    assert record.ctx["ran"] is True
    reasons = {e.step: e.reason for e in rec.events if e.type == "task_skipped"}
    assert reasons["h"] == "error handler was not triggered"


async def test_eng_114_failing_handler_leaves_run_failed(autojump_clock):
    f = flow(
        step("src", on_error="h", config={"fail": "x"}),
        step("h", max_retries=1, backoff_s=0, config={"fail": "handler broke"}),
    )
    record, _ = await run(f)
    assert record.status is RunStatus.FAILED
    assert record.tasks["h"].attempt == 2


async def test_two_concurrent_handlers_each_see_their_own_error(autojump_clock):
    f = flow(
        step("a", on_error="ha", config={"fail": "A"}),
        step("b", on_error="hb", config={"fail": "B"}),
        step("ha", config={"echo_error": True, "out": {"ha": 1}, "seen": []}),
        step("hb", config={"echo_error": True}),
    )
    record, _ = await run(f)
    assert record.status is RunStatus.SUCCESS
    # later-declared hb wins the shared key, but each saw its own
    assert record.ctx["saw_error_step"] == "b"


async def test_eng_94_cancel_mid_phase_discards_phase_outputs(autojump_clock):
    store = MemoryStore()
    f = flow(step("fast", config={"out": {"fast": 1}}),
             step("slow", config={"out": {"slow": 1}, "sleep": 100}))
    executor = prepare_run(f, store=store, registry=REG, env=ENV)
    async with trio.open_nursery() as nursery:
        async def cancel_later():
            await trio.sleep(5)
            executor.cancel()
        nursery.start_soon(cancel_later)
        record = await executor.run()
    assert record.status is RunStatus.CANCELLED
    assert record.tasks["fast"].status is TaskStatus.SUCCESS
    assert record.tasks["slow"].status is TaskStatus.CANCELLED
    assert record.tasks["slow"].error == "workflow execution was cancelled"
    assert "fast" not in record.ctx and "slow" not in record.ctx
    assert record.finished is not None


async def test_eng_15_run_deadline_cancels(autojump_clock):
    f = flow(step("slow", config={"sleep": 100}))
    record, _ = await run(f, env={**ENV, "IRONFLOW_MAX_RUN_SECONDS": "3"})
    assert record.status is RunStatus.CANCELLED


async def test_eng_151_stored_ctx_is_initial_until_finalization(autojump_clock):
    store = MemoryStore()
    seen = {}
    f = flow(step("a", config={"out": {"a": 1}}), step("b", deps=("a",), config={"sleep": 1}))
    executor = prepare_run(f, store=store, registry=REG, context={"init": 1}, env=ENV)
    async with trio.open_nursery() as nursery:
        async def peek():
            await trio.sleep(0.5)
            seen["mid"] = await store.get_run(executor.run_id)
        nursery.start_soon(peek)
        record = await executor.run()
    assert seen["mid"].ctx == {"init": 1}
    assert seen["mid"].tasks["a"].status is TaskStatus.SUCCESS
    assert record.ctx == {"init": 1, "a": 1}


async def test_eng_11_every_task_starts_pending_and_events_are_ordered(autojump_clock):
    rec = Recorder()
    f = flow(step("a"), step("b", deps=("a",)))
    record, _ = await run(f, observers=[rec])
    types = [e.type for e in rec.events]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types.index("context_updated") < types.index("run_finished")
    assert [e.type for e in rec.events if e.step == "a"] == ["task_started", "task_succeeded"]
    assert all(e.run_id == record.id for e in rec.events)
    started = next(e for e in rec.events if e.type == "task_started")
    assert started.attempt == 1 and started.node_type == "script"


async def test_eng_25_oversized_task_output_is_truncated_in_history(autojump_clock):
    f = flow(step("big", config={"out": {"blob": "x" * 5000}}))
    record, _ = await run(f, env={**ENV, "IRONFLOW_MAX_TASK_OUTPUT_BYTES": "1000"})
    output = record.tasks["big"].output
    assert output["_truncated"] is True and output["_limit_bytes"] == 1000
    assert output["_minimum_bytes"] == 1001
    # the final context value is bounded too (ENG-150)
    assert record.ctx["blob"]["_truncated"] is True


class BrokenStore(MemoryStore):
    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.calls = 0
        self.fail_after = fail_after

    async def upsert_tasks(self, run_id, tasks, **kw):
        self.calls += 1
        if self.calls > self.fail_after:
            raise StoreError("disk full")
        await super().upsert_tasks(run_id, tasks, **kw)


async def test_eng_61_persistence_failure_stalls_the_run(autojump_clock):
    store = BrokenStore(fail_after=1)
    f = flow(step("a"), step("b", deps=("a",)))
    record, _ = await run(f, store=store)
    assert record.status is RunStatus.STALLED


def test_dsl_106_cycles_listed_in_declaration_order():
    f = flow(step("x"), step("a", deps=("b",)), step("b", deps=("a",)))
    with pytest.raises(FlowValidationError) as info:
        plan_flow(f, REG)
    assert "Cycle detected in flow DAG involving steps: a, b" in str(info.value)
    with pytest.raises(FlowValidationError, match="Cycle"):
        plan_flow(flow(step("self", deps=("self",))), REG)


def test_dsl_100_to_105_errors_are_collected_together():
    f = flow(
        step("a", deps=("ghost",)),
        step("b", max_retries=101),
        step("c", backoff_s=-1.0),
        step("d", timeout_s=0.0),
        step("e", route="yes"),
        step("f", on_error="f"),
        step("g", on_error="nope"),
    )
    with pytest.raises(FlowValidationError) as info:
        plan_flow(f, REG)
    text = str(info.value)
    assert text.startswith("Invalid flow: ")
    for fragment in (
        "Step 'a' depends on 'ghost', which does not exist",
        "Step 'b' retry count is too large (max 100)",
        "Step 'c' retry backoff must be a finite, non-negative number of seconds",
        "Step 'd' timeout must be a finite number greater than zero",
        "Step 'e' declares a route but has no dependencies",
        "Step 'f' cannot use itself as an on_error handler",
        "Step 'g' on_error target 'nope' does not exist",
    ):
        assert fragment in text
    plan_flow(flow(step("ok", max_retries=100)), REG)  # 100 is accepted


def test_dsl_105_recovery_rules():
    f = flow(
        step("s1", on_error="h"),
        step("s2", on_error="h"),
        step("h", on_error="s1"),
        step("s3", on_error="h3"),
        step("h3", deps=("s3",), route="x"),
    )
    with pytest.raises(FlowValidationError) as info:
        plan_flow(f, REG)
    text = str(info.value)
    assert "Recovery handler 'h' is assigned to multiple source steps: 's1' and 's2'" in text
    assert "Recovery handler 'h' cannot declare on_error" in text
    assert "Recovery handler 'h3' cannot declare a route" in text
    assert "Recovery handler 'h3' cannot depend on its owning source step 's3'" in text


def test_eng_1_recovery_edges_put_dependents_after_handler():
    f = flow(step("s", on_error="h"), step("h"), step("d", deps=("s",)))
    plan = plan_flow(f, REG)
    assert plan.phases == ((0,), (1,), (2,))


def test_dsl_107_unknown_node_types():
    f = flow(step("x", node="nope"))
    # the wording follows issue 18 (docs/compatibility.md), not DSL-107's
    with pytest.raises(FlowValidationError, match=r"Unknown node type 'nope' \(step 'x'\); "):
        plan_flow(f, REG)


async def test_planning_errors_write_no_state():
    store = MemoryStore()
    with pytest.raises(FlowValidationError):
        await execute(flow(step("a", deps=("zz",))), store=store, registry=REG, env=ENV)
    page = await store.list_runs()
    assert page.runs == ()


async def test_resume_reruns_only_unfinished_steps(autojump_clock):
    from ironflow_core.engine import prepare_resume

    store = MemoryStore()
    broken = flow(
        step("a", config={"out": {"a": 1}}),
        step("b", deps=("a",), config={"fail": "transient", "seen": ["a"]}),
        step("c", deps=("b",), config={"seen": ["a"]}),
    )
    first, _ = await run(broken, store=store)
    assert first.status is RunStatus.FAILED
    fixed = flow(
        step("a", config={"out": {"a": 1}}),
        step("b", deps=("a",), config={"out": {"b": 2}, "seen": ["a"]}),
        step("c", deps=("b",), config={"seen": ["a", "b"]}),
    )
    executor = prepare_resume(first, fixed, store=store, registry=REG, env=ENV)
    second = await executor.run()
    assert second.status is RunStatus.SUCCESS and second.id != first.id
    assert "a" not in executor.services.scratch["attempts"]  # not run again
    assert second.tasks["a"].status is TaskStatus.SUCCESS
    assert second.ctx["c_saw_a"] == 1 and second.ctx["c_saw_b"] == 2
    assert (await store.get_run(first.id)).status is RunStatus.FAILED


# ------------------------------------------------------- ST-50 owner leases
class LeaseLog(MemoryStore):
    """A memory store that records every lease call with trio's (mock) time."""

    def __init__(self, *, refuse_acquire: bool = False) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, float]] = []
        self.refuse_acquire = refuse_acquire

    async def acquire_lease(self, run_id, owner, ttl_s):
        self.calls.append(("acquire", owner, trio.current_time()))
        assert ttl_s == 90
        if self.refuse_acquire:
            raise StoreError("cannot reach the store")
        await super().acquire_lease(run_id, owner, ttl_s)

    async def renew_lease(self, run_id, owner, ttl_s):
        self.calls.append(("renew", owner, trio.current_time()))
        assert ttl_s == 90
        await super().renew_lease(run_id, owner, ttl_s)

    async def release_lease(self, run_id, owner):
        self.calls.append(("release", owner, trio.current_time()))
        await super().release_lease(run_id, owner)


async def test_st_50_a_run_holds_its_lease_renews_it_every_30s_and_releases_it(autojump_clock):
    store = LeaseLog()
    f = flow(step("slow", config={"sleep": 100}))
    executor = prepare_run(f, store=store, registry=REG, env=ENV)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        async def delete_meanwhile():
            await trio.sleep(50)
            with pytest.raises(RunConflictError, match="is still executing"):  # ST-35
                await store.delete_run(executor.run_id)
        nursery.start_soon(delete_meanwhile)
        record = await executor.run()
    assert record.status is RunStatus.SUCCESS
    owner = store.calls[0][1]
    assert len(owner) == 32
    assert [(kind, who, at - start) for kind, who, at in store.calls] == [
        ("acquire", owner, 0), ("renew", owner, 30), ("renew", owner, 60),
        ("renew", owner, 90), ("release", owner, 100),
    ]
    assert await store.reconcile_expired(clock_micros() + 3600 * 10**6) == []  # none left
    await store.delete_run(record.id)
    await run(flow(step("quick")), store=store)
    assert store.calls[-1][0] == "release" and store.calls[-1][1] != owner  # a new token


async def test_st_50_a_lost_lease_stalls_the_run_and_stops_its_work(autojump_clock):
    """Another server saw the lease expire and reconciled the run while it still ran."""
    store = LeaseLog()
    rec = Recorder()
    f = flow(step("slow", config={"sleep": 100, "out": {"slow": 1}}),
             step("after", deps=("slow",)))
    executor = prepare_run(f, store=store, registry=REG, env=ENV, observers=[rec])
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        async def other_server():
            await trio.sleep(40)
            later = clock_micros() + 91 * 10**6
            assert await store.reconcile_expired(later) == [executor.run_id]
        nursery.start_soon(other_server)
        record = await executor.run()
    assert trio.current_time() - start == 60  # stopped at the failed renewal, not at 100
    # Fenced out (issue 14): it writes nothing more, the record is as the other server left it.
    assert record.status is RunStatus.STALLED
    assert record.tasks["slow"].status is TaskStatus.FAILED
    assert record.tasks["slow"].error == "task stopped after execution-owner lease expired"
    assert record.tasks["after"].status is TaskStatus.SKIPPED
    assert "slow" not in record.ctx
    assert [kind for kind, _, _ in store.calls] == ["acquire", "renew", "renew"]  # no release
    finished = rec.events[-1]
    assert (finished.type, finished.run_status, finished.reason) == (
        "run_finished", "stalled", "workflow execution stopped after an infrastructure failure")


async def test_st_50_a_run_that_cannot_take_its_lease_stalls_before_any_step(autojump_clock):
    store = LeaseLog(refuse_acquire=True)
    record, executor = await run(flow(step("a"), step("b", deps=("a",))), store=store)
    assert record.status is RunStatus.STALLED
    assert "attempts" not in executor.services.scratch  # no step ran
    assert {t.status for t in record.tasks.values()} == {TaskStatus.SKIPPED}
    assert [kind for kind, _, _ in store.calls] == ["acquire"]


async def test_st_50_child_runs_take_no_lease(autojump_clock):
    store = LeaseLog()
    executor = prepare_run(flow(step("a", config={"sleep": 45})), store=store, registry=REG,
                           env=ENV, is_child=True)
    record = await executor.run()
    assert record.status is RunStatus.SUCCESS
    assert store.calls == []
