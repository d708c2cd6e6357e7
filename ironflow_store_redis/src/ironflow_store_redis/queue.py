"""The ``redis`` run queue: a Redis Stream read by a consumer group (issue 16).

Keys (``{p}`` is ``REDIS_PREFIX``); the hash tag ``{queue}`` keeps them in one
slot of a Redis Cluster, so the scripts below may touch several at once::

    {p}{queue}:runs       STREAM  one message per run to execute: run_id [overlay] [handed_back]
    {p}{queue}:dead       STREAM  dead letters: run_id, reason, deliveries, at
    {p}{queue}:workers    HASH    worker name -> JSON heartbeat (expires_micros inside)
    {p}{queue}:events     Pub/Sub channel of run events (JSON), for SSE and waiting submitters

The consumer group ``workers`` gives at-least-once delivery: a message stays
in the pending list of the worker that read it until ``XACK``; a worker that
dies leaves it there, and a live one takes it over with ``XAUTOCLAIM`` once it
has been idle for a lease lifetime (live workers keep theirs fresh with
``XCLAIM ... JUSTID`` on every heartbeat). Acknowledged messages are deleted,
so the stream holds only work not yet done.

Events go through Pub/Sub rather than a stream per run: one ``PUBLISH`` per
event batch and no storage, one subscription per server whatever the number
of runs, and no key per run to expire. What Pub/Sub loses (a subscriber that
reconnects misses events) is not the source of truth: the run's record is in
the store, and waiters re-read it (``submit.CompletionWaiters``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio

from ironflow_core.storekit import (
    Delivery,
    Event,
    EventSink,
    EventType,
    QueueStatus,
    WorkerInfo,
    clock_micros,
    dumps,
    now_timestamp,
)
from ironflow_store_redis.address import RedisAddress
from ironflow_store_redis.client import RedisClient, RedisReplyError, Subscription, pairs

log = logging.getLogger("ironflow.queue")

GROUP = "workers"

_ACK = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
"""

_HAND_BACK = """
local fields = {'run_id', ARGV[3], 'handed_back', '1'}
if ARGV[4] ~= '' then table.insert(fields, 'overlay'); table.insert(fields, ARGV[4]) end
local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return id
"""

_DEAD_LETTER = """
redis.call('XADD', KEYS[2], '*', 'run_id', ARGV[3], 'reason', ARGV[4],
           'deliveries', ARGV[5], 'at', ARGV[6], 'message_id', ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
"""

_LEAVE = """
redis.call('HDEL', KEYS[2], ARGV[2])
local held = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #held == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""

_RECLAIM = """
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0',
                           'COUNT', ARGV[4])
local out = {}
for _, message in ipairs(claimed[2]) do
  if message[2] then
    local info = redis.call('XPENDING', KEYS[1], ARGV[1], message[1], message[1], 1)
    local times = 1
    if info[1] then times = info[1][4] end
    table.insert(out, {message[1], times, message[2]})
  end
end
return out
"""

_PUBLISH = """
for i = 1, #ARGV do redis.call('PUBLISH', KEYS[1], ARGV[i]) end
return #ARGV
"""


class RedisQueue:
    """``RunQueue`` over Redis Streams; commands go through the store's ``RedisClient``."""

    name = "redis"
    shared = True

    def __init__(self, address: RedisAddress, *, prefix: str) -> None:
        self.client = RedisClient(address)
        base = f"{prefix}{{queue}}"
        self.stream = f"{base}:runs"
        self.dead = f"{base}:dead"
        self.workers_key = f"{base}:workers"
        self.channel = f"{base}:events"
        self._group_ready = False

    # ---------------------------------------------------------- producing
    async def enqueue(self, run_id: str, *, overlay: dict[str, Any] | None = None,
                      handed_back: bool = False) -> None:
        """Add one run to the stream; ``handed_back`` marks a run a stopping worker gave up."""
        fields: list[str] = ["run_id", run_id]
        if overlay:
            fields += ["overlay", dumps(overlay)]
        if handed_back:
            fields += ["handed_back", "1"]
        await self.client.call("XADD", self.stream, "*", *fields)

    # ---------------------------------------------------------- consuming
    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self.client.call("XGROUP", "CREATE", self.stream, GROUP, "0", "MKSTREAM")
        except RedisReplyError as exc:
            if exc.code != "BUSYGROUP":
                raise
        self._group_ready = True

    async def claim(self, consumer: str, count: int, block_s: float) -> list[Delivery]:
        """Read new messages for ``consumer``; malformed ones are acknowledged, never run."""
        await self._ensure_group()
        reply = await self.client.call(
            "XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count,
            "BLOCK", max(1, int(block_s * 1000)), "STREAMS", self.stream, ">",
        )
        deliveries = []
        for _stream, messages in _stream_entries(reply):
            for message_id, fields in messages:
                delivery = _delivery(message_id, fields, 1)
                if delivery is not None:
                    deliveries.append(delivery)
                else:  # not ours to read: never execute, never block the group
                    await self.client.run_script(_ACK, [self.stream], [GROUP, message_id])
        return deliveries

    async def reclaim(self, consumer: str, min_idle_s: float, count: int) -> list[Delivery]:
        """Take over messages a dead worker left pending for longer than ``min_idle_s``."""
        await self._ensure_group()
        reply: Any = await self.client.run_script(
            _RECLAIM, [self.stream], [GROUP, consumer, int(min_idle_s * 1000), count])
        deliveries = []
        for message_id, times, fields in reply or ():
            delivery = _delivery(message_id, fields, int(times))
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries

    async def touch(self, consumer: str, deliveries: list[Delivery]) -> None:
        """Reset the idle time of runs still in progress so no other worker reclaims them."""
        if deliveries:
            await self.client.call("XCLAIM", self.stream, GROUP, consumer, 0,
                                   *[d.message_id for d in deliveries], "JUSTID")

    async def ack(self, delivery: Delivery) -> None:
        """Mark a run done: acknowledge and delete its message."""
        await self.client.run_script(_ACK, [self.stream], [GROUP, delivery.message_id])

    async def hand_back(self, delivery: Delivery) -> None:
        """Requeue a run this worker will not finish (shutdown), atomically with its ack."""
        overlay = dumps(delivery.overlay) if delivery.overlay else ""
        await self.client.run_script(
            _HAND_BACK, [self.stream], [GROUP, delivery.message_id, delivery.run_id, overlay])

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move a run that cannot be executed to the dead-letter stream, with the reason."""
        await self.client.run_script(
            _DEAD_LETTER, [self.stream, self.dead],
            [GROUP, delivery.message_id, delivery.run_id, reason, delivery.deliveries,
             now_timestamp()],
        )

    # ------------------------------------------------------------ workers
    async def heartbeat(self, info: WorkerInfo, ttl_s: float) -> None:
        """Publish this worker's state with an expiry, so status shows only live workers."""
        data = {**info.to_json(), "expires_micros": clock_micros() + int(ttl_s * 1_000_000)}
        await self.client.call("HSET", self.workers_key, info.name, dumps(data))

    async def leave(self, name: str) -> None:
        """Sign off: drop this worker's heartbeat, and its consumer when it holds no messages."""
        await self._ensure_group()
        await self.client.run_script(_LEAVE, [self.stream, self.workers_key], [GROUP, name])

    async def live_workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired; expired entries are removed on the way."""
        return await self._live(pairs(await self.client.call("HGETALL", self.workers_key)))

    async def _live(self, raw: dict[str, Any]) -> list[WorkerInfo]:
        """The live workers among heartbeats read from the workers hash; drops expired ones."""
        now = clock_micros()
        live, gone = [], []
        for name, text in sorted(raw.items()):
            try:
                data = json.loads(text)
                expired = int(data.get("expires_micros", 0)) <= now
            except (ValueError, TypeError, AttributeError):
                data, expired = {}, True
            if expired:
                gone.append(name)
                continue
            live.append(WorkerInfo(
                name=name, host=str(data.get("host", "")), pid=int(data.get("pid", 0)),
                concurrency=int(data.get("concurrency", 0)),
                runs=tuple(data.get("runs", ())), heartbeat=str(data.get("last_heartbeat", "")),
            ))
        if gone:  # a worker that died without signing off
            await self.client.call("HDEL", self.workers_key, *gone)
        return live

    async def status(self) -> QueueStatus:
        """Depth, pending, dead letters and live workers, for ``ironflow queue status`` and the API.

        The three reads go in one pipelined round trip.
        """
        await self._ensure_group()
        groups, dead, workers = await self.client.pipeline([
            ("XINFO", "GROUPS", self.stream), ("XLEN", self.dead), ("HGETALL", self.workers_key),
        ])
        depth = pending = 0
        for group in groups or ():
            entry = pairs(group)
            if entry.get("name") == GROUP:
                pending = int(entry.get("pending") or 0)
                lag = entry.get("lag")
                depth = int(lag) if lag is not None else 0
        return QueueStatus(name=self.name, depth=depth, pending=pending, dead=int(dead or 0),
                           workers=tuple(await self._live(pairs(workers))))

    async def dead_letters(self, limit: int = 100) -> list[dict[str, str]]:
        """The oldest ``limit`` dead letters, for an operator to inspect."""
        reply: Any = await self.client.call("XRANGE", self.dead, "-", "+", "COUNT", limit)
        return [{"id": message_id, **pairs(fields)} for message_id, fields in reply or ()]

    # ------------------------------------------------------------- events
    async def publish(self, events: list[Event]) -> None:
        """Send an event batch to every subscriber (SSE streams, waiting submitters) in one round trip."""
        if events:
            await self.client.run_script(
                _PUBLISH, [self.channel], [dumps(event.to_json()) for event in events])

    async def follow(self, sink: EventSink, *,
                     task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Feed ``sink`` with every published event; reconnects after a failure.

        The subscription has a connection of its own (``RedisClient.subscribe``),
        read in this task; what is published while it reconnects is lost, which
        waiters tolerate (they re-read the run).
        """
        started = False
        while True:
            subscription: Subscription | None = None
            try:
                subscription = await self.client.subscribe(self.channel)
                if not started:
                    started = True
                    task_status.started()
                while True:
                    event = _event(await subscription.receive())
                    if event is not None:
                        sink(event)
            except Exception as exc:  # Redis gone or refusing: retry; never end the follower
                log.warning("event subscription lost (%s); reconnecting", exc)
                if not started:
                    started = True
                    task_status.started()
                await trio.sleep(1.0)
            finally:
                if subscription is not None:
                    subscription.close()

    async def aclose(self) -> None:
        """Release the connection pool."""
        await self.client.aclose()


def _stream_entries(reply: Any) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3 shape
        return list(reply.items())
    return [(entry[0], entry[1]) for entry in reply]


def _delivery(message_id: str, fields: Any, times: int) -> Delivery | None:
    fields = pairs(fields)
    run_id = fields.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        log.error("queue message %s names no run; dropping it", message_id)
        return None
    overlay = None
    if fields.get("overlay"):
        try:
            overlay = json.loads(fields["overlay"])
        except ValueError:
            overlay = None
    return Delivery(message_id=message_id, run_id=run_id, deliveries=max(1, times),
                    handed_back=fields.get("handed_back") == "1", overlay=overlay)


def _event(data: Any) -> Event | None:
    try:
        raw = json.loads(data)
        fields = {k: raw.get(k) for k in ("flow_name", "run_status", "step", "node_type",
                                          "task_status", "attempt", "duration_ms", "error",
                                          "reason")}
        return Event(id=str(raw["id"]), run_id=str(raw["run_id"]),
                     type=EventType(raw["type"]), timestamp=str(raw["timestamp"]), **fields)
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed event on the events channel")
        return None
