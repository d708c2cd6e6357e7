"""The execution-owner lease of a run (semantics.md#leases, ST-50).

The process executing a run takes a lease on it, renews it at a third of
its lifetime (``IRONFLOW_LEASE_TTL_SECONDS``, default 90) and releases it at
the end. Every write the run makes carries the lease's owner token, and the
store refuses it once the lease names someone else (fencing). If the process
dies the lease expires, and recovery (``recovery.py``) stalls or resumes the
run. The other way round, a run that cannot renew its lease may already have
been taken over, so it must stop writing: losing the lease stops the run as
an infrastructure failure (ENG-12). When a run's final status cannot be
written the lease is kept, not released, so the run is found again once the
lease expires.
"""

from __future__ import annotations

import datetime as _dt
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio

from ironflow_core.engine.events import notify
from ironflow_core.errors import RunConflictError, StoreError
from ironflow_core.model import ProcessEventType
from ironflow_core.settings import LEASE_TTL_SECONDS as LEASE_TTL_SETTING
from ironflow_core.specs import StateStore
from ironflow_core.stores.leases import clock_micros

log = logging.getLogger("ironflow.engine")

LEASE_TTL_ENV: str = LEASE_TTL_SETTING.env or ""
LEASE_TTL_SECONDS: float = LEASE_TTL_SETTING.default
RENEW_EVERY_SECONDS: float | None = None
"""Renewal interval override (tests park it); ``None`` = a third of the lease lifetime."""


def lease_ttl(env: Mapping[str, str]) -> float:
    """``IRONFLOW_LEASE_TTL_SECONDS``: a positive number of seconds (default 90)."""
    ttl: float = LEASE_TTL_SETTING.read(env)
    return ttl


def describe_expiry(expires_micros: int) -> str:
    """A lease expiry for people: UTC time and seconds left."""
    moment = _dt.datetime.fromtimestamp(expires_micros / 1_000_000, _dt.UTC)
    left = (expires_micros - clock_micros()) / 1_000_000
    return f"{moment.strftime('%Y-%m-%dT%H:%M:%SZ')} (in {max(left, 0):.0f}s)"


class OwnerLease:
    """One run's lease under a random owner token; ``held`` once acquired, until lost."""

    def __init__(self, store: StateStore, run_id: str, ttl_s: float = LEASE_TTL_SECONDS, *,
                 observers: Iterable[Any] = ()) -> None:
        self.store = store
        self.run_id = run_id
        self.ttl_s = ttl_s
        self.observers = tuple(observers)
        """Receive ``lease_changed`` (``renewed``/``lost``) process events."""
        self.owner = uuid.uuid4().hex
        self.held = False
        self.keep = False
        """Set when the final status could not be written: let the lease expire instead."""

    async def acquire(self) -> None:
        """Take the lease; a ``StoreError`` means the run has no owner and must not run.

        Another owner's live lease is a ``RunConflictError`` that says who
        holds it and until when.
        """
        try:
            await self.store.acquire_lease(self.run_id, self.owner, self.ttl_s)
        except RunConflictError:
            holder = None
            try:
                holder = await self.store.get_lease(self.run_id)
            except StoreError:
                pass
            if holder is None:
                raise
            raise RunConflictError(
                f"Run '{self.run_id}' is still executing: owner {holder.owner} holds its "
                f"lease until {describe_expiry(holder.expires_micros)}"
            ) from None
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
        """Drop the lease at the end of the run (unless kept for a hand-over); errors are logged."""
        if not self.held or self.keep:
            return
        self.held = False
        try:
            await self.store.release_lease(self.run_id, self.owner)
        except StoreError as exc:  # it expires on its own; reconciliation skips finished runs
            log.warning("could not release the lease of run %s: %s", self.run_id, exc)

    async def _keep_renewed(self, on_lost: Callable[[str], None]) -> None:
        every = self.ttl_s / 3 if RENEW_EVERY_SECONDS is None else RENEW_EVERY_SECONDS
        while True:
            await trio.sleep(every)
            if self.keep:
                return  # the final status failed: the lease must expire
            try:
                await self.store.renew_lease(self.run_id, self.owner, self.ttl_s)
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
