"""The journal of a run being written: appends, segments, replay and the background fold.

Rewriting the whole record for every task update would make a run quadratic
in its length, so task upserts and context merges are appended to a
Python-private journal as one compact line each: one ``write`` on an
``O_APPEND`` descriptor kept open per run, no fsync (a killed process loses
nothing the kernel accepted). A batch of tasks is one line, so a kill leaves
all of it or none of it: a last line without its newline is an append that
never finished and is ignored on replay. Each line names the primary revision
it extends; lines of another revision are ignored, so a journal never makes a
run look older than its primary.

The journal has two segment files, ``.<id>.journal`` and ``.<id>.journal.1``;
appends go to one of them (the live one). When the live segment outgrows the
primary, the record is *folded* into a new primary without stopping the
appends: the in-memory record is snapshotted on the trio thread, a worker
thread encodes it and writes a fsynced temporary file, and meanwhile appends
go on into the live segment (and are remembered). Back on the trio thread, in
one callback that no append can interleave with, the lines appended since the
snapshot are written to the *other* segment under the new revision, the
temporary file is renamed over the primary, and the other segment becomes the
live one. Whatever the moment of a crash, exactly one segment's lines match
the primary on disk and together they hold every acknowledged update: before
the rename the old primary and the old segment, after it the new primary and
the new segment. A failed fold only costs its work; the old segment stays
authoritative. Status changes still fold synchronously, with every fsync, and
remove both segments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ironflow_core.errors import RunNotFoundError, StoreUnavailableError
from ironflow_core.stores import json_codec as codec
from ironflow_core.stores.json_store.files import StoreFiles, log, primary_name, unavailable

LineMaker = Callable[[str, int, bytes], bytes]
"""``json_codec.journal_tasks_line`` or ``journal_ctx_line``: (revision, task count, body)."""

_SEGMENT_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
_READ_ATTEMPTS = 8


def journal_names(run_id: str) -> tuple[str, str]:
    """The run's two journal segments."""
    return f".{run_id}.journal", f".{run_id}.journal.1"


def journal_run_id(name: str) -> str | None:
    """The run a directory entry is a journal segment of, None for other names."""
    if name.startswith("."):
        if name.endswith(".journal"):
            return name[1:-8]
        if name.endswith(".journal.1"):
            return name[1:-10]
    return None


@attrs.define(eq=False)
class Fold:
    """A fold in progress: the snapshot a worker thread encodes and what arrived since."""

    snapshot: dict[str, Any]
    pretty: codec.PrettyCache
    epoch: int
    after: list[tuple[LineMaker, int, bytes]] = attrs.field(factory=list)
    """What was appended since the snapshot, to be written again under the new revision."""
    changed: set[str] = attrs.field(factory=set)
    ctx_changed: bool = False
    done: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class RunHandle:
    """What this process knows about a run it writes; guarded by ``lock`` except for appends."""

    run_id: str
    lock: trio.Lock = attrs.field(factory=trio.Lock)
    loaded: bool = False
    gone: bool = False
    """Evicted (finished or deleted): a waiter must look the run up again."""
    epoch: int = 0
    """Counts loads and failures, so a fold started before one never lands after it."""
    revision: str = ""
    primary_size: int = 0
    segment: int = 0
    """Which of the two journal segments takes appends."""
    journal_size: int = 0
    fd: int | None = None
    raw: dict[str, Any] = attrs.field(factory=dict)
    """The record as primary + journal hold it, so a fold needs no re-read."""
    pretty: codec.PrettyCache = attrs.field(factory=codec.PrettyCache)
    fold: Fold | None = None
    fold_at: int = 0
    """A journal size below which no fold starts (raised after a failed fold)."""

    def forget(self) -> None:
        """Drop the cached state (after a failure): the next writer re-reads the run."""
        close_segment(self)
        self.loaded = False
        self.epoch += 1


def close_segment(handle: RunHandle) -> None:
    """Close the live segment's descriptor, if open."""
    if handle.fd is not None:
        fd, handle.fd = handle.fd, None
        try:
            os.close(fd)
        except OSError:
            pass


def drop_segments(files: StoreFiles, handle: RunHandle) -> None:
    """Forget both segments (after a full rewrite): the next append starts a new file."""
    close_segment(handle)
    for name in journal_names(handle.run_id):
        files.unlink_quiet(name)
    handle.segment = 0
    handle.journal_size = 0


def append(
    files: StoreFiles, handle: RunHandle, make: LineMaker, count: int, body: bytes
) -> None:
    """One line, one write on the live segment (trio thread: it is a single system call).

    ``make(revision, count, body)`` builds the line; a failed write is cut off
    again, so the next append starts on a clean line, and the cached state is
    dropped.
    """
    line = make(handle.revision, count, body)
    try:
        if handle.fd is None:
            name = journal_names(handle.run_id)[handle.segment]
            fd = os.open(files.path(name), _SEGMENT_FLAGS, 0o600)
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
        handle.forget()
        raise unavailable(f"Failed to append to the journal of run '{handle.run_id}'", exc) from None
    handle.journal_size += len(line)
    files.stats.bytes_written += len(line)
    files.stats.journal_appends += 1
    if handle.fold is not None:
        handle.fold.after.append((make, count, body))


def read_run(files: StoreFiles, run_id: str) -> tuple[codec.DecodedRun, int, int]:
    """A run's primary with its journal applied; also the primary's and the journal's sizes.

    The primary is read first, then both segments, then the primary's identity
    is checked again: a fold that landed in between makes the read start over,
    so a reader never pairs a primary with the wrong segment and only ever sees
    a run as new as when it started reading, or newer.
    """
    name = primary_name(run_id)
    for _ in range(_READ_ATTEMPTS):
        if not files.root_exists():
            raise RunNotFoundError(run_id)
        before = _identity(files, name)
        data = files.read(name)
        if data is None or before is None:
            raise RunNotFoundError(run_id)
        journals = [files.read(segment) or b"" for segment in journal_names(run_id)]
        if _identity(files, name) != before:
            continue
        decoded = codec.decode_primary(data, run_id, name)
        for journal in journals:
            codec.replay_journal(journal, decoded.raw, decoded.revision, run_id)
        return decoded, len(data), sum(len(journal) for journal in journals)
    raise StoreUnavailableError(f"Run '{run_id}' changed during every read; try again")


def _identity(files: StoreFiles, name: str) -> tuple[int, int, int] | None:
    try:
        info = os.lstat(files.path(name))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise unavailable(f"Failed to inspect JSON store entry '{name}'", exc) from None
    return info.st_ino, info.st_mtime_ns, info.st_size


def rewrite(files: StoreFiles, handle: RunHandle) -> None:
    """Publish the in-memory record as the new primary (every fsync), then drop the journal."""
    run_id = handle.run_id
    encoded = codec.encode_primary(handle.raw, handle.pretty)
    name = primary_name(run_id)
    if not files.root_exists() or not files.entry_exists(name):
        raise RunNotFoundError(run_id)  # deleted meanwhile: never resurrect it
    files.publish_replace(name, encoded.data)
    handle.revision = encoded.revision
    handle.primary_size = len(encoded.data)
    drop_segments(files, handle)
    files.write_sidecar(run_id, encoded.sidecar)
    files.drop_catalog()


# ---------------------------------------------------------------- background fold
def start_fold(files: StoreFiles, handle: RunHandle) -> None:
    """Snapshot the record and fold it into a new primary in a worker thread (trio thread)."""
    raw = handle.raw
    snapshot = {**raw, "tasks": dict(raw["tasks"]), "ctx": dict(raw["ctx"])}
    pretty = codec.PrettyCache(dict(handle.pretty.tasks), handle.pretty.ctx)
    fold = handle.fold = Fold(snapshot, pretty, handle.epoch)
    token = trio.lowlevel.current_trio_token()

    def prepare() -> tuple[codec.EncodedRun, str]:
        encoded = codec.encode_primary(fold.snapshot, fold.pretty)
        return encoded, files.write_temp(primary_name(handle.run_id), encoded.data)

    def deliver(result: Any) -> None:  # an outcome.Outcome of prepare()
        try:
            token.run_sync_soon(_switch, files, handle, fold, result)
        except trio.RunFinishedError:
            try:
                files.unlink_quiet(result.unwrap()[1])
            except Exception:
                pass

    trio.lowlevel.start_thread_soon(prepare, deliver, name="ironflow json store fold")


def _switch(files: StoreFiles, handle: RunHandle, fold: Fold, result: Any) -> None:
    """Land a prepared fold (trio thread, between two appends); never raises."""
    try:
        encoded, temp = result.unwrap()
    except Exception as exc:  # the old segment stays authoritative
        log.warning("could not fold the journal of run %s: %s", handle.run_id, exc)
        _fold_failed(handle, fold)
        return
    if handle.gone or not handle.loaded or handle.fold is not fold or handle.epoch != fold.epoch:
        files.unlink_quiet(temp)
        _fold_finished(handle, fold)
        return
    segment = 1 - handle.segment
    lines = b"".join([make(encoded.revision, count, body) for make, count, body in fold.after])
    name = journal_names(handle.run_id)[segment]
    fd = None
    try:
        fd = os.open(files.path(name), _SEGMENT_FLAGS | os.O_TRUNC, 0o600)
        view = memoryview(lines)
        while view:
            view = view[os.write(fd, view):]
        if not files.entry_exists(primary_name(handle.run_id)):
            raise RunNotFoundError(handle.run_id)  # deleted by someone else: never resurrect it
        os.replace(files.path(temp), files.path(primary_name(handle.run_id)))
    except Exception as exc:
        if fd is not None:
            os.close(fd)
        files.unlink_quiet(temp)
        log.warning("could not fold the journal of run %s: %s", handle.run_id, exc)
        _fold_failed(handle, fold)
        return
    close_segment(handle)
    handle.fd = fd
    handle.segment = segment
    handle.journal_size = len(lines)
    handle.revision = encoded.revision
    handle.primary_size = len(encoded.data)
    handle.fold_at = 0
    for task in fold.changed:
        fold.pretty.forget_task(task)
    if fold.ctx_changed:
        fold.pretty.ctx = None
    handle.pretty = fold.pretty
    files.stats.primary_writes += 1
    files.stats.compactions += 1
    files.stats.bytes_written += len(lines)
    token = trio.lowlevel.current_trio_token()

    def settle() -> None:
        files.fsync_dir()
        files.write_sidecar(handle.run_id, encoded.sidecar)
        files.drop_catalog()

    def deliver(result: Any) -> None:  # an outcome.Outcome of settle()
        try:
            result.unwrap()
        except Exception as exc:
            log.warning("could not sync the store after folding run %s: %s", handle.run_id, exc)
        try:
            token.run_sync_soon(_fold_finished, handle, fold)
        except trio.RunFinishedError:
            pass

    trio.lowlevel.start_thread_soon(settle, deliver, name="ironflow json store fold sync")


def _fold_failed(handle: RunHandle, fold: Fold) -> None:
    handle.fold_at = 2 * max(handle.journal_size, 1)  # try again once it has doubled
    _fold_finished(handle, fold)


def _fold_finished(handle: RunHandle, fold: Fold) -> None:
    if handle.fold is fold:
        handle.fold = None
    fold.done.set()


async def settle_fold(handle: RunHandle) -> None:
    """Wait until no fold of the run is in flight (before a synchronous rewrite)."""
    while handle.fold is not None:
        await handle.fold.done.wait()


def fold_due(handle: RunHandle, min_bytes: int) -> bool:
    """Whether the live segment has outgrown the primary and no fold is running."""
    return (
        handle.fold is None
        and handle.journal_size > max(handle.primary_size, min_bytes, handle.fold_at)
    )

