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
from ironflow_core.jsonutil import check_value, loads_strict, now_timestamp
from ironflow_core.model import (
    FlowSourceRecord,
    LeaseInfo,
    RunOrigin,
    RunPage,
    RunRecord,
    RunStatus,
    TaskRecord,
)
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
    fenced,
    is_unfinished,
    lease_lost,
    lease_taken,
    owner_may_write,
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
    """A task record of its own: the record is copied, its JSON values only when mutable.

    Strings, numbers and ``None`` (the input and output of most updates: a
    step recorded ``running`` has neither) are immutable and shared as they
    are; a dict or list is copied, since the caller may change it later.
    """
    copy = task.copy()
    if isinstance(task.input, (dict, list)):
        copy.input = clone_json(task.input)
    if isinstance(task.output, (dict, list)):
        copy.output = clone_json(task.output)
    return copy


def clone_record(record: RunRecord) -> RunRecord:
    """A run record of its own, for storing or handing out (see ``clone_task``)."""
    return RunRecord(
        id=record.id,
        flow_name=record.flow_name,
        status=RunStatus(record.status),
        started=record.started,
        finished=record.finished,
        ctx=clone_json(dict(record.ctx)),
        tasks={name: clone_task(task) for name, task in record.tasks.items()},
    )


def check_context(ctx: Mapping[str, Any], run_id: str) -> None:
    """A context every store can keep and read back: finite numbers, bounded nesting."""
    try:
        check_value(dict(ctx))
    except ValueError as exc:
        raise InvalidInputError(f"Context of run '{run_id}' is not JSON: {exc}") from None


def check_new_record(record: RunRecord) -> None:
    """What every store checks before creating a run (ST-1, JSON-7)."""
    validate_run_id(record.id)
    check_context(record.ctx, record.id)
    for field in ("started", "finished"):
        value = getattr(record, field)
        if value is not None and not is_timestamp(value):
            raise InvalidInputError(f"Run '{record.id}' has an invalid {field} timestamp")


def check_origin(origin: RunOrigin, run_id: str) -> str:
    """A run origin as canonical JSON text, or ``InvalidInputError``."""
    from ironflow_core.stores.json_codec import compact_json

    return compact_json(origin.to_json(), f"Origin of run '{run_id}'", InvalidInputError)


def checked_status_change(status: RunStatus | str, at: str | None) -> tuple[RunStatus, str]:
    """A ``set_status`` call's status and finish time, checked: what a store writes.

    The finish time is ``at`` or now; it is only stored by the first terminal
    status (ST-12). Bad input is ``InvalidInputError`` before anything changes.
    """
    try:
        checked = RunStatus(status)
    except ValueError:
        raise InvalidInputError(f"Invalid run status '{status}'") from None
    if at is not None and not is_timestamp(at):
        raise InvalidInputError(f"Invalid finished timestamp '{at}'")
    return checked, at if at is not None else now_timestamp()


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
        self._flows: dict[str, FlowSourceRecord] = {}
        self._origins: dict[str, str] = {}

    def _get(self, run_id: str, owner: str | None = None) -> RunRecord:
        record = self._runs.get(run_id) if isinstance(run_id, str) else None
        if record is None:
            validate_run_id(run_id)  # a stored run's ID was checked when it was created
            raise RunNotFoundError(run_id)
        if owner is not None:
            lease = self._leases.get(run_id)
            if not owner_may_write(lease[0] if lease else None, owner):
                raise fenced(run_id)
        return record

    async def create_run(self, record: RunRecord) -> None:
        """Store a copy of a new run; ``RunConflictError`` if its ID exists."""
        await trio.lowlevel.checkpoint()
        check_new_record(record)
        if record.id in self._runs:
            raise RunConflictError(f"Run '{record.id}' already exists")
        self._runs[record.id] = clone_record(record)

    async def set_status(
        self, run_id: str, status: RunStatus, *, at: str | None = None, owner: str | None = None
    ) -> None:
        """Set the status; the first terminal one also sets ``finished`` (ST-12)."""
        await trio.lowlevel.checkpoint()
        apply_status(self._get(run_id, owner), status, at)

    async def reopen_run(self, run_id: str, *, owner: str | None = None) -> None:
        """Resume in place: back to ``running``, ``finished`` cleared."""
        await trio.lowlevel.checkpoint()
        record = self._get(run_id, owner)
        record.status = RunStatus.RUNNING
        record.finished = None

    async def upsert_tasks(
        self, run_id: str, tasks: Iterable[TaskRecord], *, owner: str | None = None
    ) -> None:
        # the per-step hot path: honour cancellation without a scheduler round trip
        """Replace tasks by name with copies; no scheduler round trip (the per-step path)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        record = self._get(run_id, owner)
        for task in tasks:
            record.tasks[task.name] = clone_task(task)

    async def merge_context(
        self, run_id: str, ctx: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        """Add or overwrite context keys with copies of checked JSON values."""
        await trio.lowlevel.checkpoint()
        record = self._get(run_id, owner)
        update = dict(ctx)
        check_context(update, run_id)
        record.ctx.update(clone_json(update))

    async def save_flow(self, flow: FlowSourceRecord) -> str:
        """Keep a flow source under its digest, once."""
        await trio.lowlevel.checkpoint()
        digest = flow.digest
        self._flows.setdefault(digest, flow)
        return digest

    async def load_flow(self, digest: str) -> FlowSourceRecord | None:
        """The flow source with this digest, or ``None``."""
        await trio.lowlevel.checkpoint()
        return self._flows.get(digest)

    async def set_origin(self, run_id: str, origin: RunOrigin, *, owner: str | None = None) -> None:
        """Keep the run's origin as canonical JSON text (as the disk stores do)."""
        await trio.lowlevel.checkpoint()
        self._get(run_id, owner)
        self._origins[run_id] = check_origin(origin, run_id)

    async def get_origin(self, run_id: str) -> RunOrigin | None:
        """The run's origin, or ``None`` when none was recorded."""
        await trio.lowlevel.checkpoint()
        self._get(run_id)
        text = self._origins.get(run_id)
        return None if text is None else RunOrigin.from_json(loads_strict(text, max_depth=None))

    async def get_run(self, run_id: str) -> RunRecord:
        """A copy of the run, so the caller may change it freely."""
        await trio.lowlevel.checkpoint()
        return clone_record(self._get(run_id))

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 100, after: str | None = None
    ) -> RunPage:
        """A page of run summaries in ST-20 order after the cursor."""
        await trio.lowlevel.checkpoint()
        check_limit(limit)
        status = coerce_status(status)
        cursor = cursor_for_filter(after, status)
        summaries = (record.summary() for record in self._runs.values())
        return build_page(summaries, status=status, limit=limit, after=cursor)

    async def delete_run(self, run_id: str) -> None:
        """Forget a run; refused while a live lease says it still executes."""
        await trio.lowlevel.checkpoint()
        record = self._get(run_id)
        lease = self._leases.get(run_id)
        if lease is not None and lease[1] > clock_micros() and not record.status.terminal:
            raise still_executing(run_id)
        del self._runs[run_id]
        self._leases.pop(run_id, None)
        self._origins.pop(run_id, None)

    # ------------------------------------------------------ leases (ST-50..52)
    async def acquire_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Take the run's lease for ``owner``, unless another owner's is still live."""
        await trio.lowlevel.checkpoint()
        self._get(run_id)
        now = clock_micros()
        lease = self._leases.get(run_id)
        if lease is not None and lease[0] != owner and lease[1] > now:
            raise lease_taken(run_id)
        self._leases[run_id] = (owner, expiry_after(ttl_s, now))

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Extend ``owner``'s live lease; ``LeaseLostError`` when it is gone."""
        await trio.lowlevel.checkpoint()
        validate_run_id(run_id)
        now = clock_micros()
        lease = self._leases.get(run_id)
        if lease is None or lease[0] != owner or lease[1] <= now:
            raise lease_lost(run_id)
        self._leases[run_id] = (owner, expiry_after(ttl_s, now))

    async def release_lease(self, run_id: str, owner: str) -> None:
        """Drop ``owner``'s lease, if it still holds it."""
        await trio.lowlevel.checkpoint()
        validate_run_id(run_id)
        lease = self._leases.get(run_id)
        if lease is not None and lease[0] == owner:
            del self._leases[run_id]

    async def get_lease(self, run_id: str) -> LeaseInfo | None:
        """The run's lease as held now, or ``None``."""
        await trio.lowlevel.checkpoint()
        validate_run_id(run_id)
        lease = self._leases.get(run_id)
        return None if lease is None else LeaseInfo(owner=lease[0], expires_micros=lease[1])

    async def reconcile_expired(self, now_micros: int) -> list[str]:
        """Stall the unfinished runs whose lease expired (ST-52); their IDs."""
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
        """Nothing to release; a checkpoint like every store call."""
        await trio.lowlevel.checkpoint()
