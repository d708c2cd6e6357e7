"""Closing or continuing the runs of processes that died (ST-52, CLI-70).

``ironflow serve`` runs one recovery pass (``engine.recovery.Recovery``) once
before it serves (bounded to 30 s) and every 30 s after that: runs whose
owner lease expired are reconciled to ``stalled`` and, with
``IRONFLOW_RECOVERY=resume``, resumed in place through the run manager. A
failing pass is logged and retried at the next tick; it never stops the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import trio

from ironflow_core.engine.recovery import Recovery, RecoverySettings
from ironflow_core.specs import StateStore

log = logging.getLogger("ironflow.api")

STARTUP_BOUND_SECONDS = 30.0
INTERVAL_SECONDS = 30.0


async def reconcile_pass(store: StateStore, observers: Iterable[Any] = ()) -> list[str]:
    """One stall-only pass: stall every run whose lease expired; returns their IDs (logged)."""
    report = await Recovery(store, settings=RecoverySettings(), observers=observers).tick()
    return list(report.stalled)


async def keep_reconciling(store: StateStore, *, recovery: Recovery | None = None,
                           task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Start-up pass, then ``task_status.started()``, then a pass every 30 s until cancelled."""
    recovery = recovery or Recovery(store, settings=RecoverySettings())
    with trio.move_on_after(STARTUP_BOUND_SECONDS) as bound:
        await recovery.tick()
    if bound.cancelled_caught:
        log.warning("reconciling stale runs took longer than %gs at start-up; "
                    "the next pass follows in %gs", STARTUP_BOUND_SECONDS, INTERVAL_SECONDS)
    task_status.started()
    while True:
        await trio.sleep(INTERVAL_SECONDS)
        await recovery.tick()
