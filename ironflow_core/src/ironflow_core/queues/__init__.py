"""Run queues: how an accepted run reaches the process that executes it (issue 16).

``inline`` (the default) executes a run in the process that accepted it, as
before. A shared queue (``redis``) records the run ``pending`` with its flow
and hands it to ``ironflow worker`` processes on any number of hosts. This
module holds the contract between the core and a queue backend; ``submit.py``
(recording and waiting), ``worker.py`` (claiming and executing) and
``select.py`` (choosing one) build on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import attrs

from ironflow_core.model import Event


@attrs.frozen
class Delivery:
    """One claimed queue message: the run it names and how often it was delivered.

    ``handed_back`` marks a run a stopping worker gave back on purpose (not
    a crash), so taking it over is not counted as a recovery.
    """

    message_id: str
    run_id: str
    deliveries: int = 1
    handed_back: bool = False
    overlay: dict[str, Any] | None = None
    """Values steps see but the run never stores (a webhook's ``_headers``)."""


@attrs.frozen
class WorkerInfo:
    """A live worker as its heartbeat describes it (``ironflow workers``)."""

    name: str
    host: str
    pid: int
    concurrency: int
    runs: tuple[str, ...] = ()
    heartbeat: str = ""
    """ISO timestamp of the last heartbeat."""

    def to_json(self) -> dict[str, Any]:
        """The worker as ``ironflow workers --format json`` shows it."""
        return {"name": self.name, "host": self.host, "pid": self.pid,
                "concurrency": self.concurrency, "runs": list(self.runs),
                "runs_in_hand": len(self.runs), "last_heartbeat": self.heartbeat}


@attrs.frozen
class QueueStatus:
    """Depth (waiting, never delivered), pending (delivered, not acknowledged), dead letters."""

    name: str
    depth: int
    pending: int
    dead: int
    workers: tuple[WorkerInfo, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The queue's status as ``ironflow workers --format json`` shows it."""
        return {"queue": self.name, "depth": self.depth, "pending": self.pending,
                "dead_letters": self.dead, "workers": [w.to_json() for w in self.workers]}


EventSink = Callable[[Event], None]


@runtime_checkable
class RunQueue(Protocol):
    """A queue backend. ``inline`` implements only ``name``/``shared``/``aclose``.

    Delivery is at-least-once: a message stays pending until ``ack``; a
    consumer that dies leaves it for ``reclaim``. The worker (``worker.py``)
    makes execution safe under redelivery with the run's owner lease.
    """

    name: str
    shared: bool
    """True when runs execute in other processes (``ironflow worker``)."""

    async def enqueue(self, run_id: str, *, overlay: dict[str, Any] | None = None,
                      handed_back: bool = False) -> None:
        """Add a message naming ``run_id`` (and the overlay its steps see)."""

    async def claim(self, consumer: str, count: int, block_s: float) -> list[Delivery]:
        """Up to ``count`` new messages for ``consumer``, waiting up to ``block_s``."""

    async def reclaim(self, consumer: str, min_idle_s: float, count: int) -> list[Delivery]:
        """Messages idle for ``min_idle_s`` in other consumers' hands, now ``consumer``'s."""

    async def touch(self, consumer: str, deliveries: list[Delivery]) -> None:
        """Reset the idle time of messages still in hand (a live consumer keeps them)."""

    async def ack(self, delivery: Delivery) -> None:
        """The run's final status is durable: forget the message."""

    async def hand_back(self, delivery: Delivery) -> None:
        """Give the run back at once: a new message for it, the old one acknowledged."""

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to the dead-letter stream with ``reason`` and acknowledge it."""

    async def heartbeat(self, info: WorkerInfo, ttl_s: float) -> None:
        """Announce a live worker for ``ttl_s`` seconds."""

    async def leave(self, name: str) -> None:
        """Remove a stopping worker's announcement and its consumer when it holds nothing."""

    async def status(self) -> QueueStatus:
        """Depth, pending count and live workers."""

    async def publish(self, events: list[Event]) -> None:
        """Send run events to every process following them (SSE, waiting submitters)."""

    async def follow(self, sink: EventSink, *, task_status: Any = ...) -> None:
        """Call ``sink`` for every published event until cancelled; started once subscribed."""

    async def aclose(self) -> None:
        """Release connections."""


WaitFinished = Callable[[str], Awaitable[None]]
