"""Dispatching lifecycle events to observers (semantics.md#events).

Observers implement only the methods they care about; the dispatcher looks
them up once per run, so an event nobody listens to costs nothing to build.
Publication is best-effort: an observer that raises is logged and ignored.
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
    def __init__(self, run_id: str, observers: Iterable[Any], *,
                 parent: tuple[str, str] | None = None) -> None:
        self.run_id = run_id
        self._parent_fields = (
            {"parent_run_id": parent[0], "parent_step": parent[1]} if parent else {}
        )
        self._listeners: dict[EventType, list[Callable[[Event], None]]] = {}
        for observer in observers:
            for event_type in EventType:
                method = getattr(observer, event_type.value, None)
                if callable(method):
                    self._listeners.setdefault(event_type, []).append(method)

    def wants(self, event_type: EventType) -> bool:
        return event_type in self._listeners

    def emit(self, event_type: EventType, **fields: Any) -> None:
        listeners = self._listeners.get(event_type)
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
    """Hand a process event to every observer implementing ``event_type``; never raises.

    Process events are rare (a few per run at most), so observers are looked
    up per call rather than cached.
    """
    event: ProcessEvent | None = None
    for observer in observers:
        method = getattr(observer, event_type.value, None)
        if not callable(method):
            continue
        if event is None:
            event = ProcessEvent(type=event_type, outcome=outcome,
                                 timestamp=now_timestamp(), **fields)
        try:
            method(event)
        except Exception:
            log.warning("observer %r failed on %s", method, event_type, exc_info=True)
