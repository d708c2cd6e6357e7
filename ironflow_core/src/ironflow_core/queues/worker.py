"""``ironflow worker``: claim runs from a shared queue and execute them (issue 16).

A worker is one trio program with three background loops beside its runs:

* **claiming**: while it has a free slot (``--concurrency``), it reads new
  messages for its consumer name; each names a run recorded ``pending``;
* **heartbeat**: every third of the lease lifetime it announces itself
  (``ironflow workers``) and resets the idle time of the messages in hand;
* **reclaiming**: messages idle for longer than the lease lifetime belong to
  a worker that died (a live one keeps its messages fresh); it takes them
  over and applies the recovery mode (``IRONFLOW_RECOVERY``): ``resume``
  continues the run in place, ``stall`` leaves it ``stalled`` as upstream.

Safety rests on the run's owner lease, not on the queue: a run executes only
under its lease, every write is fenced by it, and a message is acknowledged
only once the final status is durable. So a message delivered twice, or a
takeover while the old owner still lives, never runs a recorded step again.

A message delivered more than ``IRONFLOW_RECOVERY_MAX_ATTEMPTS + 1`` times
killed every worker that took it: it is moved to the dead-letter stream and
its run is marked ``failed`` with that reason. On SIGTERM the worker stops
claiming, lets its runs finish within ``IRONFLOW_SHUTDOWN_GRACE_SECONDS``,
then stops the rest and hands them back (lease released, a fresh message
queued) so another worker continues them at once.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from ironflow_core.engine.executor import FinalStatusError, RunExecutor
from ironflow_core.engine.lease import OwnerLease, lease_ttl
from ironflow_core.engine.recovery import RecoverySettings
from ironflow_core.engine.resume import open_resume, stored_flow
from ironflow_core.errors import ConfigError, IronflowError, RunConflictError, RunNotFoundError
from ironflow_core.jsonutil import now_timestamp
from ironflow_core.model import Event, ProcessEvent, RunStatus, TaskStatus
from ironflow_core.queues import Delivery, RunQueue, WorkerInfo
from ironflow_core.settings import strict_non_negative_int
from ironflow_core.specs import StateStore
from ironflow_core.stores.leases import clock_micros

log = logging.getLogger("ironflow.worker")

FINISHED = (RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED)
DEFAULT_GRACE_SECONDS = 30.0
CLAIM_BLOCK_SECONDS = 1.0
HANDED_BACK = "worker shutting down: run handed back to the queue"


def dead_letter_reason(deliveries: int, max_attempts: int) -> str:
    """Why a run was dead-lettered, for its record and the log."""
    return (
        f"run moved to the dead-letter stream: it was delivered {deliveries} times and its "
        f"worker died each time (IRONFLOW_RECOVERY_MAX_ATTEMPTS={max_attempts})"
    )


@attrs.frozen
class WorkerSettings:
    """How one ``ironflow worker`` runs: its name, concurrency, grace, lease and recovery."""
    name: str
    concurrency: int = 4
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    lease_ttl: float = 90.0
    recovery: RecoverySettings = attrs.field(factory=RecoverySettings)
    claim_block_seconds: float = CLAIM_BLOCK_SECONDS

    @property
    def heartbeat_seconds(self) -> float:
        """Heartbeat and lease renewal interval: a third of the lease lifetime."""
        return self.lease_ttl / 3

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, name: str | None = None,
                 concurrency: int | None = None) -> WorkerSettings:
        """Settings from the environment and the command's flags (``ConfigError`` for bad values)."""
        grace = strict_non_negative_int(env, "IRONFLOW_SHUTDOWN_GRACE_SECONDS")
        if concurrency is not None and concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        return cls(
            name=name or f"{socket.gethostname()}-{os.getpid()}",
            concurrency=concurrency or 4,
            grace_seconds=DEFAULT_GRACE_SECONDS if grace is None else float(grace),
            lease_ttl=lease_ttl(env),
            recovery=RecoverySettings.from_env(env),
        )


@attrs.define(eq=False)
class _InHand:
    delivery: Delivery
    executor: RunExecutor | None = None
    handing_back: bool = False


class EventPublisher:
    """A run observer that forwards every event to the queue, batched, off the engine's path."""

    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[Event](10_000)

    def on_event(self, event: Event | ProcessEvent) -> None:
        """Queue a run event for forwarding (process events stay in this process)."""
        if not isinstance(event, Event):
            return
        try:
            self.send.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError):
            log.warning("event of run %s dropped: the publisher is behind", event.run_id)

    async def forward(self, queue: RunQueue) -> None:
        """Publish until the channel closes; every event already sent is published."""
        async with self.receive:
            async for event in self.receive:
                batch = [event]
                while len(batch) < 500:
                    try:
                        batch.append(self.receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                try:
                    await queue.publish(batch)
                except Exception as exc:  # events are best-effort; the store has the truth
                    log.warning("could not publish %d event(s): %s", len(batch), exc)


class Worker:
    """Claims and executes runs until ``stop()``; see the module docstring."""

    def __init__(self, queue: RunQueue, store: StateStore, *, registry: Any,
                 env: Mapping[str, str], settings: WorkerSettings,
                 config_concurrency: int | None = None) -> None:
        self.queue = queue
        self.store = store
        self.registry = registry
        self.env = env
        self.settings = settings
        self.config_concurrency = config_concurrency
        self.active: dict[str, _InHand] = {}
        self.stopping = False
        self.publisher = EventPublisher()
        self._freed = trio.Event()
        self._stop_claiming = trio.CancelScope()
        self._runs: trio.Nursery | None = None
        self._grace: trio.CancelScope | None = None
        self.counts = {"claimed": 0, "reclaimed": 0, "finished": 0, "handed_back": 0,
                       "dead_lettered": 0}

    # ------------------------------------------------------------- life
    async def serve(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until stopped, then drain; started once the first heartbeat is out."""
        await self._heartbeat()
        try:
            async with trio.open_nursery() as outer:
                # The forwarder ends once the channel is closed and every event is out.
                outer.start_soon(self.publisher.forward, self.queue)
                async with trio.open_nursery() as background:
                    background.start_soon(self._keep_beating)
                    async with trio.open_nursery() as runs:
                        runs.start_soon(self._reclaim_loop)
                        task_status.started()
                        await self._claim_loop(runs)
                        await self._drain()
                        runs.cancel_scope.cancel()  # only the reclaim loop is left
                    background.cancel_scope.cancel()
                await self.publisher.send.aclose()
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self.queue.leave(self.settings.name)
                except Exception as exc:
                    log.warning("could not sign off worker %s: %s", self.settings.name, exc)

    def stop(self) -> None:
        """Stop claiming; running runs get the grace period, then are handed back."""
        if not self.stopping:
            log.info("worker %s stopping: %d run(s) in hand", self.settings.name,
                     len(self.active))
        self.stopping = True
        self._stop_claiming.cancel()
        self._freed.set()

    def skip_grace(self) -> None:
        """A second signal: hand the remaining runs back now."""
        if self._grace is not None:
            self._grace.cancel()

    async def _drain(self) -> None:
        with trio.move_on_after(self.settings.grace_seconds) as self._grace:
            while self.active:
                await self._wait_freed()
        for entry in list(self.active.values()):
            entry.handing_back = True
            if entry.executor is not None:
                entry.executor.interrupt(HANDED_BACK)
        while self.active:
            await self._wait_freed()

    async def _wait_freed(self) -> None:
        await self._freed.wait()
        self._freed = trio.Event()

    # ---------------------------------------------------------- claiming
    async def _claim_loop(self, runs: trio.Nursery) -> None:
        self._runs = runs
        with self._stop_claiming:
            while not self.stopping:
                free = self.settings.concurrency - len(self.active)
                if free <= 0:
                    await self._wait_freed()
                    continue
                try:
                    deliveries = await self.queue.claim(
                        self.settings.name, free, self.settings.claim_block_seconds)
                except Exception as exc:
                    log.warning("could not claim runs: %s", exc)
                    await trio.sleep(1.0)
                    continue
                for delivery in deliveries:
                    self.counts["claimed"] += 1
                    self._start(runs, delivery)

    async def _reclaim_loop(self) -> None:
        """Take over the messages of dead workers (idle for longer than a lease lifetime)."""
        while True:
            await trio.sleep(self.settings.lease_ttl / 2)
            if self.stopping:
                return
            free = self.settings.concurrency - len(self.active)
            if free <= 0:
                continue
            try:
                deliveries = await self.queue.reclaim(
                    self.settings.name, self.settings.lease_ttl, free)
            except Exception as exc:
                log.warning("could not look for abandoned runs: %s", exc)
                continue
            for delivery in deliveries:
                if delivery.run_id in self.active:
                    continue
                self.counts["reclaimed"] += 1
                log.warning("taking over run %s (delivery %d) from a worker that stopped "
                            "answering", delivery.run_id, delivery.deliveries)
                assert self._runs is not None
                self._start(self._runs, delivery)

    def _start(self, runs: trio.Nursery, delivery: Delivery) -> None:
        if delivery.run_id in self.active:  # a duplicate message: the lease decides later
            return
        entry = self.active[delivery.run_id] = _InHand(delivery)
        runs.start_soon(self._handle, entry, name=f"run {delivery.run_id}")

    # -------------------------------------------------------- heartbeat
    async def _keep_beating(self) -> None:
        while True:
            await trio.sleep(self.settings.heartbeat_seconds)
            await self._heartbeat()

    async def _heartbeat(self) -> None:
        info = WorkerInfo(
            name=self.settings.name, host=socket.gethostname(), pid=os.getpid(),
            concurrency=self.settings.concurrency, runs=tuple(sorted(self.active)),
            heartbeat=now_timestamp(),
        )
        try:
            await self.queue.heartbeat(info, self.settings.lease_ttl)
            if self.active:
                await self.queue.touch(self.settings.name,
                                       [entry.delivery for entry in self.active.values()])
        except Exception as exc:
            log.warning("heartbeat failed: %s", exc)

    # ---------------------------------------------------------- one run
    async def _handle(self, entry: _InHand) -> None:
        delivery = entry.delivery
        try:
            executor = await self._open(delivery)
            if executor is None:
                return
            entry.executor = executor
            if entry.handing_back:  # the grace period ended while it was opening
                executor.interrupt(HANDED_BACK)
            try:
                record = await executor.run()
            except FinalStatusError as exc:
                log.error("%s; its message stays pending", exc)
                return
            if entry.handing_back:
                await self.queue.hand_back(delivery)
                self.counts["handed_back"] += 1
                log.info("run %s handed back", delivery.run_id)
            elif executor.lost_lease is None and record.status in FINISHED:
                await self.queue.ack(delivery)
                self.counts["finished"] += 1
            else:  # stalled or taken over: the message stays for recovery
                log.warning("run %s ended %s; its message stays pending for recovery",
                            delivery.run_id, record.status)
        except RunConflictError as exc:
            log.info("run %s is not ours to execute now: %s", delivery.run_id, exc)
        except Exception as exc:
            log.error("run %s: %s; its message stays pending", delivery.run_id, exc)
        finally:
            self.active.pop(delivery.run_id, None)
            self._freed.set()

    async def _open(self, delivery: Delivery) -> RunExecutor | None:
        """The executor for a claimed run, or ``None`` when there is nothing to execute."""
        run_id = delivery.run_id
        try:
            record = await self.store.get_run(run_id)
        except RunNotFoundError:
            log.warning("run %s is gone from the store; dropping its message", run_id)
            await self.queue.ack(delivery)
            return None
        if record.status in FINISHED:
            await self.queue.ack(delivery)
            return None
        limit = self.settings.recovery.max_attempts
        if delivery.deliveries > limit + 1 and not delivery.handed_back:
            await self._dead_letter(delivery, dead_letter_reason(delivery.deliveries, limit))
            return None
        observers = [self.publisher]
        fresh = record.status is RunStatus.PENDING and all(
            task.status is TaskStatus.PENDING for task in record.tasks.values())
        if fresh:
            return await open_claimed(
                self.store, run_id, registry=self.registry, env=self.env,
                observers=observers, config_concurrency=self.config_concurrency,
                overlay=delivery.overlay,
            )
        if delivery.handed_back or self.settings.recovery.mode == "resume":
            try:
                return await open_resume(
                    self.store, run_id, registry=self.registry, env=self.env,
                    observers=observers, config_concurrency=self.config_concurrency,
                    count_recovery=not delivery.handed_back,
                )
            except IronflowError as exc:
                if "already succeeded" in str(exc):
                    # Its worker died after the final status but before letting go: drop
                    # that worker's expired lease too (a reconciliation pass does so for
                    # finished runs), then the message.
                    await self.store.reconcile_expired(clock_micros())
                    await self.queue.ack(delivery)
                    return None
                raise
        # IRONFLOW_RECOVERY=stall: the dead worker's run ends ``stalled``, as upstream.
        await self.store.reconcile_expired(clock_micros())
        if (await self.store.get_run(run_id)).status is RunStatus.STALLED:
            log.warning("run %s left stalled (IRONFLOW_RECOVERY=stall)", run_id)
            await self.queue.ack(delivery)
        return None

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Mark the run ``failed`` with ``reason`` under its lease, then move the message."""
        lease = OwnerLease(self.store, delivery.run_id, self.settings.lease_ttl)
        await lease.acquire()  # a live owner after all: RunConflictError, message left
        try:
            record = await self.store.get_run(delivery.run_id)
            stopped = []
            for task in record.tasks.values():
                if not task.status.terminal:
                    task.status = (TaskStatus.FAILED if task.status is TaskStatus.RUNNING
                                   else TaskStatus.SKIPPED)
                    task.error = reason
                    task.finished = now_timestamp()
                    stopped.append(task)
            if stopped:
                await self.store.upsert_tasks(delivery.run_id, stopped, owner=lease.owner)
            await self.store.set_status(delivery.run_id, RunStatus.FAILED, owner=lease.owner)
        finally:
            await lease.release()
        await self.queue.dead_letter(delivery, reason)
        self.counts["dead_lettered"] += 1
        log.error("run %s: %s", delivery.run_id, reason)


async def open_claimed(
    store: StateStore, run_id: str, *, registry: Any, env: Mapping[str, str],
    observers: Any = (), config_concurrency: int | None = None,
    overlay: Mapping[str, Any] | None = None,
) -> RunExecutor:
    """Prepare the first execution of a submitted run: lease first, then its stored flow.

    The record and origin exist already (``submit_run``); the run starts from
    its origin's context as a fresh run (``run_started``, status ``running``).
    """
    from ironflow_core.engine import plan_flow, prepare_run

    lease = OwnerLease(store, run_id, lease_ttl(env))
    await lease.acquire()
    try:
        origin = await store.get_origin(run_id)
        flow = await stored_flow(store, run_id, origin, registry=registry, env=env)
        assert origin is not None
        executor = prepare_run(
            plan_flow(flow, registry), store=store, registry=registry, context=origin.context,
            env=env,
            run_id=run_id, observers=observers, config_concurrency=config_concurrency,
            overlay=overlay, resume_lease=lease, origin=origin,
        )
        executor.resume_in_place = False  # nothing ran yet: start, not resume
        return executor
    except BaseException:
        with trio.CancelScope(shield=True):
            await lease.release()
        raise
