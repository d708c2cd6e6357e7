"""Group commit: the task updates of one run that meet a write in flight share the next write.

A run's steps persist their progress through one ``GroupCommit``. While
fewer than ``window`` writes are in flight, an update is written at once,
alone, by its own caller: a store that never yields (the memory store, the
JSON store's fast path) pays nothing extra, and with the default window of
two, a run with two workers keeps both their writes in flight at once as it
would without group commit (one write at a time made them wait for each
other: 40-75 % more wall time per step on Redis). When the window is full,
later updates gather in the next batch; once a write ends, one caller of
that batch writes the whole batch with one call (one ``write`` of the JSON
journal, one round trip and one thread hop to Redis), and the others wait
for it.

The promises are the ones of one write per update:

* a caller returns only when the batch holding its update is durable, so an
  acknowledged update is never lost;
* a store error reaches every caller of the failed batch, as the same
  exception the store raised;
* a caller waits for its update before making the next, so two writes in
  flight together never hold updates of the same task, and the updates of
  one task reach the store in order;
* the write function (and with it the owner token that fences the writes)
  is the caller's, unchanged.

An update may also be *deferred* (``defer``): it is not written on its own
but rides with the next write of the run (the same worker's next update, as
a step's success rides with its next step's ``running``), or with
``flush``. Its ``on_durable`` callback runs once the write holding it is
durable. A write that fails or is cancelled puts its deferred updates back,
so a later write or ``flush`` still carries them.

A caller cancelled while it waits leaves its update in the batch: the batch
is still written by another caller (upserts of the same records are
idempotent), or dropped when every caller of the batch is gone, as an update
whose write was cancelled. A leader cancelled in the middle of a write hands
the batch back, and another caller of it writes it again.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import trio

T = TypeVar("T")

WINDOW = 2
"""Writes of one run in flight at once before updates gather (see the module docstring)."""


class _State(enum.Enum):
    GATHERING = "gathering"
    """Waiting for the write in flight; new updates still join."""
    READY = "ready"
    """Its turn has come; the first caller to wake writes it."""
    WRITING = "writing"
    DONE = "done"


class _Deferred(Generic[T]):
    """A deferred update and what to do once it is durable."""

    __slots__ = ("item", "on_durable")

    def __init__(self, item: T, on_durable: Callable[[], None]) -> None:
        self.item = item
        self.on_durable = on_durable


def _durable(deferred: Sequence[_Deferred[T]]) -> None:
    for update in deferred:
        update.on_durable()


class _Batch(Generic[T]):
    """Updates written together, and what their callers wait on."""

    __slots__ = ("_changed", "callers", "deferred", "error", "items", "state")

    def __init__(self, state: _State) -> None:
        self.items: list[T] = []
        self.deferred: list[_Deferred[T]] = []
        """The deferred updates among ``items``: their callbacks run once it is durable."""
        self.state = state
        self.error: Exception | None = None
        self.callers = 0
        self._changed = trio.Event()

    async def changed(self) -> None:
        await self._changed.wait()

    def notify(self, state: _State) -> None:
        self.state = state
        event, self._changed = self._changed, trio.Event()
        event.set()


class GroupCommit(Generic[T]):
    """Writes the updates of one run through ``write``, gathering those that arrive together.

    ``write(batch)`` persists a batch (a list, in arrival order) and returns
    once it is durable, or raises. A caller must not change an item it
    passed to ``save`` until ``save`` returns.
    """

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[None]], *,
                 window: int = WINDOW) -> None:
        self._write = write
        self._window = window
        self._in_flight = 0
        """Writes in flight, counting a batch whose turn came and is about to be written."""
        self._next: _Batch[T] | None = None
        """The batch gathering updates while the window is full."""
        self._deferred: list[_Deferred[T]] = []
        """Deferred updates waiting for the next write."""
        self.batches = 0
        """Writes made so far (tests and benchmarks read it)."""

    def defer(self, item: T, on_durable: Callable[[], None]) -> None:
        """Queue ``item`` to ride with the run's next write; ``on_durable`` runs once it is durable.

        The caller must not change ``item`` again before it is durable: a
        deferred update is meant for a task's last state (a success, a skip).
        """
        self._deferred.append(_Deferred(item, on_durable))

    @property
    def deferred(self) -> int:
        """Deferred updates no write has taken yet."""
        return len(self._deferred)

    async def flush(self) -> None:
        """Write the deferred updates now (if any); return once they are durable."""
        if self._deferred:
            await self._save(None)

    async def save(self, item: T) -> None:
        """Persist ``item`` (with any deferred updates); return once durable, or raise."""
        await self._save(item)

    async def _save(self, item: T | None) -> None:
        deferred, self._deferred = self._deferred, []
        if self._in_flight < self._window:
            # Room in the window: this update goes at once, alone (the uncontended case).
            items: list[T] = [update.item for update in deferred]
            if item is not None:
                items.append(item)
            self._in_flight += 1
            try:
                self.batches += 1
                await self._write(items)
            except BaseException:
                self._put_back(deferred)
                raise
            finally:
                self._hand_over()
            _durable(deferred)
            return
        batch = self._next
        if batch is None:
            batch = self._next = _Batch(_State.GATHERING)
        batch.items.extend(update.item for update in deferred)
        batch.deferred.extend(deferred)
        if item is not None:
            batch.items.append(item)
        batch.callers += 1
        try:
            while batch.state is not _State.DONE:
                if batch.state is _State.READY:
                    await self._lead(batch)
                else:
                    await batch.changed()
        finally:
            batch.callers -= 1
            if not batch.callers:
                self._forget(batch)
        if batch.error is not None:
            raise batch.error

    def _put_back(self, deferred: list[_Deferred[T]]) -> None:
        """A write that held ``deferred`` failed or was dropped: the next write carries them."""
        if deferred:
            self._deferred[:0] = deferred

    async def _lead(self, batch: _Batch[T]) -> None:
        """Write ``batch`` for all its callers."""
        batch.state = _State.WRITING
        try:
            self.batches += 1
            await self._write(batch.items)
        except Exception as exc:
            batch.error = exc
            self._put_back(batch.deferred)
            batch.deferred = []
        except BaseException:
            # Cancelled mid-write: whether it landed is unknown, so another caller
            # of the batch (if any is left) writes it again.
            batch.notify(_State.READY)
            raise
        else:
            _durable(batch.deferred)
        batch.notify(_State.DONE)
        self._hand_over()

    def _forget(self, batch: _Batch[T]) -> None:
        """The last caller of ``batch`` left: a batch nobody waits for is not written."""
        if batch.state is _State.GATHERING and self._next is batch:
            self._next = None
        elif batch.state is _State.READY:
            self._hand_over()
        if batch.state is not _State.DONE:
            self._put_back(batch.deferred)  # never written: the next write carries them
            batch.deferred = []

    def _hand_over(self) -> None:
        """A write in flight ended: its place goes to the gathered batch, if there is one."""
        batch, self._next = self._next, None
        if batch is None:
            self._in_flight -= 1
        else:
            batch.notify(_State.READY)
