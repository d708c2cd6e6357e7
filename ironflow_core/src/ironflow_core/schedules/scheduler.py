"""Firing due schedule occurrences, once across every process that shares the store.

Each tick looks at the instants due since the previous tick (at start-up:
within the grace window) and, for each, derives the occurrence's run ID from
the schedule name and the instant. Creating that run record *is* the claim:
the store refuses a second record with the same ID, atomically, so of N
processes exactly one starts the run, and a process that crashed after its
claim leaves a record that stops everyone from firing the occurrence again.

Decisions, each reported to observers as a ``schedule_decided`` event:
``fired``; ``not_claimed`` (another process has it, debug log); ``late``
(missed by more than ``grace_seconds``), ``overlapped`` (this process still
runs an occurrence it started at an earlier tick) and ``at_capacity`` (the server is full or
draining) are skipped with a WARN naming the rule; ``failed`` (the flow does
not load) and ``claim_failed`` (the store could not be asked) are errors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import trio

from ironflow_core.engine.events import notify
from ironflow_core.errors import IronflowError, RunConflictError, RunNotFoundError, StoreError
from ironflow_core.model import ProcessEventType
from ironflow_core.schedules.config import Schedule
from ironflow_core.schedules.timing import instants_between, occurrence_run_id, utc_text

log = logging.getLogger("ironflow.schedules")

TICK_SECONDS = 30.0
"""How often due occurrences are evaluated (grace_seconds is at least 60)."""
MAX_DUE_PER_TICK = 64
"""Occurrences of one schedule considered per tick; older ones are skipped as late."""


def wall_clock() -> datetime:
    """The current UTC time (tests substitute their own clock)."""
    return datetime.now(UTC)


@attrs.frozen
class Decision:
    """What the scheduler decided for one due occurrence, and the run ID it used."""
    schedule: str
    instant: datetime
    run_id: str
    outcome: str


class Scheduler:
    """Evaluates schedules against a ``RunManager``; ``clock`` returns aware UTC datetimes."""

    def __init__(self, schedules: Iterable[Schedule], *, runs: Any, registry: Any,
                 env: Mapping[str, str], clock: Callable[[], datetime] = wall_clock) -> None:
        self.schedules = tuple(schedules)
        self.runs = runs
        self.registry = registry
        self.env = env
        self.clock = clock
        self._evaluated_until: dict[str, datetime] = {}
        self._previous: dict[str, Any] = {}
        """The last run handle this process started per schedule (overlap rule)."""

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """A tick at start-up, ``task_status.started()``, then a tick every ``TICK_SECONDS``.

        The start-up tick claims (and starts) what is due before the server
        announces itself, the way reconciliation runs before serving.
        """
        if self.schedules:
            log.info("evaluating %d schedule(s) every %gs", len(self.schedules), TICK_SECONDS)
            await self.tick(self.clock())
        task_status.started()
        while self.schedules:
            await trio.sleep(TICK_SECONDS)
            await self.tick(self.clock())

    async def tick(self, now: datetime) -> list[Decision]:
        """Decide every occurrence due in ``(previous tick, now]``, oldest first."""
        decisions: list[Decision] = []
        for schedule in self.schedules:
            decisions.extend(await self._evaluate(schedule, now))
        return decisions

    async def _evaluate(self, schedule: Schedule, now: datetime) -> list[Decision]:
        grace = timedelta(seconds=schedule.grace_seconds)
        after = self._evaluated_until.get(schedule.name, now - grace)
        if now <= after:
            return []
        self._evaluated_until[schedule.name] = now
        instants, dropped = instants_between(schedule.cron, schedule.zone, after, now,
                                             limit=MAX_DUE_PER_TICK)
        if dropped:
            log.warning("schedule '%s': skipped %d older due occurrence(s) beyond the %d "
                        "considered per tick (rule: grace)", schedule.name, dropped,
                        MAX_DUE_PER_TICK)
            for _ in range(dropped):
                notify(self.registry.observers, ProcessEventType.SCHEDULE_DECIDED, "late",
                       schedule=schedule.name)
        # overlap: a run this process started at an earlier tick is still going. The
        # occurrences of one tick (a catch-up after downtime) all fire.
        previous = self._previous.get(schedule.name)
        busy = previous if previous is not None and not previous.done.is_set() else None
        decisions = []
        for instant in instants:
            outcome = await self._decide(schedule, instant, now, grace, busy)
            run_id = occurrence_run_id(schedule.name, instant)
            notify(self.registry.observers, ProcessEventType.SCHEDULE_DECIDED, outcome,
                   schedule=schedule.name, run_id=run_id, detail=utc_text(instant))
            decisions.append(Decision(schedule.name, instant, run_id, outcome))
        return decisions

    async def _decide(self, schedule: Schedule, instant: datetime, now: datetime,
                      grace: timedelta, busy: Any) -> str:
        name, at = schedule.name, utc_text(instant)
        if now - instant > grace:
            log.warning("schedule '%s': skipped the occurrence of %s, %ds late (rule: grace, "
                        "grace_seconds=%d)", name, at, int((now - instant).total_seconds()),
                        schedule.grace_seconds)
            return "late"
        if busy is not None:
            log.warning("schedule '%s': skipped the occurrence of %s: the previous run %s is "
                        "still running (rule: overlap)", name, at, busy.run_id)
            return "overlapped"
        run_id = occurrence_run_id(name, instant)
        store = self.runs.store
        try:
            await store.get_run(run_id)
            log.debug("schedule '%s': occurrence %s already claimed as run %s", name, at, run_id)
            return "not_claimed"
        except RunNotFoundError:
            pass
        except StoreError as exc:
            log.error("schedule '%s': could not check the occurrence of %s: %s", name, at, exc)
            return "claim_failed"
        return await self._start(schedule, instant, run_id)

    async def _start(self, schedule: Schedule, instant: datetime, run_id: str) -> str:
        from ironflow_core.api.errors import ApiError
        from ironflow_core.loading import load_flow

        name, at = schedule.name, utc_text(instant)
        try:
            admission = self.runs.admit()
        except ApiError as exc:
            log.warning("schedule '%s': skipped the occurrence of %s: %s (rule: capacity)",
                        name, at, exc)
            return "at_capacity"
        try:
            flow = await trio.to_thread.run_sync(
                lambda: load_flow(schedule.path, registry=self.registry, env=self.env))
            context: dict[str, Any] = {
                **schedule.context,
                "_schedule": name,
                "_scheduled_at": at,
                "_flow_dir": os.path.dirname(schedule.path),
            }
            handle = self.runs.launch(flow, context, admission, run_id=run_id)
        except ApiError as exc:
            admission.release()
            log.warning("schedule '%s': skipped the occurrence of %s: %s (rule: capacity)",
                        name, at, exc)
            return "at_capacity"
        except (IronflowError, OSError) as exc:
            admission.release()
            log.error("schedule '%s': the occurrence of %s did not start: %s", name, at, exc)
            return "failed"
        await handle.created.wait()
        # Creating the record was the claim; its error is recorded before ``created`` wakes us.
        if isinstance(handle.error, RunConflictError):
            self.runs.events.delete_run(run_id)
            log.debug("schedule '%s': occurrence %s claimed by another process", name, at)
            return "not_claimed"
        if handle.error is not None:
            log.error("schedule '%s': could not claim the occurrence of %s: %s", name, at,
                      handle.error)
            return "claim_failed"
        self._previous[name] = handle
        log.info("schedule '%s': started run %s for %s", name, run_id, at)
        return "fired"

