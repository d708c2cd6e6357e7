"""The default state store: one JSON file per run, in upstream's layout (ST-30..35).

Files in the store directory, per run:

* ``<id>.json`` — the authoritative record (see ``json_codec``), replaced
  atomically: temporary file in the same directory, fsync, hard link for a
  new run (so a duplicate is a conflict) or rename over the old one, fsync of
  the directory.
* ``<id>.summary.json`` — a summary cache for listing; rebuilt from the
  primary whenever it is missing or stale.
* ``.ironflow-run-leases-v1/<id>.lease`` — the owner lease of a run being
  executed (ST-51): compact ``{"run_id", "owner", "expires_micros"}``,
  replaced atomically like the primary, removed on release, reconciliation
  and deletion.
* ``.ironflow-flows-v1/<sha256>.json`` — a flow source a run ran, stored once
  per distinct source (``FlowSourceRecord``), so a run can be resumed without
  its file.
* ``.ironflow-run-origins-v1/<id>.json`` — the run's ``RunOrigin`` (flow
  digest, initial context, sub-flows, recoveries): what a resume needs,
  kept beside the record so the record stays upstream's.
* ``.<id>.journal`` — Python-private, append-only. Rewriting the whole record
  for every task update would make a run quadratic in its length, so task
  upserts and context merges are appended here as one compact line each (one
  ``write`` on an ``O_APPEND`` descriptor kept open per run, no fsync). The
  journal is folded into the primary ("compaction") on every status change and
  whenever it grows larger than the primary, so the bytes written stay linear
  in the work and a finished run has no journal at all. Each line names the
  primary revision it extends; lines of an older revision are ignored, so a
  journal never makes a run look older than its primary.

Mutations of one run are serialised by a per-run ``trio.Lock`` (ST-13) and a
deleted run is never written again. A write carrying an owner token is fenced:
it is refused unless the lease file still names that owner. The check costs
one ``stat`` per write; the lease is re-read only when its file changed.

Listing skips, with a warning naming the path, entries that are not runs (a
stray ``not-a-uuid.json``, a directory ``x.json``) and run files that cannot
be read (empty, ``[]``): one bad file never hides the other runs. Reads take no lock: they read the journal
before the primary, so a concurrent compaction can only make them newer.
Slow work (compaction, reading, listing) runs in worker threads; the per-step
append stays on the trio thread because it is one small system call.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from ironflow_core.errors import (
    InvalidInputError,
    RunConflictError,
    RunNotFoundError,
    StoreCorruptionError,
    StoreError,
    StoreUnavailableError,
)
from ironflow_core.jsonutil import now_timestamp
from ironflow_core.model import (
    FlowSourceRecord,
    LeaseInfo,
    RunOrigin,
    RunPage,
    RunRecord,
    RunStatus,
    RunSummary,
    TaskRecord,
)
from ironflow_core.runid import run_id_problem, validate_run_id
from ironflow_core.stores import json_codec as codec
from ironflow_core.stores.cursor import (
    Cursor,
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
from ironflow_core.stores.memory import check_context, check_new_record, check_origin

log = logging.getLogger(__name__)

DEFAULT_JOURNAL_MIN_BYTES = 256 * 1024
"""A journal smaller than this is never compacted early (only on a status change)."""
JOURNAL_TAIL_BYTES = 64 * 1024
CATALOG_FILES = tuple(
    f".ironflow-run-catalog-v1.{suffix}" for suffix in ("bin", "delta", "state", "lock")
)
LEASE_DIR = ".ironflow-run-leases-v1"
FLOW_DIR = ".ironflow-flows-v1"
ORIGIN_DIR = ".ironflow-run-origins-v1"

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_JOURNAL_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def primary_name(run_id: str) -> str:
    return f"{run_id}.json"


def sidecar_name(run_id: str) -> str:
    return f"{run_id}.summary.json"


def journal_name(run_id: str) -> str:
    return f".{run_id}.journal"


def lease_name(run_id: str) -> str:
    return os.path.join(LEASE_DIR, f"{run_id}.lease")


def flow_name(digest: str) -> str:
    return os.path.join(FLOW_DIR, f"{digest}.json")


def origin_name(run_id: str) -> str:
    return os.path.join(ORIGIN_DIR, f"{run_id}.json")


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _unsafe(name: str, detail: str) -> StoreCorruptionError:
    return codec.corruption(f"Unsafe JSON store entry '{name}'", detail)


def _unavailable(what: str, exc: OSError) -> StoreUnavailableError:
    return StoreUnavailableError(f"{what}: {exc.strerror or exc}")


@attrs.define
class JsonStoreStats:
    """I/O counters, so tests and benchmarks can check that persistence stays linear."""

    bytes_written: int = 0
    journal_appends: int = 0
    primary_writes: int = 0
    compactions: int = 0


@attrs.frozen
class _Lease:
    owner: str
    expires_micros: int
    data: bytes
    """The file as read: it is removed only while it still holds exactly this."""


@attrs.define(eq=False)
class _RunHandle:
    """What this process knows about a run it writes; guarded by ``lock``."""

    run_id: str
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    loaded: bool = False
    gone: bool = False
    """Evicted (finished or deleted): a waiter must look the run up again."""
    revision: str = ""
    primary_size: int = 0
    journal_size: int = 0
    fd: int | None = None
    raw: dict[str, Any] = attrs.field(factory=dict)
    """The record as primary + journal hold it, so a compaction needs no re-read."""
    pretty: codec.PrettyCache = attrs.field(factory=codec.PrettyCache)


class JsonStore:
    """``StateStore`` over a directory of upstream-compatible JSON files.

    Opening does no I/O; the directory is created (mode 0700) by the first
    write. ``journal_min_bytes`` tunes when a growing journal is compacted
    early (tests lower it to exercise compaction).
    """

    def __init__(
        self, root: str | os.PathLike[str], *, journal_min_bytes: int = DEFAULT_JOURNAL_MIN_BYTES
    ) -> None:
        self.root = os.fspath(root)
        self.journal_min_bytes = journal_min_bytes
        self.stats = JsonStoreStats()
        self._handles: dict[str, _RunHandle] = {}
        self._lease_seen: dict[str, tuple[tuple[int, int, int], str]] = {}
        """Run ID -> (lease file identity, owner it held): fencing re-reads only on change."""
        self.skipped: list[str] = []
        """What the last listing skipped, one line per entry (also logged as warnings)."""

    # ------------------------------------------------------------ public API
    async def create_run(self, record: RunRecord) -> None:
        check_new_record(record)
        # A private deep copy: the caller may go on mutating what it passed.
        raw = _copy_json(codec.compact_json(record.to_json(), f"Run '{record.id}'", InvalidInputError))
        for name, task in raw["tasks"].items():
            self._check_task(task, name)
        async with self._locked(record.id, load=False) as handle:
            if handle.loaded:  # this process is writing that run right now
                raise RunConflictError(f"Run '{record.id}' already exists")
            await self._in_thread(handle, self._create_sync, handle, raw)
            if RunStatus(record.status).terminal:
                self._evict(handle)

    async def set_status(
        self, run_id: str, status: RunStatus, *, at: str | None = None, owner: str | None = None
    ) -> None:
        validate_run_id(run_id)
        try:
            status = RunStatus(status)
        except ValueError:
            raise InvalidInputError(f"Invalid run status '{status}'") from None
        if at is not None and not is_timestamp(at):
            raise InvalidInputError(f"Invalid finished timestamp '{at}'")
        finished = at if at is not None else now_timestamp()

        async with self._locked(run_id) as handle:
            self._fence(run_id, owner)
            raw = handle.raw
            raw["status"] = str(status)
            if status.terminal and raw.get("finished") is None:
                raw["finished"] = finished
            await self._in_thread(handle, self._compact_sync, handle)
            if status.terminal:
                self._evict(handle)

    async def reopen_run(self, run_id: str, *, owner: str | None = None) -> None:
        validate_run_id(run_id)
        async with self._locked(run_id) as handle:
            self._fence(run_id, owner)
            handle.raw["status"] = str(RunStatus.RUNNING)
            handle.raw["finished"] = None
            await self._in_thread(handle, self._compact_sync, handle)

    async def upsert_tasks(
        self, run_id: str, tasks: Iterable[TaskRecord], *, owner: str | None = None
    ) -> None:
        """Append one journal line; the hot path of every step.

        When this process already holds the run and nobody else is mutating it,
        the append happens without yielding to the scheduler (a deliberate
        exception to trio's "every async call is a checkpoint" convention: it
        is one ``write`` system call, and the per-step cost matters).
        """
        validate_run_id(run_id)
        body = codec.compact_json(
            [task.to_json() for task in tasks], "Task record", InvalidInputError
        )
        payload = _copy_json(body)  # a private copy for the in-memory record
        for task in payload:
            self._check_task(task, task.get("name"))
        handle = self._handles.get(run_id)
        if handle is not None and handle.loaded and not handle.lock.locked():
            self._fence(run_id, owner)
            if payload:
                self._apply_tasks(handle, payload, body)
            if self._needs_compaction(handle):
                async with self._locked(run_id) as handle:
                    await self._maybe_compact(handle)
            return
        async with self._locked(run_id) as handle:
            self._fence(run_id, owner)
            if payload:
                self._apply_tasks(handle, payload, body)
                await self._maybe_compact(handle)

    async def merge_context(
        self, run_id: str, ctx: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        validate_run_id(run_id)
        check_context(ctx, run_id)
        body = codec.compact_json(dict(ctx), "Context", InvalidInputError)
        update = _copy_json(body)
        async with self._locked(run_id) as handle:
            self._fence(run_id, owner)
            if not update:
                return
            raw = handle.raw
            self._append(handle, codec.journal_ctx_line(handle.revision, len(raw["tasks"]), body))
            raw["ctx"].update(update)
            handle.pretty.ctx = None
            await self._maybe_compact(handle)

    async def get_run(self, run_id: str) -> RunRecord:
        validate_run_id(run_id)
        decoded, _, _ = await trio.to_thread.run_sync(self._read_full_sync, run_id)
        return RunRecord.from_json(decoded.raw)

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 100, after: str | None = None
    ) -> RunPage:
        check_limit(limit)
        status = coerce_status(status)
        cursor = cursor_for_filter(after, status)
        return await trio.to_thread.run_sync(self._list_sync, status, limit, cursor)

    async def delete_run(self, run_id: str) -> None:
        validate_run_id(run_id)
        async with self._locked(run_id, load=False) as handle:
            await self._in_thread(handle, self._delete_sync, handle)
            self._evict(handle)

    # ------------------------------------------- what a run started from
    async def save_flow(self, flow: FlowSourceRecord) -> str:
        digest = flow.digest
        data = codec.compact_json(flow.to_json(), "Flow source", InvalidInputError).encode()
        await trio.to_thread.run_sync(self._save_flow_sync, digest, data)
        return digest

    async def load_flow(self, digest: str) -> FlowSourceRecord | None:
        if not _is_digest(digest):
            raise InvalidInputError(f"Invalid flow digest '{digest}'")
        data = await trio.to_thread.run_sync(self._read_if_root, flow_name(digest))
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
        validate_run_id(run_id)
        data = check_origin(origin, run_id).encode()
        async with self._locked(run_id, load=False):
            await trio.to_thread.run_sync(self._set_origin_sync, run_id, data, owner)

    async def get_origin(self, run_id: str) -> RunOrigin | None:
        validate_run_id(run_id)
        data = await trio.to_thread.run_sync(self._read_if_root, origin_name(run_id))
        if data is None:
            if not await trio.to_thread.run_sync(self._run_exists, run_id):
                raise RunNotFoundError(run_id)
            return None
        try:
            return RunOrigin.from_json(codec.parse_json(data))
        except (AttributeError, UnicodeDecodeError, ValueError) as exc:
            raise codec.corruption(f"Invalid run origin '{origin_name(run_id)}'", str(exc)) from None

    def _read_if_root(self, name: str) -> bytes | None:
        return self._read(name) if self._root_exists() else None

    def _save_flow_sync(self, digest: str, data: bytes) -> None:
        self._ensure_subdir(FLOW_DIR)
        name = flow_name(digest)
        if self._entry_exists(name):
            return  # content-addressed: the same digest is the same flow
        self._publish_replace(name, data, primary=False)
        self._fsync_dir(self._path(FLOW_DIR))

    def _set_origin_sync(self, run_id: str, data: bytes, owner: str | None) -> None:
        if not self._run_exists(run_id):
            raise RunNotFoundError(run_id)
        self._fence(run_id, owner)
        self._ensure_subdir(ORIGIN_DIR)
        self._publish_replace(origin_name(run_id), data, primary=False)
        self._fsync_dir(self._path(ORIGIN_DIR))

    def _fence(self, run_id: str, owner: str | None) -> None:
        """Refuse a write whose owner no longer holds the lease; one ``stat`` when unchanged."""
        if owner is None:
            return
        try:
            info = os.lstat(self._path(lease_name(run_id)))
        except FileNotFoundError:
            self._lease_seen.pop(run_id, None)
            raise fenced(run_id) from None
        except OSError as exc:
            raise _unavailable(f"Failed to inspect the lease of run '{run_id}'", exc) from None
        identity = (info.st_ino, info.st_mtime_ns, info.st_size)
        seen = self._lease_seen.get(run_id)
        if seen is not None and seen[0] == identity:
            holder: str | None = seen[1]
        else:
            lease = self._read_lease(run_id)
            holder = lease.owner if lease is not None else None
            if holder is not None:
                self._lease_seen[run_id] = (identity, holder)
        if not owner_may_write(holder, owner):
            raise fenced(run_id)

    # ------------------------------------------------------ leases (ST-50..52)
    # Lease calls hold the run's lock, so in this process they are serialised
    # with deletion and reconciliation of the same run.
    async def acquire_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        validate_run_id(run_id)
        async with self._locked(run_id, load=False):
            await trio.to_thread.run_sync(self._acquire_sync, run_id, owner, ttl_s)

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        validate_run_id(run_id)
        async with self._locked(run_id, load=False):
            await trio.to_thread.run_sync(self._renew_sync, run_id, owner, ttl_s)

    async def release_lease(self, run_id: str, owner: str) -> None:
        validate_run_id(run_id)
        async with self._locked(run_id, load=False):
            await trio.to_thread.run_sync(self._release_sync, run_id, owner)

    async def get_lease(self, run_id: str) -> LeaseInfo | None:
        validate_run_id(run_id)
        lease = await trio.to_thread.run_sync(self._read_lease, run_id)
        return None if lease is None else LeaseInfo(lease.owner, lease.expires_micros)

    async def reconcile_expired(self, now_micros: int) -> list[str]:
        expired = await trio.to_thread.run_sync(self._expired_sync, now_micros)
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
            if await self._in_thread(handle, self._reconcile_sync, handle, now_micros):
                self._evict(handle)  # terminal now, as after set_status
                return True
            if not executing_here:
                self._evict(handle)  # loaded only to look: keep no cache of it
            return False

    async def aclose(self) -> None:
        for handle in list(self._handles.values()):
            self._close_journal(handle)
        self._handles.clear()
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------- per-run locking
    @asynccontextmanager
    async def _locked(self, run_id: str, *, load: bool = True) -> AsyncIterator[_RunHandle]:
        """Hold the run's lock; with ``load``, know its revision (RunNotFoundError if absent)."""
        while True:
            handle = self._handles.get(run_id)
            if handle is None:
                handle = self._handles[run_id] = _RunHandle(run_id)
            async with handle.lock:
                if handle.gone:
                    continue
                try:
                    if load and not handle.loaded:
                        await self._in_thread(handle, self._load_sync, handle)
                    yield handle
                finally:
                    if not handle.loaded:
                        self._evict(handle)
                return

    async def _in_thread(self, handle: _RunHandle, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work; on failure forget the cached state so it is re-read."""
        try:
            return await trio.to_thread.run_sync(fn, *args)
        except BaseException:
            self._close_journal(handle)
            handle.loaded = False
            raise

    def _evict(self, handle: _RunHandle) -> None:
        handle.gone = True
        handle.loaded = False
        handle.raw = {}
        handle.pretty = codec.PrettyCache()
        self._close_journal(handle)
        if self._handles.get(handle.run_id) is handle:
            del self._handles[handle.run_id]

    @staticmethod
    def _check_task(task: dict[str, Any], name: object) -> None:
        try:
            codec.check_task(task, f"task '{name}'")
        except ValueError as exc:
            raise InvalidInputError(f"Invalid task record: {exc}") from None

    # ------------------------------------------------------------- journal
    def _apply_tasks(self, handle: _RunHandle, payload: list[dict[str, Any]], body: str) -> None:
        tasks = handle.raw["tasks"]
        count = len(tasks) + len({t["name"] for t in payload if t["name"] not in tasks})
        self._append(handle, codec.journal_tasks_line(handle.revision, count, body))
        forget = handle.pretty.forget_task
        for task in payload:
            tasks[task["name"]] = task
            forget(task["name"])

    def _needs_compaction(self, handle: _RunHandle) -> bool:
        return handle.journal_size > max(handle.primary_size, self.journal_min_bytes)

    def _append(self, handle: _RunHandle, line: bytes) -> None:
        """One write on the run's O_APPEND descriptor (trio thread: it is a single syscall)."""
        try:
            if handle.fd is None:
                fd = os.open(self._path(journal_name(handle.run_id)), _JOURNAL_FLAGS, 0o600)
                handle.fd = fd
                handle.journal_size = os.fstat(fd).st_size
            written = os.write(handle.fd, line)
            while written < len(line):
                written += os.write(handle.fd, line[written:])
        except OSError as exc:
            if handle.fd is not None:
                try:  # drop a partial line so the next append starts clean
                    os.ftruncate(handle.fd, handle.journal_size)
                except OSError:
                    pass
            self._close_journal(handle)
            handle.loaded = False
            raise _unavailable(f"Failed to append to the journal of run '{handle.run_id}'", exc) from None
        handle.journal_size += len(line)
        self.stats.bytes_written += len(line)
        self.stats.journal_appends += 1

    async def _maybe_compact(self, handle: _RunHandle) -> None:
        if self._needs_compaction(handle):
            await self._in_thread(handle, self._compact_sync, handle)

    def _close_journal(self, handle: _RunHandle) -> None:
        if handle.fd is not None:
            fd, handle.fd = handle.fd, None
            try:
                os.close(fd)
            except OSError:
                pass

    def _drop_journal(self, handle: _RunHandle) -> None:
        """Forget the journal: a new inode is created by the next append."""
        self._close_journal(handle)
        self._unlink_quiet(journal_name(handle.run_id))
        handle.journal_size = 0

    # ------------------------------------------------- worker-thread bodies
    def _read_full_sync(self, run_id: str) -> tuple[codec.DecodedRun, int, int]:
        """Primary plus its journal; journal first so a compaction in between is harmless."""
        if not self._root_exists():
            raise RunNotFoundError(run_id)
        journal = self._read(journal_name(run_id)) or b""
        name = primary_name(run_id)
        data = self._read(name)
        if data is None:
            raise RunNotFoundError(run_id)
        decoded = codec.decode_primary(data, run_id, name)
        codec.replay_journal(journal, decoded.raw, decoded.revision, run_id)
        return decoded, len(data), len(journal)

    def _load_sync(self, handle: _RunHandle) -> None:
        decoded, size, journal_size = self._read_full_sync(handle.run_id)
        handle.raw = decoded.raw
        handle.pretty = codec.PrettyCache()
        if decoded.revision is None or journal_size:
            # Legacy record, or a journal left by another process: fold it in
            # now so this process starts appending to a clean journal.
            self._rewrite_sync(handle)
        else:
            handle.revision = decoded.revision
            handle.primary_size = size
            handle.journal_size = 0
        handle.loaded = True

    def _compact_sync(self, handle: _RunHandle) -> None:
        self._rewrite_sync(handle)
        self.stats.compactions += 1

    def _rewrite_sync(self, handle: _RunHandle) -> None:
        """Publish the in-memory record as the new primary, then forget the journal."""
        run_id = handle.run_id
        encoded = codec.encode_primary(handle.raw, handle.pretty)
        name = primary_name(run_id)
        if not self._root_exists() or not self._entry_exists(name):
            raise RunNotFoundError(run_id)  # deleted meanwhile: never resurrect it
        self._publish_replace(name, encoded.data)
        handle.revision = encoded.revision
        handle.primary_size = len(encoded.data)
        self._drop_journal(handle)
        self._write_sidecar(run_id, encoded.sidecar)
        self._drop_catalog()

    def _create_sync(self, handle: _RunHandle, raw: dict[str, Any]) -> None:
        run_id = handle.run_id
        pretty = codec.PrettyCache()
        encoded = codec.encode_primary(raw, pretty)
        self._publish_new(primary_name(run_id), encoded.data, run_id)
        handle.raw = raw
        handle.pretty = pretty
        handle.revision = encoded.revision
        handle.primary_size = len(encoded.data)
        handle.loaded = True
        handle.gone = False
        self._drop_journal(handle)  # a leftover of an earlier run with this ID
        self._write_sidecar(run_id, encoded.sidecar)
        self._drop_catalog()

    def _delete_sync(self, handle: _RunHandle) -> None:
        run_id = handle.run_id
        name = primary_name(run_id)
        if not self._root_exists() or not self._entry_exists(name):
            raise RunNotFoundError(run_id)
        self._check_lease(run_id)
        self._unlink_quiet(sidecar_name(run_id))
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            raise RunNotFoundError(run_id) from None
        except OSError as exc:
            raise _unavailable(f"Failed to delete JSON store entry '{name}'", exc) from None
        self._drop_journal(handle)
        self._unlink_quiet(lease_name(run_id))
        self._unlink_quiet(origin_name(run_id))
        self._fsync_dir()
        self._drop_catalog()

    def _check_lease(self, run_id: str) -> None:
        """ST-35: a non-terminal run whose owner lease is live cannot be deleted."""
        lease = self._read_lease(run_id)
        if lease is None or lease.expires_micros <= clock_micros():
            return
        decoded, _, _ = self._read_full_sync(run_id)
        if not RunStatus(decoded.raw["status"]).terminal:
            raise still_executing(run_id)

    # ------------------------------------------------ lease files (ST-51)
    def _ensure_subdir(self, name: str) -> None:
        """A private directory of the store (mode 0700), never a symlink."""
        self._ensure_root()
        directory = self._path(name)
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _unavailable(f"Failed to create the directory '{name}'", exc) from None
        try:
            is_dir = stat.S_ISDIR(os.lstat(directory).st_mode)
        except OSError as exc:
            raise _unavailable(f"Failed to inspect the directory '{name}'", exc) from None
        if not is_dir:
            raise _unsafe(name, "not a directory")

    def _read_lease(self, run_id: str) -> _Lease | None:
        name = lease_name(run_id)
        data = self._read(name) if self._root_exists() else None
        if data is None:
            return None
        try:
            fields = codec.parse_json(data)
            owner, expires = fields.get("owner"), fields.get("expires_micros")
            stored_id = fields.get("run_id")
        except (AttributeError, UnicodeDecodeError, ValueError):
            raise codec.corruption(f"Invalid lease file '{name}'", "not a lease record") from None
        if type(expires) is not int:
            raise codec.corruption(f"Invalid lease file '{name}'", "expires_micros is missing")
        if not isinstance(owner, str):
            raise codec.corruption(f"Invalid lease file '{name}'", "owner is missing")
        if stored_id != run_id:
            raise codec.corruption(f"Invalid lease file '{name}'", "run_id does not match the name")
        return _Lease(owner, expires, data)

    def _write_lease(self, run_id: str, owner: str, expires_micros: int) -> None:
        """Publish the lease atomically: temporary file, fsync, rename, fsync of its directory."""
        self._ensure_subdir(LEASE_DIR)
        record = {"run_id": run_id, "owner": owner, "expires_micros": expires_micros}
        data = json.dumps(record, separators=(",", ":")).encode()
        name = lease_name(run_id)
        temp = self._write_temp(name, data)
        try:
            os.replace(self._path(temp), self._path(name))
        except OSError as exc:
            self._unlink_quiet(temp)
            raise _unavailable(f"Failed to write lease file '{name}'", exc) from None
        self._fsync_dir(self._path(LEASE_DIR))

    def _remove_lease(self, run_id: str, lease: _Lease) -> None:
        """Unlink the lease file unless it changed since ``lease`` was read."""
        name = lease_name(run_id)
        if self._read(name) != lease.data:
            return
        self._unlink_quiet(name)
        self._fsync_dir(self._path(LEASE_DIR))

    def _run_exists(self, run_id: str) -> bool:
        return self._root_exists() and self._entry_exists(primary_name(run_id))

    def _acquire_sync(self, run_id: str, owner: str, ttl_s: float) -> None:
        if not self._run_exists(run_id):
            raise RunNotFoundError(run_id)
        now = clock_micros()
        lease = self._read_lease(run_id)
        if lease is not None and lease.owner != owner and lease.expires_micros > now:
            raise lease_taken(run_id)
        self._write_lease(run_id, owner, expiry_after(ttl_s, now))

    def _renew_sync(self, run_id: str, owner: str, ttl_s: float) -> None:
        now = clock_micros()
        lease = self._read_lease(run_id)
        if lease is None or lease.owner != owner or lease.expires_micros <= now:
            raise lease_lost(run_id)
        self._write_lease(run_id, owner, expiry_after(ttl_s, now))

    def _release_sync(self, run_id: str, owner: str) -> None:
        lease = self._read_lease(run_id)
        if lease is not None and lease.owner == owner:
            self._remove_lease(run_id, lease)

    def _expired_sync(self, now_micros: int) -> list[str]:
        """Run IDs whose lease file expired; damaged lease files are reported and skipped."""
        if not self._root_exists():
            return []
        try:
            names = os.listdir(self._path(LEASE_DIR))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise _unavailable("Failed to list the lease directory", exc) from None
        expired = []
        for name in sorted(names):
            run_id = name[:-6]
            if name.startswith(".") or not name.endswith(".lease") or run_id_problem(run_id):
                continue  # temporary files and names that are no run's lease
            try:
                lease = self._read_lease(run_id)
            except StoreError as exc:
                log.warning("skipping lease of run %s: %s", run_id, exc)
                continue
            if lease is not None and lease.expires_micros <= now_micros:
                expired.append(run_id)
        return expired

    def _reconcile_sync(self, handle: _RunHandle, now_micros: int) -> bool:
        """ST-52 for one run, under its lock; True when it was stalled."""
        run_id = handle.run_id
        lease = self._read_lease(run_id)
        if lease is None or lease.expires_micros > now_micros:
            return False  # renewed or released meanwhile
        stalled = False
        if self._run_exists(run_id):
            if not handle.loaded:
                self._load_sync(handle)
            if is_unfinished(handle.raw["status"]):
                stall_record(handle.raw, now_timestamp())
                handle.pretty = codec.PrettyCache()
                self._compact_sync(handle)
                stalled = True
        self._remove_lease(run_id, lease)
        return stalled

    def _list_sync(self, status: RunStatus | None, limit: int, cursor: Cursor | None) -> RunPage:
        summaries = []
        skipped: list[str] = []
        for run_id, has_sidecar, has_journal in self._scan_sync(skipped):
            try:
                summary = self._summary_sync(run_id, has_sidecar, has_journal)
            except StoreCorruptionError as exc:
                skipped.append(f"{self._path(primary_name(run_id))}: {exc}")
                continue
            if summary is not None:
                summaries.append(summary)
        for line in skipped:
            log.warning("skipped JSON store entry %s", line)
        self.skipped = skipped
        return build_page(summaries, status=status, limit=limit, after=cursor)

    def _scan_sync(self, skipped: list[str]) -> list[tuple[str, bool, bool]]:
        """Run candidates per ST-31: dot names are never runs, other ``.json`` names must be."""
        if not self._root_exists():
            return []
        primaries: list[str] = []
        sidecars: set[str] = set()
        journals: set[str] = set()
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith("."):
                        if name.endswith(".journal"):
                            journals.add(name[1:-8])
                        continue
                    if name.endswith(".summary.json"):
                        run_id, is_sidecar = name[:-13], True
                    elif name.endswith(".json"):
                        run_id, is_sidecar = name[:-5], False
                    else:
                        continue
                    problem = run_id_problem(run_id)
                    if problem is not None:
                        skipped.append(f"{self._path(name)}: not a run file name ({problem})")
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        skipped.append(f"{self._path(name)}: not a regular file")
                        continue
                    if is_sidecar:
                        sidecars.add(run_id)
                    else:
                        primaries.append(run_id)
        except OSError as exc:
            raise _unavailable("Failed to list the JSON store directory", exc) from None
        return [(r, r in sidecars, r in journals) for r in primaries]

    def _summary_sync(self, run_id: str, has_sidecar: bool, has_journal: bool) -> RunSummary | None:
        """A run's summary from its header and sidecar; the full primary only when they disagree."""
        name = primary_name(run_id)
        prefix = self._read(name, limit=codec.HEADER_BYTES)
        if prefix is None:
            return None  # deleted since the directory scan
        header = codec.decode_header(prefix, run_id)
        sidecar = None
        if has_sidecar:
            data = self._read(sidecar_name(run_id))
            if data is not None:
                sidecar = codec.decode_sidecar(data, run_id, sidecar_name(run_id))
        summary: dict[str, Any] | None = None
        revision: str | None = None
        if header is not None and _sidecar_matches(sidecar, header.revision, header.digest):
            assert sidecar is not None
            summary, revision = sidecar.summary, header.revision
        else:
            data = self._read(name)
            if data is None:
                return None
            decoded = codec.decode_primary(data, run_id, name)
            summary, revision = codec.summary_of(decoded.raw), decoded.revision
            if revision is not None:
                digest = decoded.digest or codec.summary_digest(summary)
                if not _sidecar_matches(sidecar, revision, digest):
                    self._write_sidecar(run_id, codec.sidecar_bytes(revision, digest, summary))
        if has_journal and revision is not None:
            count = self._journal_count(run_id, revision)
            if count >= 0:
                summary = {**summary, "task_count": count}
        return RunSummary.from_json(summary)

    def _journal_count(self, run_id: str, revision: str) -> int:
        """Task count after the journal's last line, reading only its tail."""
        fd = self._open_regular(journal_name(run_id))
        if fd is None:
            return -1
        try:
            size = os.fstat(fd).st_size
            start = max(0, size - JOURNAL_TAIL_BYTES)
            tail = os.pread(fd, size - start, start)
        except OSError as exc:
            raise _unavailable(f"Failed to read the journal of run '{run_id}'", exc) from None
        finally:
            os.close(fd)
        count = codec.journal_tail_count(tail, revision, start == 0)
        if count is None:  # a very long last line, or a malformed one: replay it all
            decoded, _, _ = self._read_full_sync(run_id)
            return len(decoded.raw["tasks"])
        return count

    # ------------------------------------------------------------- files
    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _root_exists(self) -> bool:
        """The root must be a real directory, never a symlink (ST-30)."""
        try:
            info = os.lstat(self.root)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _unavailable("Failed to inspect JSON store directory", exc) from None
        if stat.S_ISLNK(info.st_mode):
            raise _unsafe("store directory", "symlink")
        if not stat.S_ISDIR(info.st_mode):
            raise _unsafe("store directory", "non-directory filesystem entry")
        return True

    def _ensure_root(self) -> None:
        if self._root_exists():
            return
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            os.chmod(self.root, 0o700, follow_symlinks=False)
        except OSError as exc:
            raise _unavailable("Failed to create JSON store directory", exc) from None
        self._root_exists()

    def _entry_exists(self, name: str) -> bool:
        try:
            info = os.lstat(self._path(name))
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _unavailable(f"Failed to inspect JSON store entry '{name}'", exc) from None
        if stat.S_ISLNK(info.st_mode):
            raise _unsafe(name, "symlink")
        if not stat.S_ISREG(info.st_mode):
            raise _unsafe(name, "non-regular filesystem entry")
        return True

    def _open_regular(self, name: str) -> int | None:
        try:
            fd = os.open(self._path(name), _READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _unsafe(name, "symlink") from None
            raise _unavailable(f"Failed to open JSON store entry '{name}'", exc) from None
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError as exc:
            os.close(fd)
            raise _unavailable(f"Failed to inspect JSON store entry '{name}'", exc) from None
        if not regular:
            os.close(fd)
            raise _unsafe(name, "non-regular filesystem entry")
        return fd

    def _read(self, name: str, *, limit: int | None = None) -> bytes | None:
        fd = self._open_regular(name)
        if fd is None:
            return None
        try:
            if limit is not None:
                return os.pread(fd, limit, 0)
            with open(fd, "rb", closefd=False) as handle:
                return handle.read()
        except OSError as exc:
            raise _unavailable(f"Failed to read JSON store entry '{name}'", exc) from None
        finally:
            os.close(fd)

    def _write_temp(self, name: str, data: bytes) -> str:
        """Write ``.<name>.<hex>.tmp`` beside ``name`` (mode 0600) and fsync it; returns its name."""
        folder, base = os.path.split(name)
        for _ in range(8):
            temp = os.path.join(folder, f".{base}.{uuid.uuid4().hex}.tmp")
            try:
                fd = os.open(self._path(temp), _TEMP_FLAGS, 0o600)
            except FileExistsError:
                continue
            except OSError as exc:
                raise _unavailable(f"Failed to create temporary JSON entry for '{name}'", exc) from None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except BaseException as exc:
                os.close(fd)
                self._unlink_quiet(temp)
                if isinstance(exc, OSError):
                    raise _unavailable(
                        f"Failed to write temporary JSON entry for '{name}'", exc
                    ) from None
                raise
            os.close(fd)
            self.stats.bytes_written += len(data)
            return temp
        raise StoreUnavailableError(f"Could not allocate a temporary JSON entry for '{name}'")

    def _publish_new(self, name: str, data: bytes, run_id: str) -> None:
        """Hard-link a fresh file into place: an existing run is a conflict (ST-32)."""
        self._ensure_root()
        if self._entry_exists(name):
            raise RunConflictError(f"Run '{run_id}' already exists")
        temp = self._write_temp(name, data)
        try:
            os.link(self._path(temp), self._path(name), follow_symlinks=False)
        except FileExistsError:
            raise RunConflictError(f"Run '{run_id}' already exists") from None
        except OSError as exc:
            raise _unavailable(f"Failed to commit new run '{run_id}'", exc) from None
        finally:
            self._unlink_quiet(temp)
        self.stats.primary_writes += 1
        self._fsync_dir()

    def _publish_replace(self, name: str, data: bytes, *, primary: bool = True) -> None:
        self._ensure_root()
        temp = self._write_temp(name, data)
        try:
            os.replace(self._path(temp), self._path(name))
        except BaseException as exc:
            self._unlink_quiet(temp)
            if isinstance(exc, OSError):
                raise _unavailable(f"Failed to replace JSON store entry '{name}'", exc) from None
            raise
        if primary:
            self.stats.primary_writes += 1
            self._fsync_dir()

    def _write_sidecar(self, run_id: str, data: bytes) -> None:
        """Best effort: the primary is authoritative and a stale sidecar is rebuilt."""
        try:
            # The directory sync of the next primary write covers this rename;
            # losing it in a crash only means the cache is rebuilt.
            self._publish_replace(sidecar_name(run_id), data, primary=False)
        except (OSError, StoreUnavailableError, StoreCorruptionError) as exc:
            log.warning("could not write the summary cache of run %s: %s", run_id, exc)

    def _fsync_dir(self, directory: str | None = None) -> None:
        try:
            fd = os.open(directory or self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise _unavailable("Failed to open JSON store directory", exc) from None
        try:
            os.fsync(fd)
        except OSError as exc:
            raise _unavailable("Failed to sync JSON store directory", exc) from None
        finally:
            os.close(fd)

    def _unlink_quiet(self, name: str) -> None:
        try:
            os.unlink(self._path(name))
        except OSError:
            pass

    def _drop_catalog(self) -> None:
        """ST-34: upstream's catalog is a derived cache; removing it makes upstream rebuild it."""
        for name in CATALOG_FILES:
            self._unlink_quiet(name)


def _copy_json(text: str) -> Any:
    """Parse JSON this module just serialised (no BOM or trailing-text checks needed)."""
    return _raw_decode(text)[0]


_raw_decode = json.JSONDecoder().raw_decode


def _sidecar_matches(sidecar: codec.Sidecar | None, revision: str, digest: str) -> bool:
    return (
        sidecar is not None
        and sidecar.revision == revision
        and sidecar.digest == digest
        and codec.digest_matches(sidecar.summary, digest)
    )

