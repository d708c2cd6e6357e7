"""Submitting a run to a shared queue, and waiting for it to finish elsewhere.

A submitted run is recorded first (``pending``, with its stored flow and
origin, the same records a resume reads), then enqueued: a worker that
claims the message finds everything it needs in the store. Planning happens
here, so a flow that cannot run is refused before anything is written.

Waiting uses the run's ``run_finished`` event, which workers publish through
the queue; the store is read again only every ``CHECK_SECONDS`` as a safety
net for an event lost while the subscription reconnected.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import trio

from ironflow_core.engine.executor import RunExecutor
from ironflow_core.errors import IronflowError
from ironflow_core.model import Event, EventType, RunOrigin, RunRecord, RunStatus
from ironflow_core.queues import RunQueue

log = logging.getLogger("ironflow.queue")

CHECK_SECONDS = 5.0
"""How often a waiter re-reads the store in case a completion event was missed."""
STALLED_SETTLE_SECONDS = 2.0
"""A ``stalled`` run may be resumed by a worker (handed back, recovery): look again once."""


async def submit_run(executor: RunExecutor, queue: RunQueue, *,
                     overlay: Mapping[str, Any] | None = None) -> RunRecord:
    """Record the planned run ``pending`` with its flow and origin, then enqueue it.

    A ``RunConflictError`` from the store (the ID exists: an idempotency key
    used by another process) propagates before anything is enqueued.
    """
    flow = executor.flow
    if flow.origin is None:
        raise IronflowError(
            f"Flow '{flow.name}' has no source to store, so no worker could load it; "
            "submit it from a flow file"
        )
    store = executor.store
    record = executor.initial_record()
    digest = await store.save_flow(flow.origin)  # first: it needs no run
    await store.create_run(record)
    origin = RunOrigin(flow=digest, flow_name=flow.name, context=dict(executor.ctx))
    await store.set_origin(record.id, origin)
    await queue.enqueue(record.id, overlay=dict(overlay) if overlay else None)
    return record


class CompletionWaiters:
    """Wake whoever waits for a run when its ``run_finished`` event arrives.

    ``sink`` is the event callback handed to ``RunQueue.follow``; ``wait``
    returns the final record.
    """

    def __init__(self, store: Any, *, check_seconds: float = CHECK_SECONDS) -> None:
        self.store = store
        self.check_seconds = check_seconds
        self._waiting: dict[str, trio.Event] = {}

    def sink(self, event: Event) -> None:
        """A relayed event: wake whoever waits for that run to finish."""
        if event.type is EventType.RUN_FINISHED:
            waiter = self._waiting.get(event.run_id)
            if waiter is not None:
                waiter.set()

    async def wait(self, run_id: str) -> RunRecord:
        """The run's final record once it finishes on a worker (checks the store now and then too)."""
        settle_checked = False
        while True:
            waiter = self._waiting.setdefault(run_id, trio.Event())
            with trio.move_on_after(self.check_seconds):
                await waiter.wait()
            if waiter.is_set():
                self._waiting.pop(run_id, None)
            record = await self.store.get_run(run_id)
            if record.status is RunStatus.STALLED and not settle_checked:
                settle_checked = True  # a handed-back or recovered run goes on elsewhere
                await trio.sleep(STALLED_SETTLE_SECONDS)
                record = await self.store.get_run(run_id)
            if record.status.terminal:
                self._waiting.pop(run_id, None)
                return record
            if record.status is RunStatus.RUNNING:
                settle_checked = False
