"""Schedules: start-up checks, due occurrences on a controlled clock, claims, DST.

Time never passes for real here: each test hands ``Scheduler.tick`` the
instant it pretends it is. Runs execute on a real ``RunManager`` and store.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trio
import trio.testing

from ironflow_core import hookimpl
from ironflow_core.api.events import MemoryEventStore
from ironflow_core.api.runs import RunManager
from ironflow_core.errors import ConfigError
from ironflow_core.model import RunRecord, RunStatus
from ironflow_core.registry import build_registry, default_registry
from ironflow_core.schedules import Scheduler, occurrence_run_id, parse_schedules
from ironflow_core.schedules.config import check_flow_loads
from ironflow_core.schedules.timing import instants_between, next_instants
from ironflow_core.stores.memory import MemoryStore

HELLO = """
local flow = Flow.new("scheduled")
flow:step("greet", nodes.template_render({
  template = "hello ${ctx.region} from ${ctx._schedule}",
  output_key = "greeting",
}))
return flow
"""
SLOW = """
local flow = Flow.new("slow")
flow:step("wait", nodes.delay({ seconds = 3600 }))
return flow
"""


async def settled(condition: Any, real_seconds: float = 30.0) -> None:
    """Let the scheduler run until ``condition()`` holds, worker threads included."""
    deadline = time.monotonic() + real_seconds
    await trio.testing.wait_all_tasks_blocked()
    while not await condition():
        assert time.monotonic() < deadline, "the scheduler did not settle"
        await trio.to_thread.run_sync(time.sleep, 0.005)
        await trio.testing.wait_all_tasks_blocked()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    root = tmp_path / "flows"
    root.mkdir()
    (root / "hello.lua").write_text(HELLO)
    (root / "slow.lua").write_text(SLOW)
    (tmp_path / "outside.lua").write_text(HELLO)
    return root


def schedules(flows: Path, **entries: dict[str, Any]) -> tuple:
    return parse_schedules(entries, str(flows))


# ------------------------------------------------------------ start-up checks
@pytest.mark.parametrize(("entry", "message"), [
    ({"flow": "hello.lua", "cron": "61 * * * *"}, "schedule 'job': invalid cron expression"),
    ({"flow": "hello.lua", "cron": "0 0 2 * * *"}, "expected five fields"),
    ({"flow": "hello.lua", "cron": "0 2 * * *", "timezone": "Mars/Olympus"},
     "schedule 'job': unknown time zone 'Mars/Olympus'"),
    ({"flow": "../outside.lua", "cron": "0 2 * * *"}, "is not a file inside flows_dir"),
    ({"flow": "missing.lua", "cron": "0 2 * * *"}, "is not a file inside flows_dir"),
    ({"flow": "hello.lua", "cron": "0 2 * * *", "context": {"_schedule": "x"}},
     "must not define the reserved key '_schedule'"),
    ({"flow": "hello.lua", "cron": "0 2 * * *", "context": {"_flow_dir": "/"}},
     "reserved key '_flow_dir'"),
    ({"flow": "hello.lua", "cron": "0 2 * * *", "grace_seconds": 5},
     "'grace_seconds' must be between 60 and 604800"),
    ({"flow": "hello.lua", "cron": "0 2 * * *", "every": "day"}, "unknown field 'every'"),
    ({"cron": "0 2 * * *"}, "'flow' must be a non-empty string"),
])
def test_bad_schedules_stop_start_up_with_a_clear_error(flows: Path, entry: dict, message: str):
    with pytest.raises(ConfigError) as info:
        schedules(flows, job=entry)
    assert message in str(info.value)


def test_an_absolute_path_outside_flows_dir_is_refused(flows: Path):
    with pytest.raises(ConfigError, match="not a file inside flows_dir"):
        schedules(flows, job={"flow": str(flows.parent / "outside.lua"), "cron": "* * * * *"})


def test_schedules_need_a_flows_dir(flows: Path):
    with pytest.raises(ConfigError, match="schedules need a flows_dir"):
        parse_schedules({"job": {"flow": "hello.lua", "cron": "* * * * *"}}, None)


def test_a_flow_that_does_not_load_is_a_start_up_error(flows: Path):
    (flows / "broken.lua").write_text("local flow = Flow.new(\n")
    (schedule,) = schedules(flows, job={"flow": "broken.lua", "cron": "* * * * *"})
    with pytest.raises(ConfigError, match=r"schedule 'job': flow 'broken\.lua' does not load"):
        check_flow_loads(schedule, default_registry(), {})


def test_defaults(flows: Path):
    (schedule,) = schedules(flows, job={"flow": "hello.lua", "cron": "0 2 * * *"})
    assert (schedule.timezone, schedule.grace_seconds, dict(schedule.context)) == ("UTC", 300, {})
    assert schedule.path == str((flows / "hello.lua").resolve())


# ---------------------------------------------------------------- timing / DST
def test_spring_forward_fires_at_the_next_valid_time():
    berlin = ZoneInfo("Europe/Berlin")
    # 2026-03-29: 02:00 local does not exist; 03:00 CEST is 01:00 UTC
    instants, _ = instants_between("0 2 * * *", berlin, utc(2026, 3, 28, 12), utc(2026, 3, 30, 12),
                                   limit=64)
    assert instants == [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0)]


def test_fall_back_fires_once_on_the_earlier_instant():
    berlin = ZoneInfo("Europe/Berlin")
    # 2026-10-25: 02:30 local happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET)
    instants, _ = instants_between("30 2 * * *", berlin, utc(2026, 10, 24, 12),
                                   utc(2026, 10, 25, 12), limit=64)
    assert instants == [utc(2026, 10, 25, 0, 30)]
    assert next_instants("30 2 * * *", berlin, utc(2026, 10, 25, 0, 30), 1) == [
        utc(2026, 10, 26, 1, 30)]


def test_run_ids_are_deterministic_per_name_and_instant():
    at = utc(2026, 1, 1, 2)
    assert occurrence_run_id("a", at) == occurrence_run_id("a", at.astimezone(ZoneInfo("Asia/Tokyo")))
    assert occurrence_run_id("a", at) != occurrence_run_id("b", at)
    assert occurrence_run_id("a", at) != occurrence_run_id("a", at + timedelta(minutes=1))


# ------------------------------------------------------------- the scheduler
class Harness:
    """A RunManager on a store, a Scheduler on it, and a clock the test sets."""

    def __init__(self, nursery: trio.Nursery, store: Any, entries: dict, flows: Path,
                 max_runs: int = 0) -> None:
        registry = default_registry()
        self.store = store
        self.runs = RunManager(store, MemoryEventStore(1000), registry=registry, env={},
                               max_runs=max_runs, config_concurrency=None)
        self.runs.nursery = nursery
        self.scheduler = Scheduler(parse_schedules(entries, str(flows)), runs=self.runs,
                                   registry=registry, env={})

    async def tick(self, now: datetime) -> list[tuple[str, str]]:
        decisions = await self.scheduler.tick(now)
        return [(d.instant.strftime("%H:%M"), d.outcome) for d in decisions]

    async def settle(self) -> None:
        await self.runs.wait_idle()


EVERY_MINUTE = {"flow": "hello.lua", "cron": "* * * * *", "grace_seconds": 120,
                "context": {"region": "eu"}}


async def test_start_up_fires_what_is_due_within_grace_then_each_new_occurrence(
        nursery: trio.Nursery, flows: Path):
    h = Harness(nursery, MemoryStore(), {"minutely": EVERY_MINUTE}, flows)
    assert await h.tick(utc(2026, 1, 1, 12, 0, 30)) == [("11:59", "fired"), ("12:00", "fired")]
    assert await h.tick(utc(2026, 1, 1, 12, 0, 59)) == []
    await h.settle()  # (else the next occurrence would overlap the running one)
    assert await h.tick(utc(2026, 1, 1, 12, 1, 5)) == [("12:01", "fired")]
    await h.settle()
    record = await h.store.get_run(occurrence_run_id("minutely", utc(2026, 1, 1, 12, 1)))
    assert record.status is RunStatus.SUCCESS
    assert record.ctx["greeting"] == "hello eu from minutely"
    assert record.ctx["_scheduled_at"] == "2026-01-01T12:01:00Z"
    page = await h.store.list_runs()
    assert len(page.runs) == 3


async def test_missed_occurrences_beyond_grace_are_skipped_with_a_warning(
        nursery: trio.Nursery, flows: Path, caplog: pytest.LogCaptureFixture):
    h = Harness(nursery, MemoryStore(), {"minutely": EVERY_MINUTE}, flows)
    await h.tick(utc(2026, 1, 1, 12, 0, 30))
    await h.settle()
    with caplog.at_level(logging.WARNING, logger="ironflow.schedules"):
        # the process was stopped for ~5 minutes: 12:01..12:02 are over 120 s late
        decisions = await h.tick(utc(2026, 1, 1, 12, 5, 0))
    assert decisions == [("12:01", "late"), ("12:02", "late"), ("12:03", "fired"),
                         ("12:04", "fired"), ("12:05", "fired")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("schedule 'minutely'" in w and "rule: grace" in w for w in warnings)
    assert "2026-01-01T12:01:00Z" in warnings[0]
    await h.settle()


async def test_two_schedulers_on_one_store_fire_each_occurrence_once(
        nursery: trio.Nursery, flows: Path):
    store = MemoryStore()
    first = Harness(nursery, store, {"minutely": EVERY_MINUTE}, flows)
    second = Harness(nursery, store, {"minutely": EVERY_MINUTE}, flows)
    results: dict[str, list] = {}

    async def tick(name: str, h: Harness) -> None:
        results[name] = await h.tick(utc(2026, 1, 1, 12, 0, 30))

    async with trio.open_nursery() as both:  # both race for the same two instants
        both.start_soon(tick, "a", first)
        both.start_soon(tick, "b", second)
    for minute in ("11:59", "12:00"):
        outcomes = sorted(o for name in "ab" for m, o in results[name] if m == minute)
        assert outcomes == ["fired", "not_claimed"], results
    await first.settle()
    await second.settle()
    assert len((await store.list_runs()).runs) == 2


async def test_a_claim_left_by_a_crashed_process_is_never_fired_again(
        nursery: trio.Nursery, flows: Path):
    store = MemoryStore()
    instant = utc(2026, 1, 1, 12, 0)
    run_id = occurrence_run_id("minutely", instant)
    # a process claimed the occurrence (created the record) and died before running it
    await store.create_run(RunRecord(id=run_id, flow_name="scheduled",
                                     started="2026-01-01T12:00:01Z", ctx={}, tasks={}))
    h = Harness(nursery, store, {"minutely": EVERY_MINUTE}, flows)
    assert await h.tick(utc(2026, 1, 1, 12, 0, 30)) == [("11:59", "fired"),
                                                         ("12:00", "not_claimed")]
    await h.settle()
    record = await store.get_run(run_id)
    assert record.status is RunStatus.PENDING and record.tasks == {}


async def test_capacity_and_overlap_skip_with_the_rule_named(
        nursery: trio.Nursery, flows: Path, caplog: pytest.LogCaptureFixture):
    slow = {"flow": "slow.lua", "cron": "* * * * *", "grace_seconds": 60}
    h = Harness(nursery, MemoryStore(), {"slow": slow}, flows, max_runs=2)
    assert await h.tick(utc(2026, 1, 1, 12, 0, 10)) == [("12:00", "fired")]
    with caplog.at_level(logging.WARNING, logger="ironflow.schedules"):
        assert await h.tick(utc(2026, 1, 1, 12, 1, 10)) == [("12:01", "overlapped")]
    assert "rule: overlap" in caplog.text
    other = Harness(nursery, h.store, {"slow": slow}, flows, max_runs=1)
    other.runs.admit()  # the other server is full
    with caplog.at_level(logging.WARNING, logger="ironflow.schedules"):
        assert await other.tick(utc(2026, 1, 1, 12, 2, 10)) == [("12:02", "at_capacity")]
    assert "rule: capacity" in caplog.text
    for handle in list(h.runs.active.values()):
        handle.executor.cancel()
    await h.settle()


async def test_dst_days_on_the_scheduler(nursery: trio.Nursery, flows: Path):
    nightly = {"flow": "hello.lua", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
               "context": {"region": "de"}}
    h = Harness(nursery, MemoryStore(), {"nightly": nightly}, flows)
    # fall back: 02:30 happens twice (00:30 and 01:30 UTC); ticks cover both, it fires once
    assert await h.tick(utc(2026, 10, 25, 0, 20)) == []
    assert await h.tick(utc(2026, 10, 25, 0, 31)) == [("00:30", "fired")]
    await h.settle()
    assert await h.tick(utc(2026, 10, 25, 1, 31)) == []
    spring = {"flow": "hello.lua", "cron": "0 2 * * *", "timezone": "Europe/Berlin",
              "context": {"region": "de"}}
    s = Harness(nursery, MemoryStore(), {"spring": spring}, flows)
    # spring forward: 02:00 does not exist on 2026-03-29; it fires at 03:00 CEST = 01:00 UTC
    assert await s.tick(utc(2026, 3, 29, 0, 50)) == []
    assert await s.tick(utc(2026, 3, 29, 1, 0, 20)) == [("01:00", "fired")]
    await h.settle()
    await s.settle()


class DecisionRecorder:
    """A plugin observer: schedule decisions reach observers like any other event."""

    def __init__(self) -> None:
        self.decisions: list[tuple[str, str]] = []

    def on_event(self, event: Any) -> None:
        if event.type == "schedule_decided":
            self.decisions.append((event.detail[11:16], event.outcome))

    @hookimpl
    def ironflow_register_observers(self) -> list[Any]:
        return [self]


async def test_the_scheduler_loop_ticks_every_30_seconds_on_trio_s_clock(
        mock_clock: Any, nursery: trio.Nursery, flows: Path):
    """Virtual time moves only when the test moves it, and only once the tick
    before has done its work: a tick loads its flow in a worker thread, which an
    autojumping clock would race past."""
    recorder = DecisionRecorder()
    registry = build_registry({}, extra=[("recorder", recorder)])
    base = utc(2026, 1, 1, 12, 0, 30)
    runs = RunManager(MemoryStore(), MemoryEventStore(1000), registry=registry, env={},
                      max_runs=0, config_concurrency=None)
    runs.nursery = nursery
    scheduler = Scheduler(parse_schedules({"minutely": EVERY_MINUTE}, str(flows)), runs=runs,
                          registry=registry, env={},
                          clock=lambda: base + timedelta(seconds=trio.current_time()))

    async def all_runs_finished() -> bool:
        listed = (await runs.store.list_runs()).runs
        return all(run.status not in (RunStatus.PENDING, RunStatus.RUNNING) for run in listed)

    await nursery.start(scheduler.run)
    assert recorder.decisions == [("11:59", "fired"), ("12:00", "fired")]  # start-up tick
    for tick in range(1, 6):  # ticks at +30 s ... +150 s: 12:01:00 ... 12:03:00
        await settled(all_runs_finished)  # a run still going would make the next one overlap
        mock_clock.jump(30)

        async def ticked(tick: int = tick) -> bool:
            return len(recorder.decisions) >= 2 + (tick + 1) // 2

        await settled(ticked)
    assert recorder.decisions[2:] == [("12:01", "fired"), ("12:02", "fired"),
                                      ("12:03", "fired")]
    assert len((await runs.store.list_runs()).runs) == 5
