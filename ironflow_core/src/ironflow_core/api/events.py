"""The in-memory event store behind ``GET /runs/{id}/events`` (API-74, ENG-160).

Events of every run share one bound (``IRONFLOW_EVENT_MEMORY_CAPACITY``);
the oldest is evicted first. An event's id is its cursor: the events after a
cursor are those of the same run with a larger sequence number. A cursor that
was evicted, never existed, or belongs to another run is *gone* (410).

Deleting a run drops its events and fences the run id, so an event a finished
run's observer emits late is dropped rather than resurrecting the stream. A
new run with the same id (a freed idempotency key) lifts the fence.
"""

from __future__ import annotations

import bisect
import itertools
from collections import OrderedDict, deque

import trio

from ironflow_core.model import Event, ProcessEvent

PAGE_SIZE = 100


class CursorGone(Exception):
    """The cursor is unknown, evicted, or belongs to another run (API-70)."""


class MemoryEventStore:
    """Recent run events in memory for SSE replay, bounded by one capacity shared by every run."""
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seq = itertools.count(1)
        self._index: OrderedDict[str, tuple[str, int]] = OrderedDict()
        """event id -> (run id, sequence), oldest first: the eviction order."""
        self._runs: dict[str, deque[tuple[int, Event]]] = {}
        self._fenced: set[str] = set()
        self._changed: dict[str, trio.Event] = {}

    def __len__(self) -> int:
        return len(self._index)

    def open_run(self, run_id: str) -> None:
        """A run with this id starts executing here: accept its events again."""
        self._fenced.discard(run_id)

    def append(self, event: Event) -> None:
        """Keep ``event`` (dropping the oldest past capacity) and wake the run's followers."""
        if event.run_id in self._fenced:
            return
        seq = next(self._seq)
        self._index[event.id] = (event.run_id, seq)
        self._runs.setdefault(event.run_id, deque()).append((seq, event))
        while len(self._index) > self.capacity:
            _old_id, (old_run, _old_seq) = self._index.popitem(last=False)
            entries = self._runs[old_run]
            entries.popleft()
            if not entries:
                del self._runs[old_run]
        waiter = self._changed.pop(event.run_id, None)
        if waiter is not None:
            waiter.set()

    def after(self, run_id: str, cursor: str | None, limit: int = PAGE_SIZE) -> list[Event]:
        """Up to ``limit`` events of ``run_id`` strictly after ``cursor`` (``None`` = start)."""
        entries = self._runs.get(run_id)
        start = 0
        if cursor is not None:
            position = self._index.get(cursor)
            if position is None or position[0] != run_id or entries is None:
                raise CursorGone(cursor)
            start = bisect.bisect_right(entries, position[1], key=lambda item: item[0])
        if not entries:
            return []
        return [event for _seq, event in itertools.islice(entries, start, start + limit)]

    def delete_run(self, run_id: str) -> bool:
        """Drop a run's events and fence its id; True when there were any."""
        self._fenced.add(run_id)
        entries = self._runs.pop(run_id, None)
        if entries:
            for _seq, event in entries:
                self._index.pop(event.id, None)
        waiter = self._changed.pop(run_id, None)
        if waiter is not None:
            waiter.set()
        return bool(entries)

    async def wait_for_change(self, run_id: str, timeout: float) -> None:
        """Return when ``run_id`` gets an event, or after ``timeout`` seconds."""
        waiter = self._changed.get(run_id)
        if waiter is None:
            waiter = self._changed[run_id] = trio.Event()
        with trio.move_on_after(timeout):
            await waiter.wait()


class EventRecorder:
    """A run observer (``specs.RunObserver``) that feeds the store: every event type."""

    def __init__(self, store: MemoryEventStore) -> None:
        self._store = store

    def on_event(self, event: Event | ProcessEvent) -> None:
        """Keep every run event (process events are not the run's)."""
        if isinstance(event, Event):
            self._store.append(event)
