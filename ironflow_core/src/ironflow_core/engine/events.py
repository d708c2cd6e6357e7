"""Dispatching lifecycle events to observers (semantics.md#events).

Every observer has one method, ``on_event`` (``specs.RunObserver``); a run
without observers builds no events. Publication is best-effort: an observer
that raises is logged and ignored.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ironflow_core.jsonutil import now_timestamp
from ironflow_core.model import Event, EventType, ProcessEvent, ProcessEventType

log = logging.getLogger("ironflow.engine")


class EventDispatcher:
    """Builds one run's lifecycle events and hands each to every observer's ``on_event``."""

    def __init__(self, run_id: str, observers: Iterable[Any], *,
                 parent: tuple[str, str] | None = None) -> None:
        self.run_id = run_id
        self._parent_fields: dict[str, Any] = (
            {"parent_run_id": parent[0], "parent_step": parent[1]} if parent else {}
        )
        self._listeners: list[Callable[[Event], None]] = [o.on_event for o in observers]

    def emit(self, event_type: EventType, **fields: Any) -> None:
        """Build the event (only when someone listens) and publish it."""
        listeners = self._listeners
        if not listeners:
            return
        event = Event(
            id=str(uuid.uuid4()),
            run_id=self.run_id,
            type=event_type,
            timestamp=now_timestamp(),
            **self._parent_fields,
            **fields,
        )
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.warning("run observer %r failed on %s", listener, event_type, exc_info=True)


def notify(observers: Iterable[Any], event_type: ProcessEventType, outcome: str,
           **fields: Any) -> None:
    """Hand a process event to every observer's ``on_event``; never raises."""
    event: ProcessEvent | None = None
    for observer in observers:
        if event is None:
            event = ProcessEvent(type=event_type, outcome=outcome,
                                 timestamp=now_timestamp(), **fields)
        try:
            observer.on_event(event)
        except Exception:
            log.warning("observer %r failed on %s", observer, event_type, exc_info=True)
