"""``RedisStore``: the ``StateStore`` protocol over a real Redis (semantics.md#redis-store).

Keys and fields are upstream's (``keys.py``); the layout inside the run hash
adds Python-private fields so a task update costs O(that task)
(``records.py``). Every mutation is one Lua script run (``scripts.py``):

=================  ============================================  ===========
operation          what the script does                          round trips
=================  ============================================  ===========
create_run         refuse an existing hash, write it, catalog    1
upsert_tasks       one ``py:task:<name>`` field per task          1
merge_context      one ``py:ctx:<key>`` field per key             1
set_status         fold: ``HGETALL`` + rewrite ``info``/catalog   2 (+ retry)
get_run            ``HGETALL``                                   1
list_runs          ``ZREVRANGEBYLEX`` + summaries per page       1 (+ repairs)
delete_run         remove the hash and its catalog entries       1
acquire/renew      ``lease_*`` fields, expiry ZSET, TTL          1
release_lease      drop ``lease_*`` fields and the ZSET entry    1
reconcile_expired  ``ZRANGEBYSCORE``, then per expired run a     1 + 2 per run
                   guarded fold (stalled) or a release
=================  ============================================  ===========

Every mutation refuses a missing hash, so a late writer cannot resurrect a
deleted run (ST-13), and slides the TTL (``EXPIRE``, or ``PERSIST`` without
one, ST-45). A run created by this store instance is also pinned to its
``incarnation``: a writer that outlives a delete-and-recreate of the same ID
gets "not found" instead of writing into the new run.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable, Mapping
from typing import Any

import trio

from ironflow_core.storekit import (
    RUN_STATUSES,
    FlowSourceRecord,
    InvalidInputError,
    LeaseInfo,
    RunConflictError,
    RunNotFoundError,
    RunOrigin,
    RunPage,
    RunRecord,
    RunStatus,
    RunSummary,
    StoreCorruptionError,
    StoreUnavailableError,
    TaskRecord,
    check_context,
    check_limit,
    check_new_record,
    check_origin,
    check_task_json,
    checked_status_change,
    clock_micros,
    compact_json,
    cursor_for_filter,
    encode_cursor,
    expiry_after,
    fenced,
    is_timestamp,
    is_unfinished,
    lease_lost,
    lease_taken,
    now_timestamp,
    stall_record,
    still_executing,
    timestamp_micros,
    validate_run_id,
)
from ironflow_store_redis import records
from ironflow_store_redis.address import RedisAddress
from ironflow_store_redis.client import Arg, RedisClient, RedisReplyError, pairs
from ironflow_store_redis.keys import DEFAULT_PREFIX, Keys, member_run_id, ordering_member
from ironflow_store_redis.scripts import SCRIPTS

log = logging.getLogger(__name__)

FOLD_ATTEMPTS = 50
"""Status changes racing each other on one run retry this often (jittered) before giving up."""
PAGE_SLACK = 8
"""Extra catalog entries read per page so a few stale ones do not cost another round trip."""


def _token() -> str:
    """A fresh revision, incarnation or fold token: 128 random bits in hex (``uuid4().hex``'s
    form, at a quarter of its cost; one is drawn per write)."""
    return os.urandom(16).hex()


def _status_index(status: str) -> int:
    return RUN_STATUSES.index(status) + 1


def _invalid_task(exc: ValueError) -> InvalidInputError:
    return InvalidInputError(f"Invalid task record: {exc}")


def _micros(text: str | None) -> int:
    """A stored ``lease_expires_micros``; a damaged one counts as long expired."""
    try:
        return int(text or "")
    except ValueError:
        return 0


class RedisStore:
    """A ``StateStore`` kept in one standalone Redis server.

    Opening does no I/O; the first command connects. ``ttl_seconds`` is
    ``REDIS_TTL`` (None = keep runs forever).
    """

    def __init__(
        self,
        address: RedisAddress,
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl_seconds: int | None = None,
    ) -> None:
        self.address = address
        self.keys = Keys(prefix)
        self.ttl_seconds = ttl_seconds
        self.client = RedisClient(address)
        self._ttl_arg = str(ttl_seconds) if ttl_seconds else "0"
        self._incarnations: dict[str, str] = {}

    # ------------------------------------------------------------ public API
    async def create_run(self, record: RunRecord) -> None:
        """Write the new run's hash and catalog entries in one script; pins its incarnation."""
        check_new_record(record)
        raw = records.parse_json(compact_json(record.to_json(), f"Run '{record.id}'",
                                              InvalidInputError))
        try:
            for name, task in raw["tasks"].items():
                check_task_json(task, f"task '{name}'")
        except ValueError as exc:
            raise _invalid_task(exc) from None
        incarnation = _token()
        revision = _token()
        args: list[Arg] = [
            record.id,
            ordering_member(record.started, record.id),
            _status_index(raw["status"]),
            records.encode_info(raw),
            records.summary_text(raw),
            revision,
            incarnation,
            self._ttl_arg,
            *raw["tasks"],
        ]
        reply = await self._script("create", self._catalog_keys(record.id), args)
        if not isinstance(reply, list) or len(reply) != 2:
            raise self._odd_reply("create", reply)
        outcome, stored = reply
        if outcome == "conflict" and stored != incarnation:
            raise RunConflictError(f"Run '{record.id}' already exists")
        # "conflict" with our own incarnation: the reply to our first attempt was lost.
        if RunStatus(raw["status"]).terminal:
            self._incarnations.pop(record.id, None)
        else:
            self._incarnations[record.id] = incarnation

    async def set_status(
        self, run_id: str, status: RunStatus, *, at: str | None = None, owner: str | None = None
    ) -> None:
        """Set the status by a fold of the whole record (ST-12); retried when folds race."""
        validate_run_id(run_id)
        status, finished = checked_status_change(status, at)

        def change(raw: dict[str, Any]) -> None:
            raw["status"] = str(status)
            if status.terminal and raw.get("finished") is None:
                raw["finished"] = finished

        await self._fold(run_id, change, owner=owner)
        if status.terminal:
            self._incarnations.pop(run_id, None)

    async def reopen_run(self, run_id: str, *, owner: str | None = None) -> None:
        """Resume in place: back to ``running``, ``finished`` cleared, by a fold."""
        validate_run_id(run_id)

        def change(raw: dict[str, Any]) -> None:
            raw["status"] = str(RunStatus.RUNNING)
            raw["finished"] = None

        await self._fold(run_id, change, owner=owner)

    async def upsert_tasks(
        self, run_id: str, tasks: Iterable[TaskRecord], *, owner: str | None = None
    ) -> None:
        """Write a batch of task records (the engine's group commit) with one script run: one round trip."""
        validate_run_id(run_id)
        args: list[Arg] = [self._incarnations.get(run_id, ""), _token(), self._ttl_arg,
                           owner or ""]
        for task in tasks:
            data = task.to_json()
            try:
                check_task_json(data, f"task '{task.name}'")
            except ValueError as exc:
                raise _invalid_task(exc) from None
            args.append(task.name)
            args.append(compact_json(data, "Task record", InvalidInputError))
        key = self.keys.run(run_id)
        reply = await self._script("upsert_tasks", [key], args)
        if reply == "adopt":
            # A run another writer created without the private fields: fold it once.
            await self._fold(run_id, lambda raw: None)
            reply = await self._script("upsert_tasks", [key], args)
        self._check_reply(run_id, "upsert_tasks", reply)

    async def merge_context(
        self, run_id: str, ctx: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        """Write context keys into their private fields with one script run."""
        validate_run_id(run_id)
        update = dict(ctx)
        check_context(update, run_id)
        args: list[Arg] = [self._incarnations.get(run_id, ""), _token(), self._ttl_arg,
                           owner or ""]
        for key, value in update.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"Context key {key!r} is not a string")
            args.append(key)
            args.append(compact_json(value, f"Context value '{key}'", InvalidInputError))
        reply = await self._script("merge_context", [self.keys.run(run_id)], args)
        self._check_reply(run_id, "merge_context", reply)

    # ------------------------------------------- what a run started from
    async def save_flow(self, flow: FlowSourceRecord) -> str:
        """Store a flow source under its digest (``SET NX``: once per distinct source)."""
        digest = flow.digest
        text = compact_json(flow.to_json(), "Flow source", InvalidInputError)
        await self._command("SET", self.keys.flow(digest), text, "NX")
        return digest

    async def load_flow(self, digest: str) -> FlowSourceRecord | None:
        """The flow source with this digest, or ``None``; a damaged one is a corruption error."""
        reply = await self._command("GET", self.keys.flow(digest))
        if reply is None:
            return None
        try:
            flow = FlowSourceRecord.from_json(records.parse_json(str(reply)))
        except (AttributeError, ValueError) as exc:
            raise StoreCorruptionError(f"Failed to parse stored flow {digest}: {exc}") from None
        if flow.digest != digest:
            raise StoreCorruptionError(f"Stored flow {digest} does not match its digest")
        return flow

    async def set_origin(self, run_id: str, origin: RunOrigin, *, owner: str | None = None) -> None:
        """Store the run's origin beside its record, fenced by ``owner``."""
        validate_run_id(run_id)
        text = check_origin(origin, run_id)
        reply = await self._script("set_origin", [self.keys.run(run_id)], [text, owner or ""])
        self._check_reply(run_id, "set_origin", reply)

    async def get_origin(self, run_id: str) -> RunOrigin | None:
        """The run's origin, or ``None`` when none was recorded."""
        validate_run_id(run_id)
        reply = await self._command("HMGET", self.keys.run(run_id), "info", "py:origin")
        if not isinstance(reply, list) or len(reply) != 2:
            raise self._odd_reply("HMGET", reply)
        if reply[0] is None:
            raise RunNotFoundError(run_id)
        if reply[1] is None:
            return None
        try:
            return RunOrigin.from_json(records.parse_json(str(reply[1])))
        except (AttributeError, ValueError) as exc:
            raise StoreCorruptionError(f"Failed to parse the origin of run '{run_id}': {exc}") from None

    async def get_run(self, run_id: str) -> RunRecord:
        """The run as stored, decoded from one ``HGETALL``."""
        validate_run_id(run_id)
        stored = await self._read(run_id)
        try:
            return RunRecord.from_json(stored.raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorruptionError(
                f"Failed to parse run '{run_id}' stored in Redis: {exc}"
            ) from None

    async def list_runs(
        self, *, status: RunStatus | None = None, limit: int = 100, after: str | None = None
    ) -> RunPage:
        """A page of summaries from the catalog in ST-20 order; stale entries are repaired."""
        check_limit(limit)
        if status is not None:
            try:
                status = RunStatus(status)
            except ValueError:
                raise InvalidInputError(f"Invalid status filter: {status}") from None
        cursor = cursor_for_filter(after, status)
        zset = self.keys.all if status is None else self.keys.status(str(status))
        bound = "+" if cursor is None else "(" + ordering_member(cursor.started, cursor.id)
        found: list[RunSummary] = []
        while len(found) <= limit:
            want = limit + 1 - len(found)
            count = want + PAGE_SLACK
            reply = await self._script("page", [zset], [bound, count, self.keys.prefix])
            if not isinstance(reply, list) or len(reply) % 3:
                raise self._odd_reply("page", reply)
            for i in range(0, len(reply), 3):
                member, summary_text, revision = reply[i : i + 3]
                bound = "(" + member
                summary = await self._verified(member, summary_text, revision, status)
                if summary is not None:
                    found.append(summary)
            if len(reply) < 3 * count:
                break
        if len(found) <= limit:
            return RunPage(runs=tuple(found), next_cursor=None)
        page = found[:limit]
        return RunPage(runs=tuple(page), next_cursor=encode_cursor(page[-1], status))

    async def delete_run(self, run_id: str) -> None:
        """Remove the run and its catalog entries; refused while its lease is live."""
        validate_run_id(run_id)
        now = timestamp_micros(now_timestamp())
        reply = await self._script("delete", self._catalog_keys(run_id), [run_id, now])
        if reply == "conflict":
            raise still_executing(run_id)
        self._check_reply(run_id, "delete", reply)
        self._incarnations.pop(run_id, None)

    # ------------------------------------------------------ leases (ST-50..52)
    async def acquire_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Take the run's lease for ``owner``, unless another owner's is still live."""
        reply = await self._lease(run_id, owner, ttl_s, "acquire")
        if reply == "held":
            raise lease_taken(run_id)
        if reply == "missing":
            raise RunNotFoundError(run_id)
        self._check_reply(run_id, "lease", reply)

    async def renew_lease(self, run_id: str, owner: str, ttl_s: float) -> None:
        """Extend ``owner``'s live lease; ``LeaseLostError`` when it is gone."""
        reply = await self._lease(run_id, owner, ttl_s, "renew")
        if reply == "lost":
            raise lease_lost(run_id)
        self._check_reply(run_id, "lease", reply)

    async def release_lease(self, run_id: str, owner: str) -> None:
        """Drop ``owner``'s lease, if it still holds it."""
        validate_run_id(run_id)
        await self._release(run_id, owner)

    async def get_lease(self, run_id: str) -> LeaseInfo | None:
        """The run's lease as held now, or ``None``."""
        validate_run_id(run_id)
        reply = await self._command(
            "HMGET", self.keys.run(run_id), "lease_owner", "lease_expires_micros"
        )
        if not isinstance(reply, list) or len(reply) != 2:
            raise self._odd_reply("HMGET", reply)
        if reply[0] is None:
            return None
        return LeaseInfo(owner=str(reply[0]), expires_micros=_micros(reply[1]))

    async def reconcile_expired(self, now_micros: int) -> list[str]:
        """Stall the unfinished runs whose lease expired (ST-52); their IDs."""
        expired = await self._command(
            "ZRANGEBYSCORE", self.keys.lease_expiry, "-inf", now_micros
        )
        if not isinstance(expired, list):
            raise self._odd_reply("ZRANGEBYSCORE", expired)
        stalled = []
        for run_id in expired:
            try:
                if await self._reconcile(run_id, now_micros):
                    stalled.append(run_id)
            except StoreCorruptionError as exc:  # one damaged run must not block the others
                log.warning("could not reconcile run %s: %s", run_id, exc)
        return stalled

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.client.aclose()

    # -------------------------------------------------------------- helpers
    async def _lease(self, run_id: str, owner: str, ttl_s: float, mode: str) -> object:
        validate_run_id(run_id)
        now = clock_micros()
        args: list[Arg] = [run_id, owner, expiry_after(ttl_s, now), now, self._ttl_arg, mode]
        return await self._script("lease", [self.keys.run(run_id), self.keys.lease_expiry], args)

    async def _release(self, run_id: str, owner: str, expires: str = "") -> None:
        """Drop ``owner``'s lease (only while it expires at ``expires``, when given).

        With ``owner`` ``""`` only a stale expiry entry, one whose hash holds no
        lease, is removed.
        """
        args: list[Arg] = [run_id, owner, expires, self._ttl_arg]
        reply = await self._script("release", [self.keys.run(run_id), self.keys.lease_expiry], args)
        if reply not in ("ok", "held"):
            raise self._odd_reply("release", reply)

    async def _reconcile(self, run_id: str, now_micros: int) -> bool:
        """ST-52 for one run whose expiry entry is due; True when it was stalled.

        The fold is guarded by the lease as read, so an owner renewing at the
        same moment wins: its run is left alone.
        """
        for attempt in range(FOLD_ATTEMPTS):
            try:
                stored = await self._read(run_id)
            except RunNotFoundError:
                await self._release(run_id, "")  # the run is gone (deleted or expired)
                return False
            owner, expires = stored.lease_owner, stored.lease_expires
            if owner is not None and _micros(expires) > now_micros:
                return False  # renewed meanwhile
            if owner is None or not is_unfinished(stored.raw["status"]):
                await self._release(run_id, owner or "", expires or "")
                return False
            stall_record(stored.raw, now_timestamp())
            args = self._fold_args(run_id, stored, guard=(owner, expires or ""))
            reply = await self._script("fold", self._catalog_keys(run_id), args)
            if reply == "ok":
                self._incarnations.pop(run_id, None)
                return True
            if reply not in ("conflict", "lease_changed", "missing"):
                raise self._odd_reply("fold", reply)
            await trio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise StoreUnavailableError(
            f"Run '{run_id}' changed {FOLD_ATTEMPTS} times while it was being reconciled"
        )

    def _catalog_keys(self, run_id: str) -> list[str]:
        return [self.keys.run(run_id), *self.keys.catalog()]

    async def _script(self, name: str, keys: list[str], args: list[Arg]) -> object:
        try:
            return await self.client.run_script(SCRIPTS[name], keys, args)
        except RedisReplyError as exc:
            raise self._refused(exc) from None

    async def _command(self, *args: Arg) -> object:
        try:
            return await self.client.call_args(args)
        except RedisReplyError as exc:
            raise self._refused(exc) from None

    def _refused(self, exc: RedisReplyError) -> StoreUnavailableError | StoreCorruptionError:
        if exc.code == "WRONGTYPE":
            return StoreCorruptionError(
                f"A key under prefix '{self.keys.prefix}' in Redis at "
                f"{self.address.display} holds the wrong kind of value: {exc}"
            )
        return StoreUnavailableError(f"Redis at {self.address.display} refused a command: {exc}")

    def _odd_reply(self, what: str, reply: object) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"Redis at {self.address.display} gave an unexpected reply to {what}: {reply!r:.80}"
        )

    def _check_reply(self, run_id: str, what: str, reply: object) -> None:
        if reply == "ok":
            return
        if reply == "missing":
            raise RunNotFoundError(run_id)
        if reply == "fenced":
            raise fenced(run_id)
        raise self._odd_reply(what, reply)

    async def _read(self, run_id: str) -> records.StoredRun:
        reply = await self._command("HGETALL", self.keys.run(run_id))
        if not isinstance(reply, list):
            raise self._odd_reply("HGETALL", reply)
        if not reply:
            raise RunNotFoundError(run_id)
        return records.decode_run(run_id, pairs(reply))

    async def _fold(self, run_id: str, change: Any, *, owner: str | None = None) -> None:
        """Rebuild ``info`` and ``summary`` from the full record after ``change(raw)``.

        Compare-and-swap on the fold token: only another fold (a status change)
        can conflict, and it is retried with jittered backoff. Task and context
        writes that land in between stay in their private fields, which the
        script leaves alone unless they still hold what was folded.
        """
        for attempt in range(FOLD_ATTEMPTS):
            stored = await self._read(run_id)
            change(stored.raw)
            args = self._fold_args(run_id, stored, owner=owner or "")
            reply = await self._script("fold", self._catalog_keys(run_id), args)
            if reply != "conflict":
                self._check_reply(run_id, "fold", reply)
                return
            await trio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 10)))
        raise StoreUnavailableError(
            f"Run '{run_id}' changed {FOLD_ATTEMPTS} times while its status was being set"
        )

    def _fold_args(
        self, run_id: str, stored: records.StoredRun, *, guard: tuple[str, str] = ("", ""),
        owner: str = "",
    ) -> list[Arg]:
        """ARGV of the fold script for ``stored.raw`` (see ``scripts.FOLD``)."""
        raw = stored.raw
        args: list[Arg] = [
            run_id,
            self._incarnations.get(run_id, ""),
            stored.base,
            _token(),
            self._ttl_arg,
            records.encode_info(raw),
            records.summary_head(raw),
            len(raw["tasks"]),
            ordering_member(raw["started"], run_id),
            _status_index(raw["status"]),
            len(stored.folded_tasks),
            *guard,
            owner,
        ]
        for name, text in stored.folded_tasks:
            args.append(name)
            args.append(text)
        for key, text in stored.folded_ctx:
            args.append(key)
            args.append(text)
        return args

    async def _verified(
        self, member: str, text: str, revision: str, status: RunStatus | None
    ) -> RunSummary | None:
        """The summary behind a catalog entry, or ``None`` after repairing a stale entry (ST-43)."""
        run_id = member_run_id(member)
        if run_id is None:
            raise StoreCorruptionError(
                f"Invalid run catalog member {member!r} under prefix '{self.keys.prefix}'"
            )
        if not text:
            await self._repair(run_id, member, revision, member, None)
            return None
        try:
            data = records.parse_json(text)
            summary = RunSummary.from_json(data)
            if summary.id != run_id or not isinstance(data.get("task_count"), int):
                raise ValueError("it does not describe the run its key names")
            if summary.started is not None and not is_timestamp(summary.started):
                raise ValueError("started is not an RFC 3339 timestamp")
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise StoreCorruptionError(
                f"Failed to parse the summary of run '{run_id}' stored in Redis: {exc}"
            ) from None
        expected = ordering_member(summary.started, run_id)
        if expected != member or (status is not None and summary.status != status):
            # Filed under the wrong position or status: re-file it and leave it out
            # of this page (its right place is elsewhere in the order or filter).
            await self._repair(run_id, member, revision, expected, str(summary.status))
            return None
        return summary

    async def _repair(
        self, run_id: str, member: str, revision: str, expected: str, status: str | None
    ) -> None:
        index = _status_index(status) if status is not None else 0
        args: list[Arg] = [run_id, member, revision, expected, index]
        reply = await self._script("repair", self._catalog_keys(run_id), args)
        log.debug("repaired run catalog entry %s: %s", member, reply)
