"""Group commit of task updates (issue 17): batching, durability, errors, cancellation, order."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing

from ironflow_core.engine import prepare_run
from ironflow_core.engine.group_commit import GroupCommit
from ironflow_core.errors import LeaseLostError
from ironflow_core.model import RunStatus, TaskRecord, TaskStatus
from ironflow_core.stores.memory import MemoryStore
from tests.core.engine_helpers import flow, registry, step


class SlowLog:
    """A write function that takes ``delay`` (mock clock) and records what became durable."""

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = delay
        self.writes: list[list[str]] = []
        self.durable: list[str] = []
        self.fail_next: Exception | None = None

    async def __call__(self, batch: Sequence[str]) -> None:
        items = list(batch)
        self.writes.append(items)
        await trio.sleep(self.delay)
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.durable.extend(items)


async def test_an_update_alone_is_written_at_once_by_its_caller():
    log = SlowLog(delay=0)
    writer = GroupCommit(log, window=1)
    await writer.save("a")
    await writer.save("b")
    assert log.writes == [["a"], ["b"]]
    assert writer.batches == 2


async def test_updates_meeting_a_write_in_flight_share_the_next_write(autojump_clock):
    log = SlowLog()
    writer = GroupCommit(log, window=1)
    released: dict[str, list[str]] = {}

    async def save(item: str) -> None:
        await writer.save(item)
        released[item] = list(log.durable)  # what was durable when the caller was released

    async with trio.open_nursery() as nursery:
        nursery.start_soon(save, "first")
        await trio.testing.wait_all_tasks_blocked()
        for item in ("b", "c", "d"):
            nursery.start_soon(save, item)
    assert [sorted(batch) for batch in log.writes] == [["first"], ["b", "c", "d"]]
    assert writer.batches == 2
    for item, durable in released.items():
        assert item in durable  # never released before its own batch was written
    assert released["first"] == ["first"]


async def test_a_store_error_reaches_every_caller_of_its_batch_and_only_them(autojump_clock):
    log = SlowLog()
    writer = GroupCommit(log, window=1)
    outcomes: dict[str, BaseException | None] = {}
    error = LeaseLostError("Run 'r' is owned by another process")

    async def save(item: str) -> None:
        try:
            await writer.save(item)
        except LeaseLostError as exc:
            outcomes[item] = exc
        else:
            outcomes[item] = None

    async with trio.open_nursery() as nursery:
        nursery.start_soon(save, "first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(save, "b")
        nursery.start_soon(save, "c")
        await trio.sleep(1.5)  # "first" is durable, the gathered [b, c] is in flight
        log.fail_next = error
    assert outcomes == {"first": None, "b": error, "c": error}
    assert log.durable == ["first"]
    await writer.save("after")  # the writer goes on after a failed batch
    assert log.durable == ["first", "after"]


async def test_a_caller_cancelled_while_waiting_leaves_the_others_unharmed(autojump_clock):
    log = SlowLog()
    writer = GroupCommit(log, window=1)
    done: list[str] = []

    async def save(item: str) -> None:
        await writer.save(item)
        done.append(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(save, "first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(save, "b")
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await writer.save("cancelled")
        nursery.start_soon(save, "c")
    assert sorted(done) == ["b", "c", "first"]
    # not acknowledged, but written with the callers still waiting (upserts are idempotent)
    assert [sorted(batch) for batch in log.writes] == [["first"], ["b", "c", "cancelled"]]


async def test_a_batch_whose_callers_all_left_is_not_written(autojump_clock):
    log = SlowLog()
    writer = GroupCommit(log, window=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.save, "first")
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(0.5):
            await writer.save("gone")
    await writer.save("later")
    assert log.writes == [["first"], ["later"]]
    assert log.durable == ["first", "later"]


async def test_a_leader_cancelled_mid_write_hands_the_batch_to_another_caller(autojump_clock):
    log = SlowLog()
    leaders: list[str] = []
    write = log.__call__

    async def recording(batch: Sequence[str]) -> None:
        leaders.append(trio.lowlevel.current_task().name)
        await write(batch)

    writer = GroupCommit(recording, window=1)
    scopes = {"a": trio.CancelScope(), "b": trio.CancelScope()}
    done: list[str] = []

    async def save(item: str) -> None:
        with scopes[item]:
            await writer.save(item)
            done.append(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.save, "first", name="first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(save, "a", name="a")
        nursery.start_soon(save, "b", name="b")
        await trio.sleep(1.5)  # "first" is durable, [a, b] is in flight, written by a or b
        assert [sorted(batch) for batch in log.writes] == [["first"], ["a", "b"]]
        leader = leaders[-1]
        scopes[leader].cancel()
    other = "b" if leader == "a" else "a"
    assert done == [other]
    assert leaders[-1] == other  # the batch went back to the caller left, who wrote it again
    assert [sorted(batch) for batch in log.writes] == [["first"], ["a", "b"], ["a", "b"]]
    assert sorted(log.durable) == ["a", "b", "first"]


async def test_updates_of_one_task_reach_the_store_in_order(autojump_clock):
    log = SlowLog()
    writer = GroupCommit(log, window=1)

    async def steps(name: str) -> None:
        for attempt in range(5):
            await writer.save(f"{name}:{attempt}")

    async with trio.open_nursery() as nursery:
        for name in "abcd":
            nursery.start_soon(steps, name)
    for name in "abcd":
        mine = [item for item in log.durable if item.startswith(name)]
        assert mine == [f"{name}:{i}" for i in range(5)]
    assert writer.batches < 20  # gathered, not one write per update


async def test_writes_overlap_up_to_the_window_before_updates_gather(autojump_clock):
    log = SlowLog()
    writer = GroupCommit(log, window=2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.save, "a")
        nursery.start_soon(writer.save, "b")
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(map(tuple, log.writes)) == [("a",), ("b",)]  # both in flight at once
        for item in "cde":
            nursery.start_soon(writer.save, item)
    assert trio.current_time() == 2  # two rounds of one write time each
    assert [sorted(batch) for batch in log.writes[2:]] == [["c", "d", "e"]]
    assert writer.batches == 3


class YieldingStore(MemoryStore):
    """A memory store whose task writes take a scheduler round trip, like a real I/O store."""

    def __init__(self) -> None:
        super().__init__()
        self.task_writes: list[list[TaskRecord]] = []

    async def upsert_tasks(self, run_id, tasks, *, owner=None):  # type: ignore[no-untyped-def]
        batch = list(tasks)
        await trio.sleep(0.001)
        self.task_writes.append(batch)
        await super().upsert_tasks(run_id, batch, owner=owner)


async def test_a_fan_out_writes_fewer_batches_than_updates_and_records_every_task(autojump_clock):
    store = YieldingStore()
    names = [f"s{i}" for i in range(40)]
    executor = prepare_run(flow(*[step(name, config={"out": {name: 1}}) for name in names]),
                           store=store, registry=registry(), context={},
                           env={"IRONFLOW_MAX_CONCURRENT_TASKS": "8"})
    record = await executor.run()
    assert record.status is RunStatus.SUCCESS
    stored = await store.get_run(record.id)
    assert all(stored.tasks[name].status is TaskStatus.SUCCESS for name in names)
    updates = sum(len(batch) for batch in store.task_writes)
    assert updates == 2 * len(names)  # running and success, each written once
    assert len(store.task_writes) < updates // 2  # gathered: batches of several updates


async def test_a_deferred_update_rides_with_the_next_write_and_is_announced_once_durable():
    log = SlowLog(delay=0)
    writer = GroupCommit(log, window=1)
    announced: list[tuple[str, list[str]]] = []
    writer.defer("a-success", lambda: announced.append(("a", list(log.durable))))
    assert log.writes == [] and writer.deferred == 1  # nothing written on its own
    await writer.save("b-running")
    assert log.writes == [["a-success", "b-running"]]  # one write for both, in order
    assert announced == [("a", ["a-success", "b-running"])]  # after it was durable
    writer.defer("b-success", lambda: announced.append(("b", list(log.durable))))
    await writer.flush()
    assert log.writes[-1] == ["b-success"] and writer.deferred == 0
    assert announced[-1][0] == "b"
    await writer.flush()  # nothing deferred: no write
    assert len(log.writes) == 2


async def test_a_failed_write_puts_its_deferred_updates_back_for_the_next(autojump_clock):
    log = SlowLog()
    writer = GroupCommit(log, window=1)
    announced: list[str] = []
    writer.defer("a-success", lambda: announced.append("a"))
    log.fail_next = LeaseLostError("refused")
    with pytest.raises(LeaseLostError):
        await writer.save("b-running")
    assert announced == [] and writer.deferred == 1  # not durable, not announced, kept
    await writer.flush()
    assert log.durable == ["a-success"] and announced == ["a"]


async def test_a_deferred_update_in_a_batch_nobody_waits_for_is_kept(autojump_clock):
    log = SlowLog()
    writer = GroupCommit(log, window=1)
    announced: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.save, "first")  # takes the window
        await trio.testing.wait_all_tasks_blocked()
        writer.defer("a-success", lambda: announced.append("a"))
        with trio.CancelScope() as scope:
            nursery.start_soon(_cancel_soon, scope)
            await writer.save("b-running")  # gathers behind "first", then is cancelled
    assert announced == [] and writer.deferred == 1
    await writer.flush()
    assert log.writes[-1] == ["a-success"] and announced == ["a"]


async def _cancel_soon(scope: trio.CancelScope) -> None:
    await trio.testing.wait_all_tasks_blocked()
    scope.cancel()


class WatchingStore(MemoryStore):
    """Records, per task update written, which writes carried it and when."""

    def __init__(self) -> None:
        super().__init__()
        self.task_writes: list[list[tuple[str, TaskStatus]]] = []

    async def upsert_tasks(self, run_id, tasks, *, owner=None):  # type: ignore[no-untyped-def]
        self.task_writes.append([(t.name, t.status) for t in tasks])
        await super().upsert_tasks(run_id, tasks, owner=owner)


async def test_a_chain_costs_one_task_write_per_step_and_no_step_starts_before_its_input_is_durable(
    autojump_clock,
):
    store = WatchingStore()
    names = [f"s{i}" for i in range(6)]
    steps = [step(names[0], config={"out": {"v0": 1}})]
    steps += [step(n, deps=(names[i],), config={"out": {f"v{i + 1}": 1}})
              for i, n in enumerate(names[1:])]
    durable_when_started: dict[str, TaskStatus] = {}

    class Observer:
        def on_event(self, event):  # type: ignore[no-untyped-def]
            if event.type.value == "task_started" and event.step != "s0":
                before = names[names.index(event.step) - 1]
                durable_when_started[event.step] = store._runs[event.run_id].tasks[before].status

    executor = prepare_run(flow(*steps), store=store, registry=registry(), context={},
                           observers=[Observer()])
    record = await executor.run()
    assert record.status is RunStatus.SUCCESS
    assert len(store.task_writes) == len(names) + 1  # each running carries the success before it
    assert store.task_writes[1] == [("s0", TaskStatus.SUCCESS), ("s1", TaskStatus.RUNNING)]
    assert store.task_writes[-1] == [("s5", TaskStatus.SUCCESS)]  # the last one, at the end
    assert set(durable_when_started.values()) == {TaskStatus.SUCCESS}
    stored = await store.get_run(record.id)
    assert all(stored.tasks[n].status is TaskStatus.SUCCESS for n in names)


async def test_a_success_is_durable_and_announced_without_waiting_for_a_slow_peer(autojump_clock):
    store = WatchingStore()
    seen: dict[str, tuple[float, TaskStatus]] = {}

    class Observer:
        def on_event(self, event):  # type: ignore[no-untyped-def]
            if event.type.value == "task_succeeded":
                stored = store._runs[event.run_id].tasks[event.step].status
                seen[event.step] = (trio.current_time(), stored)

    executor = prepare_run(
        flow(step("slow", config={"sleep": 60}), step("quick", config={"out": {"q": 1}})),
        store=store, registry=registry(), context={}, observers=[Observer()],
        env={"IRONFLOW_MAX_CONCURRENT_TASKS": "2"})
    start = trio.current_time()
    await executor.run()
    quick_at, quick_stored = seen["quick"]
    assert quick_at - start < 1  # not held back until "slow" ends at 60 s
    assert quick_stored is TaskStatus.SUCCESS  # announced only once durable
    assert seen["slow"][1] is TaskStatus.SUCCESS


async def test_the_skips_of_a_phase_share_one_write_and_are_announced_once_durable(autojump_clock):
    store = WatchingStore()
    durable_when_announced: list[TaskStatus] = []

    class Observer:
        def on_event(self, event):  # type: ignore[no-untyped-def]
            if event.type.value == "task_skipped":
                durable_when_announced.append(store._runs[event.run_id].tasks[event.step].status)

    dependents = [step(f"d{i}", deps=("a",)) for i in range(20)]
    executor = prepare_run(flow(step("a", config={"fail": "boom"}), *dependents),
                           store=store, registry=registry(), context={}, observers=[Observer()])
    record = await executor.run()
    assert record.status is RunStatus.FAILED
    skip_writes = [w for w in store.task_writes if ("d0", TaskStatus.SKIPPED) in w]
    assert len(skip_writes) == 1 and len(skip_writes[0]) == 20  # one write for the phase
    assert durable_when_announced == [TaskStatus.SKIPPED] * 20
