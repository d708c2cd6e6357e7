"""Closing the runs of processes that died (CONTRACT §8.6 ST-52, CLI-70).

A process that executes a run renews the run's owner lease every 30 s. When
the lease has expired and the run is still ``pending``/``running``, nobody
will ever finish it: ``ironflow serve`` reconciles such runs to ``stalled``
once before it serves (bounded to 30 s) and every 30 s after that. A failing
pass is logged and retried at the next tick; it never stops the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import trio

from ironflow_core.engine.events import notify
from ironflow_core.model import ProcessEventType
from ironflow_core.specs import StateStore
from ironflow_core.stores.leases import clock_micros

log = logging.getLogger("ironflow.api")

STARTUP_BOUND_SECONDS = 30.0
INTERVAL_SECONDS = 30.0


async def reconcile_pass(store: StateStore, observers: Iterable[Any] = ()) -> list[str]:
    """One pass: stall every run whose lease expired; returns their IDs (logged)."""
    try:
        stalled = await store.reconcile_expired(clock_micros())
    except Exception as exc:  # the next tick retries; the server keeps serving
        log.warning("could not reconcile stale runs: %s", exc)
        notify(observers, ProcessEventType.LEASE_CHANGED, "reconciliation_failed",
               detail=str(exc))
        return []
    for run_id in stalled:
        log.warning("run %s marked stalled: its execution-owner lease expired", run_id)
    return stalled


async def keep_reconciling(store: StateStore, *, observers: Iterable[Any] = (),
                           task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Start-up pass, then ``task_status.started()``, then a pass every 30 s until cancelled."""
    with trio.move_on_after(STARTUP_BOUND_SECONDS) as bound:
        await reconcile_pass(store, observers)
    if bound.cancelled_caught:
        log.warning("reconciling stale runs took longer than %gs at start-up; "
                    "the next pass follows in %gs", STARTUP_BOUND_SECONDS, INTERVAL_SECONDS)
    task_status.started()
    while True:
        await trio.sleep(INTERVAL_SECONDS)
        await reconcile_pass(store, observers)
