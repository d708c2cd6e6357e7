"""The execution-owner lease of a run (CONTRACT §8.6, ST-50).

The process executing a run takes a lease on it, renews it while the run
goes on and releases it at the end. If the process dies the lease expires,
and ``ironflow serve`` closes the run as ``stalled``. The other way round, a
run that cannot renew its lease may already have been closed by someone
else, so it must stop writing: losing the lease stops the run as an
infrastructure failure (ENG-12).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import trio

from ironflow_core.engine.events import notify
from ironflow_core.errors import StoreError
from ironflow_core.model import ProcessEventType
from ironflow_core.specs import StateStore

log = logging.getLogger("ironflow.engine")

LEASE_TTL_SECONDS = 90.0
RENEW_EVERY_SECONDS = 30.0


class OwnerLease:
    """One run's lease under a random owner token; ``held`` once acquired, until lost."""

    def __init__(self, store: StateStore, run_id: str, *, observers: Iterable[Any] = ()) -> None:
        self.store = store
        self.run_id = run_id
        self.observers = tuple(observers)
        """Receive ``lease_changed`` (``renewed``/``lost``) process events."""
        self.owner = uuid.uuid4().hex
        self.held = False

    async def acquire(self) -> None:
        """Take the lease; a ``StoreError`` means the run has no owner and must not run."""
        await self.store.acquire_lease(self.run_id, self.owner, LEASE_TTL_SECONDS)
        self.held = True

    @asynccontextmanager
    async def renewed(self, on_lost: Callable[[str], None]) -> AsyncIterator[None]:
        """Keep the lease renewed for the body, then release it.

        Renewal runs in a background task of this nursery on trio's clock.
        ``on_lost(reason)`` is called once if a renewal fails; it must stop the
        run, and the body still ends normally (its finalization included).
        """
        try:
            async with trio.open_nursery() as nursery:
                if self.held:
                    nursery.start_soon(self._keep_renewed, on_lost)
                try:
                    yield
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The renewal task never raises, so the group only wraps the body's own
            # exception: hand that on unchanged (trio wraps whatever leaves a nursery).
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            with trio.CancelScope(shield=True):
                await self.release()

    async def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            await self.store.release_lease(self.run_id, self.owner)
        except StoreError as exc:  # it expires on its own; reconciliation skips finished runs
            log.warning("could not release the lease of run %s: %s", self.run_id, exc)

    async def _keep_renewed(self, on_lost: Callable[[str], None]) -> None:
        while True:
            await trio.sleep(RENEW_EVERY_SECONDS)
            try:
                await self.store.renew_lease(self.run_id, self.owner, LEASE_TTL_SECONDS)
                notify(self.observers, ProcessEventType.LEASE_CHANGED, "renewed",
                       run_id=self.run_id)
            except StoreError as exc:
                notify(self.observers, ProcessEventType.LEASE_CHANGED, "lost",
                       run_id=self.run_id, detail=str(exc))
                self.held = False
                reason = f"execution-owner lease lost: {exc}"
                log.error("run %s: %s", self.run_id, reason)
                on_lost(reason)
                return
