"""An in-process state store: child runs (ENG-163) and tests.

It keeps the same promises as the persistent stores — canonical run IDs,
conflicts, finished-once, ST-20 order and portable cursors — so code tested
against it behaves the same on disk. Records are copied in and out, so a
caller mutating what it passed or received never changes the stored run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import trio

from ironflow_core.errors import InvalidInputError, RunConflictError, RunNotFoundError
from ironflow_core.jsonutil import now_timestamp
from ironflow_core.model import RunPage, RunRecord, RunStatus, TaskRecord
from ironflow_core.runid import validate_run_id
from ironflow_core.stores.cursor import (
    build_page,
    check_limit,
    coerce_status,
    cursor_for_filter,
    is_timestamp,
)
from ironflow_core.stores.leases import (
    clock_micros,
    expiry_after,
    is_unfinished,
    lease_lost,
    lease_taken,
    stall_record,
    still_executing,
)


def clone_json(value: Any) -> Any:
    """A deep copy of a JSON value (much cheaper than ``copy.deepcopy``)."""
    if isinstance(value, dict):
        return {key: clone_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clone_json(item) for item in value]
    return value


def clone_task(task: TaskRecord) -> TaskRecord:
    copy = task.copy()
    copy.input = clone_json(task.input)
    copy.output = clone_json(task.output)
    return copy


def clone_record(record: RunRecord) -> RunRecord:
    return RunRecord(
        id=record.id,
        flow_name=record.flow_name,
        status=RunStatus(record.status),
        started=record.started,
        finished=record.finished,
        ctx=clone_json(dict(record.ctx)),
        tasks={name: clone_task(task) for name, task in record.tasks.items()},
    )


def check_new_record(record: RunRecord) -> None:
    """What every store checks before creating a run (ST-1, JSON-7)."""
    validate_run_id(record.id)
    for field in ("started", "finished"):
        value = getattr(record, field)
        if value is not None and not is_timestamp(value):
            raise InvalidInputError(f"Run '{record.id}' has an invalid {field} timestamp")


def apply_status(record: RunRecord, status: RunStatus, at: str | None) -> None:
    """ST-12/ENG-13: ``finished`` is set by the first terminal status and never moves."""
    status = RunStatus(status)
    record.status = status
    if status.terminal and record.finished is None:
        record.finished = at if at is not None else now_timestamp()


class MemoryStore:
    """A ``StateStore`` held in a dict; every operation is atomic under trio."""

    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._leases: dict[str, tuple[str, int]] = {}
        """Run ID -> (owner, expiry in wall-clock µs)."""

    def _get(self, run_id: str) -> RunRecord:
        validate_run_id(run_id)
        record = self._runs.get(run_id)
        if record is None:
            raise RunNotFoundError(run_id)
        return record

    async def create_run(self, record: RunRecord) -> None:
        await trio.lowlevel.checkpoint()
        check_new_record(record)
        if record.id in self._runs:
            raise RunConflictError(f"Run '{record.id}' already exists")
        self._runs[record.id] = clone_record(record)

    async def set_status(self, run_id: str, status: RunStatus, *, at: str | None = None) -> None:
        await trio.lowlevel.checkpoint()
        apply_status(self._get(run_id), status, at)

    async def upsert_tasks(self, run_id: str, tasks: Iterable[TaskRecord]) -> None:
        # the per-step hot path: honour cancellation without a scheduler round trip
        await trio.lowlevel.checkpoint_if_cancelled()
        record = self._get(run_id)
        for task in tasks:
            record.tasks[task.name] = clone_task(task)

    async def merge_context(self, run_id: str, ctx: Mapping[str, Any]) -> None:
        await trio.lowlevel.checkpoint()
        record = self._get(run_id)
        record.ctx.update(clone_json(dict(ctx)))

    async def get_run(self, run_id: str) -> RunRecord:
        await trio.lowlevel.checkpoint()
        return clone_record(self._get(run_id))

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 100, after: str | None = None
    ) -> RunPage:
        await trio.lowlevel.checkpoint()
        check_limit(limit)
        status = coerce_status(status)
        cursor = cursor_for_filter(after, status)
        summaries = (record.summary() for record in self._runs.values())
        return build_page(summaries, status=status, limit=limit, after=cursor)

    async def delete_run(self, run_id: str) -> None:
        await trio.lowlevel.checkpoint()
        record = self._get(run_id)
        lease = self._leases.get(run_id)
        if lease is not None and lease[1] > clock_micros() and not record.status.terminal:
            raise still_executing(run_id)
        del self._runs[run_id]
        self._leases.pop(run_id, None)

    # ------------------------------------------------------ leases (ST-50..52)
    async def acquire_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        await trio.lowlevel.checkpoint()
        self._get(run_id)
        now = clock_micros()
        lease = self._leases.get(run_id)
        if lease is not None and lease[0] != owner and lease[1] > now:
            raise lease_taken(run_id)
        self._leases[run_id] = (owner, expiry_after(ttl_s, now))

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        await trio.lowlevel.checkpoint()
        validate_run_id(run_id)
        now = clock_micros()
        lease = self._leases.get(run_id)
        if lease is None or lease[0] != owner or lease[1] <= now:
            raise lease_lost(run_id)
        self._leases[run_id] = (owner, expiry_after(ttl_s, now))

    async def release_lease(self, run_id: str, owner: str) -> None:
        await trio.lowlevel.checkpoint()
        validate_run_id(run_id)
        lease = self._leases.get(run_id)
        if lease is not None and lease[0] == owner:
            del self._leases[run_id]

    async def reconcile_expired(self, now_micros: int) -> list[str]:
        await trio.lowlevel.checkpoint()
        stalled: list[str] = []
        for run_id, (_, expires) in list(self._leases.items()):
            if expires > now_micros:
                continue
            del self._leases[run_id]
            record = self._runs.get(run_id)
            if record is not None and is_unfinished(record.status):
                raw = record.to_json()
                stall_record(raw, now_timestamp())
                self._runs[run_id] = RunRecord.from_json(raw)
                stalled.append(run_id)
        return stalled

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
