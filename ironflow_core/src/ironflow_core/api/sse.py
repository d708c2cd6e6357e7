"""``GET /runs/{id}/events``: Server-Sent Events with replay and resume (API-70..73).

Everything that can fail with a plain status (bad id, unknown run, a bad or
vanished cursor) is checked, and the first page read, before the response
starts. Afterwards a failure can only be reported in-stream, as one id-less
``stream_error`` frame. The stream wakes as soon as the run emits an event
(no need to wait out the 1 s poll) and ends after ``run_finished``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import StreamingResponse

from ironflow_core.api.errors import ApiError, bad_request, log_internal, new_error_id
from ironflow_core.api.events import CursorGone, MemoryEventStore
from ironflow_core.api.handlers import checked_run_id
from ironflow_core.api.runs import RunManager
from ironflow_core.errors import RunNotFoundError, StoreCorruptionError, StoreError
from ironflow_core.jsonutil import dumps
from ironflow_core.model import Event, EventType
from ironflow_core.specs import StateStore

POLL_SECONDS = 1.0
KEEP_ALIVE_SECONDS = 15.0
CURSOR_GONE = "Event cursor is no longer available"


def _cursor(request: Request) -> str | None:
    """API-70: ``Last-Event-ID`` (at most once) wins over ``?after=``; empty means none."""
    raw = [v for k, v in request.scope.get("headers") or [] if k.lower() == b"last-event-id"]
    if len(raw) > 1:
        raise bad_request("Last-Event-ID must be given at most once")
    candidates: list[str] = []
    if raw:
        try:
            candidates.append(raw[0].decode("utf-8"))
        except UnicodeDecodeError:
            raise bad_request("Last-Event-ID must be valid UTF-8") from None
    candidates.append(request.query_params.get("after", ""))
    for text in candidates:
        if any(c in text for c in "\0\r\n"):
            raise bad_request("event cursor must not contain NUL, CR or LF")
        if text:
            return text
    return None


def _frame(event: Event) -> bytes:
    return (f"id: {event.id}\nevent: {event.type}\ndata: {dumps(event.to_json())}\n\n"
            ).encode()


def _stream_error(code: str, message: str, *, retryable: bool,
                  error_id: str | None = None) -> bytes:
    data: dict[str, Any] = {"error": message, "code": code, "retryable": retryable}
    if error_id is not None:
        data["error_id"] = error_id
    return f"event: stream_error\ndata: {dumps(data)}\n\n".encode()


class EventStream:
    """``GET /runs/{id}/events``: a run's events as server-sent events, replayed from a cursor."""
    def __init__(self, store: StateStore, events: MemoryEventStore, runs: RunManager) -> None:
        self.store = store
        self.events = events
        self.runs = runs

    async def handle(self, request: Request) -> StreamingResponse:
        """Stream the run's events after ``Last-Event-ID`` until the run finishes (404 for an unknown run)."""
        run_id = checked_run_id(request)
        await self.store.get_run(run_id)  # 404 before streaming
        cursor = _cursor(request)
        try:
            first = self.events.after(run_id, cursor)
        except CursorGone:
            raise ApiError(410, CURSOR_GONE) from None
        return StreamingResponse(
            self._frames(run_id, cursor, first),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def _terminal(self, run_id: str) -> bool:
        if self.runs.is_active(run_id):
            return False
        try:
            return (await self.store.get_run(run_id)).status.terminal
        except RunNotFoundError:
            return True  # deleted while we streamed: nothing more will come

    async def _frames(self, run_id: str, cursor: str | None,
                      page: list[Event]) -> AsyncIterator[bytes]:
        last_frame = trio.current_time()
        final_poll = False
        while True:
            if page:
                for event in page:
                    yield _frame(event)
                    cursor = event.id
                    if event.type is EventType.RUN_FINISHED:
                        return
                last_frame = trio.current_time()
            else:
                try:
                    terminal = await self._terminal(run_id)
                except StoreError as exc:
                    error_id = new_error_id()
                    log_internal(error_id, exc, f"event stream of run {run_id}")
                    corrupt = isinstance(exc, StoreCorruptionError)
                    yield _stream_error(
                        "event_stream_error", "Event stream failed", retryable=not corrupt,
                        error_id=error_id,
                    )
                    return
                if terminal:
                    if final_poll:
                        return
                    final_poll = True
                if self.runs.stopped.is_set():
                    return
                quiet = trio.current_time() - last_frame
                await self.events.wait_for_change(
                    run_id, max(0.0, min(POLL_SECONDS, KEEP_ALIVE_SECONDS - quiet))
                )
                if trio.current_time() - last_frame >= KEEP_ALIVE_SECONDS:
                    yield b": keep-alive\n\n"
                    last_frame = trio.current_time()
            try:
                page = self.events.after(run_id, cursor)
            except CursorGone:
                yield _stream_error("event_cursor_gone", CURSOR_GONE, retryable=False)
                return
