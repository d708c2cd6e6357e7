"""Recovering the runs of processes that died (ST-52, semantics.md#design-durable-runs).

A run whose owner lease expired while it was ``pending``/``running`` has no
process left to finish it. One recovery pass first reconciles such runs to
``stalled`` (the store does that atomically, so of N processes only one gets
each run), then applies ``IRONFLOW_RECOVERY``:

* ``stall`` (default, as upstream): the run stays ``stalled``; a person may
  ``ironflow resume`` it.
* ``resume``: a run whose flow is stored is resumed in place by this process,
  at most ``IRONFLOW_RECOVERY_MAX_ATTEMPTS`` times (default 3) over its life,
  then left ``stalled``.

``Recovery`` is the reusable part: ``ironflow serve`` calls ``tick`` at
start-up and on every reconciliation tick, and a worker process can do the
same with its own way of starting a resumed run (``start``). A resume that
cannot start now (no free run slot, the store is unreachable) is retried on
the next tick while this process lives.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs
import trio

from ironflow_core.engine.events import notify
from ironflow_core.errors import IronflowError
from ironflow_core.model import ProcessEventType
from ironflow_core.settings import RECOVERY, RECOVERY_MAX_ATTEMPTS
from ironflow_core.specs import StateStore
from ironflow_core.stores.leases import clock_micros

log = logging.getLogger("ironflow.recovery")

DEFAULT_MAX_ATTEMPTS: int = RECOVERY_MAX_ATTEMPTS.default


@attrs.frozen
class RecoverySettings:
    """``IRONFLOW_RECOVERY`` and ``IRONFLOW_RECOVERY_MAX_ATTEMPTS`` (strict: a typo is an error)."""

    mode: str = "stall"
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RecoverySettings:
        """Read both settings (``ConfigError`` for a bad value)."""
        return cls(mode=RECOVERY.read(env), max_attempts=RECOVERY_MAX_ATTEMPTS.read(env))


StartResume = Callable[[str], Awaitable[Any]]
"""Start an in-place resume of a run (counted as a recovery) and return once it runs."""


@attrs.frozen
class RecoveryReport:
    """What one recovery tick did: runs stalled, resumed, and left stalled (over the attempt limit)."""
    stalled: tuple[str, ...] = ()
    resumed: tuple[str, ...] = ()
    left_stalled: tuple[str, ...] = ()


class Recovery:
    """Reconcile orphaned runs and, in ``resume`` mode, continue them in place."""

    def __init__(
        self,
        store: StateStore,
        *,
        settings: RecoverySettings,
        start: StartResume | None = None,
        observers: Iterable[Any] = (),
    ) -> None:
        self.store = store
        self.observers = tuple(observers)
        """Receive ``lease_changed`` (``reconciliation_failed``) process events."""
        self.settings = settings
        self.start = start
        self.retry: set[str] = set()
        """Runs whose resume could not start yet; tried again on the next tick."""

    async def tick(self) -> RecoveryReport:
        """One pass; failures are logged, never raised (the next tick tries again)."""
        try:
            stalled = await self.store.reconcile_expired(clock_micros())
        except Exception as exc:
            log.warning("could not reconcile stale runs: %s", exc)
            notify(self.observers, ProcessEventType.LEASE_CHANGED, "reconciliation_failed",
                   detail=str(exc))
            stalled = []
        for run_id in stalled:
            log.warning("run %s marked stalled: its execution-owner lease expired", run_id)
        if self.settings.mode != "resume" or self.start is None:
            return RecoveryReport(stalled=tuple(stalled))
        candidates = [*stalled, *sorted(self.retry - set(stalled))]
        resumed, left = [], []
        for run_id in candidates:
            outcome = await self._resume(run_id)
            if outcome is True:
                resumed.append(run_id)
            elif outcome is False:
                left.append(run_id)
        return RecoveryReport(tuple(stalled), tuple(resumed), tuple(left))

    async def _resume(self, run_id: str) -> bool | None:
        """True = resumed, False = stays stalled for good, None = try again later."""
        self.retry.discard(run_id)
        try:
            origin = await self.store.get_origin(run_id)
        except Exception as exc:
            log.warning("run %s stays stalled for now: %s", run_id, exc)
            self.retry.add(run_id)
            return None
        if origin is None or origin.flow is None:
            log.warning("run %s stays stalled: it has no stored flow to resume", run_id)
            return False
        if origin.recoveries >= self.settings.max_attempts:
            log.warning("run %s stays stalled: it was recovered %d time(s) already "
                        "(IRONFLOW_RECOVERY_MAX_ATTEMPTS)", run_id, origin.recoveries)
            return False
        assert self.start is not None
        try:
            await self.start(run_id)
        except IronflowError as exc:
            if "already succeeded" in str(exc) or "is still executing" in str(exc):
                return False  # finished or taken over by someone else meanwhile
            log.warning("run %s: automatic resume failed, retrying on the next tick: %s",
                        run_id, exc)
            self.retry.add(run_id)
            return None
        except Exception as exc:  # e.g. no free run slot (HTTP 503 in serve)
            log.warning("run %s: automatic resume postponed: %s", run_id, exc)
            self.retry.add(run_id)
            return None
        log.warning("run %s resumed in place (recovery %d of %d)", run_id,
                    origin.recoveries + 1, self.settings.max_attempts)
        return True


def nursery_starter(
    store: StateStore, nursery: trio.Nursery, *, registry: Any, env: Mapping[str, str],
) -> StartResume:
    """A ``start`` for processes without a run manager: resume in ``nursery``."""
    from ironflow_core.engine.resume import open_resume

    async def start(run_id: str) -> None:
        executor = await open_resume(store, run_id, registry=registry, env=env,
                                     count_recovery=True)

        async def run() -> None:
            try:
                await executor.run()
            except Exception as exc:
                log.error("recovered run %s: %s", run_id, exc)

        nursery.start_soon(run, name=f"recovered run {run_id}")

    return start
