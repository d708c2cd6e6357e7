"""``JsonStore``: the store's operations, per-run locking and the in-memory record of runs it writes.

Mutations of one run are serialised by a per-run ``trio.Lock`` (ST-13) and a
deleted run is never written again. The per-step calls, ``upsert_tasks`` and
``merge_context``, append to the run's journal without taking the lock when
this process already holds the run and nobody else is mutating it; folding
the journal into the primary runs in the background (see ``journal``), so an
append never waits for it. Reads take no lock. Slow work (status changes,
reading, listing, leases) runs in worker threads.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
import trio

from ironflow_core.errors import (
    InvalidInputError,
    RunConflictError,
    RunNotFoundError,
    StoreCorruptionError,
)
from ironflow_core.jsonutil import now_timestamp
from ironflow_core.model import (
    FlowSourceRecord,
    LeaseInfo,
    RunOrigin,
    RunPage,
    RunRecord,
    RunStatus,
    TaskRecord,
    task_json_fits,
)
from ironflow_core.runid import validate_run_id
from ironflow_core.stores import json_codec as codec
from ironflow_core.stores.cursor import check_limit, coerce_status, cursor_for_filter
from ironflow_core.stores.json_store import journal
from ironflow_core.stores.json_store.files import (
    FLOW_DIR,
    ORIGIN_DIR,
    JsonStoreStats,
    StoreFiles,
    flow_name,
    lease_name,
    log,
    origin_name,
    primary_name,
    sidecar_name,
    unavailable,
)
from ironflow_core.stores.json_store.journal import RunHandle
from ironflow_core.stores.json_store.lease_files import LeaseFiles
from ironflow_core.stores.json_store.listing import list_runs
from ironflow_core.stores.leases import (
    clock_micros,
    is_unfinished,
    stall_record,
    still_executing,
)
from ironflow_core.stores.memory import (
    check_context,
    check_new_record,
    check_origin,
    checked_status_change,
)

DEFAULT_JOURNAL_MIN_BYTES = 256 * 1024
"""A journal smaller than this is never folded early (only on a status change)."""


class JsonStore:
    """``StateStore`` over a directory of upstream-compatible JSON files.

    Opening does no I/O; the directory is created (mode 0700) by the first
    write. ``journal_min_bytes`` tunes when a growing journal is folded
    early (tests lower it to exercise folding).
    """

    def __init__(
        self, root: str | os.PathLike[str], *, journal_min_bytes: int = DEFAULT_JOURNAL_MIN_BYTES
    ) -> None:
        self.root = os.fspath(root)
        self.journal_min_bytes = journal_min_bytes
        self.stats = JsonStoreStats()
        self.files = StoreFiles(self.root, self.stats)
        self.leases = LeaseFiles(self.files)
        self._handles: dict[str, RunHandle] = {}
        self.skipped: list[str] = []
        """What the last listing skipped, one line per entry (also logged as warnings)."""

    # ------------------------------------------------------------ runs
    async def create_run(self, record: RunRecord) -> None:
        """Store a new run; an existing one with its ID is a conflict (ST-32)."""
        check_new_record(record)
        # A private deep copy: the caller may go on mutating what it passed.
        raw = _private_copy(codec.compact_json_bytes(record.to_json(), f"Run '{record.id}'",
                                                     InvalidInputError))
        for name, task in raw["tasks"].items():
            _check_task(task, name)
        async with self._locked(record.id, load=False) as handle:
            if handle.loaded:  # this process is writing that run right now
                raise RunConflictError(f"Run '{record.id}' already exists")
            await self._in_thread(handle, self._create_sync, handle, raw)
            if RunStatus(record.status).terminal:
                self._evict(handle)

    async def set_status(
        self, run_id: str, status: RunStatus, *, at: str | None = None, owner: str | None = None
    ) -> None:
        """Change the run's status; the record is rewritten and synced before this returns."""
        validate_run_id(run_id)
        status, finished = checked_status_change(status, at)

        async with self._locked(run_id) as handle:
            self.leases.fence(run_id, owner)
            await journal.settle_fold(handle)
            raw = handle.raw
            raw["status"] = str(status)
            if status.terminal and raw.get("finished") is None:
                raw["finished"] = finished
            await self._in_thread(handle, self._compact_sync, handle)
            if status.terminal:
                self._evict(handle)

    async def reopen_run(self, run_id: str, *, owner: str | None = None) -> None:
        """Make a finished run running again (resume in place)."""
        validate_run_id(run_id)
        async with self._locked(run_id) as handle:
            self.leases.fence(run_id, owner)
            await journal.settle_fold(handle)
            handle.raw["status"] = str(RunStatus.RUNNING)
            handle.raw["finished"] = None
            await self._in_thread(handle, self._compact_sync, handle)

    async def upsert_tasks(
        self, run_id: str, tasks: Iterable[TaskRecord], *, owner: str | None = None
    ) -> None:
        """Write a batch of task records as one journal line: one encode pass, one ``write``.

        The hot path of every step, and the fast path for many tasks at once.
        When this process already holds the run and nobody else is mutating it,
        the append happens without yielding to the scheduler (a deliberate
        exception to trio's "every async call is a checkpoint" convention: it
        is one ``write`` system call, and the per-step cost matters).
        """
        handle = self._handles.get(run_id)
        if handle is None:
            validate_run_id(run_id)  # a known handle's ID was checked when it was made
        body, payload = _encode_tasks(tasks)
        if handle is not None and handle.loaded and not handle.lock.locked():
            self.leases.fence(run_id, owner)
            if payload:
                self._apply_tasks(handle, payload, body)
            return
        async with self._locked(run_id) as handle:
            self.leases.fence(run_id, owner)
            if payload:
                self._apply_tasks(handle, payload, body)

    async def merge_context(
        self, run_id: str, ctx: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        """Merge top-level context keys, as one journal line."""
        validate_run_id(run_id)
        check_context(ctx, run_id)
        body = codec.compact_json_bytes(dict(ctx), "Context", InvalidInputError)
        update = _private_copy(body)
        async with self._locked(run_id) as handle:
            self.leases.fence(run_id, owner)
            if not update:
                return
            raw = handle.raw
            journal.append(self.files, handle, codec.journal_ctx_line, len(raw["tasks"]), body)
            raw["ctx"].update(update)
            handle.pretty.ctx = None
            if handle.fold is not None:
                handle.fold.ctx_changed = True
            self._maybe_fold(handle)

    async def get_run(self, run_id: str) -> RunRecord:
        """The run as stored: primary plus journal."""
        validate_run_id(run_id)
        decoded, _, _ = await trio.to_thread.run_sync(journal.read_run, self.files, run_id)
        return RunRecord.from_json(decoded.raw)

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 100, after: str | None = None
    ) -> RunPage:
        """A page of run summaries, newest first (ST-31)."""
        check_limit(limit)
        status = coerce_status(status)
        cursor = cursor_for_filter(after, status)
        page, self.skipped = await trio.to_thread.run_sync(
            list_runs, self.files, status, limit, cursor
        )
        return page

    async def delete_run(self, run_id: str) -> None:
        """Remove every file of a run, unless it is still executing (ST-35)."""
        validate_run_id(run_id)
        async with self._locked(run_id, load=False) as handle:
            await journal.settle_fold(handle)
            await self._in_thread(handle, self._delete_sync, handle)
            self._evict(handle)

    # ------------------------------------------- what a run started from
    async def save_flow(self, flow: FlowSourceRecord) -> str:
        """Store a flow source once per distinct content; returns its digest."""
        digest = flow.digest
        data = codec.compact_json(flow.to_json(), "Flow source", InvalidInputError).encode()
        await trio.to_thread.run_sync(self._save_flow_sync, digest, data)
        return digest

    async def load_flow(self, digest: str) -> FlowSourceRecord | None:
        """A stored flow source by digest, None when unknown."""
        if not _is_digest(digest):
            raise InvalidInputError(f"Invalid flow digest '{digest}'")
        data = await trio.to_thread.run_sync(self.files.read_if_root, flow_name(digest))
        if data is None:
            return None
        try:
            flow = FlowSourceRecord.from_json(codec.parse_json(data))
        except (AttributeError, UnicodeDecodeError, ValueError) as exc:
            raise codec.corruption(f"Invalid stored flow '{flow_name(digest)}'", str(exc)) from None
        if flow.digest != digest:
            raise codec.corruption(f"Invalid stored flow '{flow_name(digest)}'",
                                   "its content does not match its digest")
        return flow

    async def set_origin(self, run_id: str, origin: RunOrigin, *, owner: str | None = None) -> None:
        """Store what a resume of the run needs (flow digest, initial context, ...)."""
        validate_run_id(run_id)
        data = check_origin(origin, run_id).encode()
        async with self._locked(run_id, load=False):
            await trio.to_thread.run_sync(self._set_origin_sync, run_id, data, owner)

    async def get_origin(self, run_id: str) -> RunOrigin | None:
        """The run's origin, None for a run stored without one."""
        validate_run_id(run_id)
        data = await trio.to_thread.run_sync(self.files.read_if_root, origin_name(run_id))
        if data is None:
            if not await trio.to_thread.run_sync(self.files.run_exists, run_id):
                raise RunNotFoundError(run_id)
            return None
        try:
            return RunOrigin.from_json(codec.parse_json(data))
        except (AttributeError, UnicodeDecodeError, ValueError) as exc:
            raise codec.corruption(f"Invalid run origin '{origin_name(run_id)}'", str(exc)) from None

    def _save_flow_sync(self, digest: str, data: bytes) -> None:
        self.files.ensure_subdir(FLOW_DIR)
        name = flow_name(digest)
        if self.files.entry_exists(name):
            return  # content-addressed: the same digest is the same flow
        self.files.publish_replace(name, data, primary=False)
        self.files.fsync_dir(self.files.path(FLOW_DIR))

    def _set_origin_sync(self, run_id: str, data: bytes, owner: str | None) -> None:
        if not self.files.run_exists(run_id):
            raise RunNotFoundError(run_id)
        self.leases.fence(run_id, owner)
        self.files.ensure_subdir(ORIGIN_DIR)
        self.files.publish_replace(origin_name(run_id), data, primary=False)
        self.files.fsync_dir(self.files.path(ORIGIN_DIR))

    # ------------------------------------------------------ leases (ST-50..52)
    # Lease calls hold the run's lock, so in this process they are serialised
    # with deletion and reconciliation of the same run.
    async def acquire_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Take the run's owner lease for ``ttl_s`` seconds, unless another owner holds it."""
        validate_run_id(run_id)
        async with self._locked(run_id, load=False):
            await trio.to_thread.run_sync(self._acquire_sync, run_id, owner, ttl_s)

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Extend a lease this owner still holds."""
        validate_run_id(run_id)
        async with self._locked(run_id, load=False):
            await trio.to_thread.run_sync(self.leases.renew, run_id, owner, ttl_s)

    async def release_lease(self, run_id: str, owner: str) -> None:
        """Give the lease up, if this owner still holds it."""
        validate_run_id(run_id)
        async with self._locked(run_id, load=False):
            await trio.to_thread.run_sync(self.leases.release, run_id, owner)

    async def get_lease(self, run_id: str) -> LeaseInfo | None:
        """Who holds the run's lease and until when, None when nobody does."""
        validate_run_id(run_id)
        lease = await trio.to_thread.run_sync(self.leases.read, run_id)
        return None if lease is None else LeaseInfo(lease.owner, lease.expires_micros)

    async def reconcile_expired(self, now_micros: int) -> list[str]:
        """Mark runs whose lease expired as stalled (ST-52); returns their IDs."""
        expired = await trio.to_thread.run_sync(self.leases.expired, now_micros)
        stalled = []
        for run_id in expired:
            try:
                if await self._reconcile(run_id, now_micros):
                    stalled.append(run_id)
            except (StoreCorruptionError, RunNotFoundError) as exc:
                log.warning("could not reconcile run %s: %s", run_id, exc)  # the others go on
        return stalled

    async def _reconcile(self, run_id: str, now_micros: int) -> bool:
        async with self._locked(run_id, load=False) as handle:
            executing_here = handle.loaded
            await journal.settle_fold(handle)
            if await self._in_thread(handle, self._reconcile_sync, handle, now_micros):
                self._evict(handle)  # terminal now, as after set_status
                return True
            if not executing_here:
                self._evict(handle)  # loaded only to look: keep no cache of it
            return False

    async def aclose(self) -> None:
        """Wait for folds in flight, then close every journal descriptor."""
        for handle in list(self._handles.values()):
            await journal.settle_fold(handle)
            journal.close_segment(handle)
        self._handles.clear()
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------- per-run locking
    @asynccontextmanager
    async def _locked(self, run_id: str, *, load: bool = True) -> AsyncIterator[RunHandle]:
        """Hold the run's lock; with ``load``, know its revision (RunNotFoundError if absent)."""
        while True:
            handle = self._handles.get(run_id)
            if handle is None:
                handle = self._handles[run_id] = RunHandle(run_id)
            async with handle.lock:
                if handle.gone:
                    continue
                try:
                    if load and not handle.loaded:
                        await journal.settle_fold(handle)
                        await self._in_thread(handle, self._load_sync, handle)
                    yield handle
                finally:
                    if not handle.loaded:
                        self._evict(handle)
                return

    async def _in_thread(self, handle: RunHandle, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work; on failure forget the cached state so it is re-read."""
        try:
            return await trio.to_thread.run_sync(fn, *args)
        except BaseException:
            handle.forget()
            raise

    def _evict(self, handle: RunHandle) -> None:
        handle.gone = True
        handle.forget()
        handle.raw = {}
        handle.pretty = codec.PrettyCache()
        if self._handles.get(handle.run_id) is handle:
            del self._handles[handle.run_id]

    # ------------------------------------------------------------- journal
    def _apply_tasks(self, handle: RunHandle, payload: list[dict[str, Any]], body: bytes) -> None:
        tasks = handle.raw["tasks"]
        count = len(tasks) + len({t["name"] for t in payload if t["name"] not in tasks})
        journal.append(self.files, handle, codec.journal_tasks_line, count, body)
        forget = handle.pretty.forget_task
        fold = handle.fold
        for task in payload:
            name = task["name"]
            tasks[name] = task
            forget(name)
            if fold is not None:
                fold.changed.add(name)
        self._maybe_fold(handle)

    def _maybe_fold(self, handle: RunHandle) -> None:
        if journal.fold_due(handle, self.journal_min_bytes):
            journal.start_fold(self.files, handle)

    # ------------------------------------------------- worker-thread bodies
    def _load_sync(self, handle: RunHandle) -> None:
        decoded, size, journal_size = journal.read_run(self.files, handle.run_id)
        handle.raw = decoded.raw
        handle.pretty = codec.PrettyCache()
        handle.epoch += 1
        if decoded.revision is None or journal_size:
            # Legacy record, or a journal left by another process: fold it in
            # now so this process starts appending to a clean journal.
            journal.rewrite(self.files, handle)
        else:
            handle.revision = decoded.revision
            handle.primary_size = size
            handle.segment = 0
            handle.journal_size = 0
        handle.fold_at = 0
        handle.loaded = True

    def _compact_sync(self, handle: RunHandle) -> None:
        journal.rewrite(self.files, handle)
        self.stats.compactions += 1

    def _create_sync(self, handle: RunHandle, raw: dict[str, Any]) -> None:
        run_id = handle.run_id
        pretty = codec.PrettyCache()
        encoded = codec.encode_primary(raw, pretty)
        self.files.publish_new(primary_name(run_id), encoded.data, run_id)
        handle.raw = raw
        handle.pretty = pretty
        handle.revision = encoded.revision
        handle.primary_size = len(encoded.data)
        handle.epoch += 1
        handle.fold_at = 0
        handle.loaded = True
        handle.gone = False
        journal.drop_segments(self.files, handle)  # a leftover of an earlier run with this ID
        self.files.write_sidecar(run_id, encoded.sidecar)
        self.files.drop_catalog()

    def _delete_sync(self, handle: RunHandle) -> None:
        run_id = handle.run_id
        name = primary_name(run_id)
        if not self.files.run_exists(run_id):
            raise RunNotFoundError(run_id)
        self._check_lease(run_id)
        self.files.unlink_quiet(sidecar_name(run_id))
        try:
            os.unlink(self.files.path(name))
        except FileNotFoundError:
            raise RunNotFoundError(run_id) from None
        except OSError as exc:
            raise unavailable(f"Failed to delete JSON store entry '{name}'", exc) from None
        journal.drop_segments(self.files, handle)
        self.leases.forget(run_id)
        self.files.unlink_quiet(lease_name(run_id))
        self.files.unlink_quiet(origin_name(run_id))
        self.files.fsync_dir()
        self.files.drop_catalog()

    def _check_lease(self, run_id: str) -> None:
        """ST-35: a non-terminal run whose owner lease is live cannot be deleted."""
        lease = self.leases.read(run_id)
        if lease is None or lease.expires_micros <= clock_micros():
            return
        decoded, _, _ = journal.read_run(self.files, run_id)
        if not RunStatus(decoded.raw["status"]).terminal:
            raise still_executing(run_id)

    def _acquire_sync(self, run_id: str, owner: str, ttl_s: float) -> None:
        if not self.files.run_exists(run_id):
            raise RunNotFoundError(run_id)
        self.leases.acquire(run_id, owner, ttl_s)

    def _reconcile_sync(self, handle: RunHandle, now_micros: int) -> bool:
        """ST-52 for one run, under its lock; True when it was stalled."""
        run_id = handle.run_id
        lease = self.leases.read(run_id)
        if lease is None or lease.expires_micros > now_micros:
            return False  # renewed or released meanwhile
        stalled = False
        if self.files.run_exists(run_id):
            if not handle.loaded:
                self._load_sync(handle)
            if is_unfinished(handle.raw["status"]):
                stall_record(handle.raw, now_timestamp())
                handle.pretty = codec.PrettyCache()
                self._compact_sync(handle)
                stalled = True
        self.leases.remove(run_id, lease)
        return stalled


def _encode_tasks(tasks: Iterable[TaskRecord]) -> tuple[bytes, list[dict[str, Any]]]:
    """A batch's journal body and a private, checked copy of its records (one encode pass)."""
    body = codec.compact_json_bytes([task.to_json() for task in tasks], "Task record",
                                    InvalidInputError)
    payload = _private_copy(body)
    for task in payload:
        if not task_json_fits(task):  # the per-step check; the converter says why
            _check_task(task, task.get("name"))
    return body, payload


def _check_task(task: dict[str, Any], name: object) -> None:
    try:
        codec.check_task(task, f"task '{name}'")
    except ValueError as exc:
        raise InvalidInputError(f"Invalid task record: {exc}") from None


def _private_copy(text: bytes) -> Any:
    """Parse JSON this module just serialised, so the caller's objects are never shared.

    ``orjson`` parses it several times faster; what it refuses (integers
    beyond 64 bits, lone surrogates) the standard library parses.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _raw_decode(text.decode())[0]


_raw_decode = json.JSONDecoder().raw_decode


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
