"""Admitting, executing and draining runs in the server's own trio nursery (ENG-121, CLI-70).

Runs execute in a nursery that belongs to the server, not to the request: a
client that disconnects leaves its run going, and shutdown can wait for
every run, then cancel the stragglers so they are recorded ``cancelled``.

Admission counts a run from the moment its request passes the checks until
its record is final (loading included): ``IRONFLOW_MAX_CONCURRENT_RUNS``
caps that number (503 beyond it). How many admitted runs *execute* at once is
the engine's process-wide ``IRONFLOW_MAX_CONCURRENT_WORKFLOWS`` limiter;
the others wait as ``pending``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ironflow_core.api.errors import unavailable
from ironflow_core.api.events import EventRecorder, MemoryEventStore
from ironflow_core.engine import RunExecutor, open_resume, plan_flow, prepare_run
from ironflow_core.engine.events import notify
from ironflow_core.engine.resume import busy_run_error
from ironflow_core.errors import RunConflictError
from ironflow_core.model import Event, FlowDefinition, ProcessEventType, RunRecord
from ironflow_core.queues.submit import CompletionWaiters, submit_run
from ironflow_core.specs import StateStore

if TYPE_CHECKING:
    from ironflow_core.registry import Registry

log = logging.getLogger("ironflow.api")

DRAINING = "Server is shutting down and no longer accepts runs"
AT_CAPACITY = (
    "Server is at its limit of concurrent runs (IRONFLOW_MAX_CONCURRENT_RUNS); retry later"
)
CANCEL_WAIT_SECONDS = 30.0
"""How long cancelled runs get to record their final state at shutdown."""


class _CreationNotice:
    """A store proxy that signals once the run record exists (or creating it failed).

    The idempotency lock is held until then, so a concurrent retry with the
    same key always finds the record instead of starting a second run.
    """

    def __init__(self, store: StateStore, created: trio.Event) -> None:
        self._store = store
        self._created = created

    async def create_run(self, record: RunRecord) -> None:
        try:
            await self._store.create_run(record)
        finally:
            self._created.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@attrs.define(eq=False)
class RunHandle:
    """One run the server started: its executor and the events its request waits on."""
    executor: RunExecutor
    created: trio.Event = attrs.field(factory=trio.Event)
    done: trio.Event = attrs.field(factory=trio.Event)
    record: RunRecord | None = None
    error: Exception | None = None

    @property
    def run_id(self) -> str:
        """The run's ID (fixed when the executor was prepared)."""
        return self.executor.run_id


class Admission:
    """One admitted run; released exactly once, when its record is final."""

    def __init__(self, manager: RunManager) -> None:
        self._manager = manager
        self._released = False
        self._scope = trio.CancelScope()

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Loading the flow before launch: a drain cancels it when the grace is over.

        A load stuck in Lua would otherwise hold the shutdown (it runs in the
        request's task, not in the run nursery); cancelled, it answers 503.
        """
        manager = self._manager
        manager.preparing.add(self)
        if manager.cancelling:
            self._scope.cancel()
        try:
            with self._scope:
                yield
        finally:
            manager.preparing.discard(self)
        if self._scope.cancelled_caught:
            raise unavailable(DRAINING)

    def cancel(self) -> None:
        """Stop the flow load this admission is preparing (shutdown)."""
        self._scope.cancel()

    def release(self) -> None:
        """Give the run slot back (idempotent)."""
        if not self._released:
            self._released = True
            self._manager._release()


class RunManager:
    """Admits, starts, tracks and drains the server's runs, in the server nursery or through a shared queue."""
    def __init__(self, store: StateStore, events: MemoryEventStore, *, registry: Registry,
                 env: Mapping[str, str], max_runs: int, config_concurrency: int | None,
                 queue: Any = None) -> None:
        self.store = store
        self.queue = queue if queue is not None and queue.shared else None
        """A shared queue (issue 16): runs are recorded and enqueued, workers execute them."""
        self.waiters = CompletionWaiters(store)
        self.events = events
        self.registry = registry
        self.env = env
        self.max_runs = max_runs
        self.config_concurrency = config_concurrency
        self.nursery: trio.Nursery | None = None
        self.admitted = 0
        self.draining = False
        self.cancelling = False
        self.preparing: set[Admission] = set()
        self.stopped = trio.Event()
        """Set when every run is final and the HTTP server should stop."""
        self.active: dict[str, RunHandle] = {}
        self._idle = trio.Event()
        self._grace: trio.CancelScope | None = None
        self._locks: dict[str, tuple[trio.Lock, list[int]]] = {}

    # ------------------------------------------------------------ admission
    def admit(self) -> Admission:
        """Reserve a run slot or fail fast with 503 (API-11 step 5)."""
        observers = getattr(self.registry, "observers", ())
        if self.draining:
            notify(observers, ProcessEventType.ADMISSION_DECIDED, "draining", resource="run")
            raise unavailable(DRAINING)
        if self.max_runs and self.admitted >= self.max_runs:
            notify(observers, ProcessEventType.ADMISSION_DECIDED, "at_capacity", resource="run")
            raise unavailable(AT_CAPACITY)
        self.admitted += 1
        notify(observers, ProcessEventType.ADMISSION_DECIDED, "accepted", resource="run")
        return Admission(self)

    def _release(self) -> None:
        notify(getattr(self.registry, "observers", ()), ProcessEventType.ADMISSION_RELEASED, "released",
               resource="run")
        self.admitted -= 1
        if self.admitted == 0:
            self._idle.set()
            self._idle = trio.Event()

    async def wait_idle(self) -> None:
        """Return once no admitted run is left."""
        if self.admitted:
            await self._idle.wait()

    def is_active(self, run_id: str) -> bool:
        """Whether ``run_id`` is executing in this process."""
        return run_id in self.active

    def cancel(self, run_id: str) -> bool:
        """Cancel a run executing here (ENG-170); False when none is."""
        handle = self.active.get(run_id)
        if handle is None:
            return False
        handle.executor.cancel()
        return True

    @asynccontextmanager
    async def key_lock(self, run_id: str) -> AsyncIterator[None]:
        """Serialise requests that share an idempotent run id (API-22)."""
        entry = self._locks.get(run_id)
        if entry is None:
            entry = self._locks[run_id] = (trio.Lock(), [0])
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if not entry[1][0]:
                del self._locks[run_id]

    # ------------------------------------------------------------- running
    def launch(self, flow: FlowDefinition, context: dict[str, Any], admission: Admission, *,
               run_id: str | None = None, overlay: Mapping[str, Any] | None = None,
               wait: bool = True) -> RunHandle:
        """Plan the run and start it in the server nursery; owns ``admission`` on success.

        Planning errors (``FlowValidationError``) raise here, before any state.
        With a shared queue the run is recorded and enqueued instead, and
        (``wait``) its completion event awaited.
        """
        if self.cancelling or self.nursery is None:
            raise unavailable(DRAINING)
        created = trio.Event()
        executor = prepare_run(
            plan_flow(flow, self.registry),
            store=(self.store if self.queue is not None
                   else _CreationNotice(self.store, created)),  # type: ignore[arg-type]
            registry=self.registry,
            context=context,
            run_id=run_id,
            env=self.env,
            observers=[EventRecorder(self.events)],
            overlay=overlay,
            config_concurrency=self.config_concurrency,
        )
        handle = RunHandle(executor, created=created)
        self.active[handle.run_id] = handle
        self.events.open_run(handle.run_id)
        if self.queue is not None:
            self.nursery.start_soon(self._submit, handle, admission, overlay, wait,
                                    name=f"submit {handle.run_id}")
            return handle
        self.nursery.start_soon(self._execute, handle, admission, name=f"run {handle.run_id}")
        return handle

    async def _submit(self, handle: RunHandle, admission: Admission,
                      overlay: Mapping[str, Any] | None, wait: bool) -> None:
        """Record and enqueue (``created`` once it is queued), then await its completion."""
        assert self.queue is not None
        try:
            try:
                await submit_run(handle.executor, self.queue, overlay=overlay)
            finally:
                handle.created.set()
            if wait:
                handle.record = await self.waiters.wait(handle.run_id)
        except Exception as exc:
            handle.error = exc
        finally:
            handle.done.set()
            if self.active.get(handle.run_id) is handle:
                del self.active[handle.run_id]
            admission.release()

    def relay_event(self, event: Event) -> None:
        """An event of a run executing on a worker: feed SSE and wake its waiter."""
        self.events.append(event)
        self.waiters.sink(event)

    async def resume(self, run_id: str, *, count_recovery: bool = False) -> RunHandle:
        """Resume a run in place here (issue 14); takes its lease before anything else.

        A live lease elsewhere is a ``RunConflictError`` (HTTP 409) naming the
        holder; the run then executes in the server nursery like any other.
        """
        if self.cancelling or self.nursery is None:
            raise unavailable(DRAINING)
        if self.is_active(run_id):
            busy = RunConflictError(f"Run '{run_id}' is still executing")
            raise await busy_run_error(self.store, run_id, busy)
        admission = self.admit()
        try:
            executor = await open_resume(
                self.store, run_id, registry=self.registry, env=self.env,
                observers=[EventRecorder(self.events)], config_concurrency=self.config_concurrency,
                count_recovery=count_recovery,
            )
        except BaseException:
            admission.release()
            raise
        handle = RunHandle(executor)
        handle.created.set()
        self.active[run_id] = handle
        self.events.open_run(run_id)
        self.nursery.start_soon(self._execute, handle, admission, name=f"run {run_id}")
        return handle

    async def start_recovery(self, run_id: str) -> None:
        """``Recovery``'s way to start an automatic resume in this server."""
        await self.resume(run_id, count_recovery=True)

    async def _execute(self, handle: RunHandle, admission: Admission) -> None:
        try:
            handle.record = await handle.executor.run()
        except Exception as exc:  # never let one run take the server down
            handle.error = exc
        finally:
            handle.created.set()
            handle.done.set()
            if self.active.get(handle.run_id) is handle:
                del self.active[handle.run_id]
            admission.release()

    # ------------------------------------------------------------ shutdown
    async def shutdown(self, grace_seconds: float) -> None:
        """Drain: refuse new runs, give accepted ones the grace period, cancel the rest."""
        self.draining = True
        log.info("shutting down: waiting up to %ss for %d run(s)", grace_seconds, self.admitted)
        with trio.move_on_after(grace_seconds) as self._grace:
            await self.wait_idle()
        if self.admitted:
            self.cancelling = True
            log.warning("grace period over: cancelling %d run(s)", len(self.active))
            for admission in list(self.preparing):
                admission.cancel()
            for handle in list(self.active.values()):
                handle.executor.cancel()
            with trio.move_on_after(CANCEL_WAIT_SECONDS):
                await self.wait_idle()
        if self.admitted and self.nursery is not None:
            log.error("%d run(s) did not stop in time", self.admitted)
            self.nursery.cancel_scope.cancel()
        self.stopped.set()

    def skip_grace(self) -> None:
        """A second signal: cancel the remaining runs now."""
        if self._grace is not None:
            self._grace.cancel()
