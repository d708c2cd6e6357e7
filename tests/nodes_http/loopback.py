"""A small HTTP/1.1 server on 127.0.0.1 (or another loopback address), run by trio inside the test's own run.

Running in the same trio run as the client keeps loopback I/O free of real
waits, so tests may use the autojump clock: a handler's ``trio.sleep(100)``
and a client timeout both pass in virtual time.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import attrs
import h11
import trio


@attrs.define
class Seen:
    """One request as the server received it (header names lower-cased)."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name.lower()]
        return values[-1] if values else None


@attrs.define
class Answer:
    status: int = 200
    headers: list[tuple[str, str]] = attrs.field(factory=list)
    body: bytes | Iterable[bytes] | AsyncIterator[bytes] = b""


Handler = Callable[[Seen], Answer | Awaitable[Answer]]


def json_answer(
    text: str, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Answer:
    return Answer(status, [("Content-Type", "application/json"), *(headers or [])], text.encode())


class LoopbackServer:
    """Route table + request log; start with ``await nursery.start(server.serve)``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        self.port = port

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, handler: Handler | Answer) -> None:
        self.routes[path] = handler if callable(handler) else (lambda _seen, a=handler: a)

    def hits(self, path: str) -> int:
        return sum(1 for seen in self.seen if seen.target.split("?")[0] == path)

    async def serve(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                seen = await self._receive(stream, conn)
                if seen is None:
                    return
                self.seen.append(seen)
                answer = await self._answer(seen)
                await self._send(stream, conn, answer)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            await stream.aclose()

    async def _receive(self, stream: trio.SocketStream, conn: h11.Connection) -> Seen | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return Seen(
                    method=request.method.decode(),
                    target=request.target.decode(),
                    headers=[(k.decode().lower(), v.decode("latin-1")) for k, v in request.headers],
                    body=bytes(body),
                )
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _answer(self, seen: Seen) -> Answer:
        handler = self.routes.get(seen.target.split("?")[0])
        if handler is None:
            return Answer(404, [("Content-Type", "text/plain")], b"not found")
        answer = handler(seen)
        return await answer if inspect.isawaitable(answer) else answer

    async def _send(self, stream: trio.SocketStream, conn: h11.Connection, answer: Answer) -> None:
        headers = list(answer.headers)
        if isinstance(answer.body, bytes) and not any(
            k.lower() == "content-length" for k, _ in headers
        ):
            headers.append(("Content-Length", str(len(answer.body))))
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        await stream.send_all(conn.send(h11.Response(status_code=answer.status, headers=raw)))
        if isinstance(answer.body, bytes):
            chunks: Any = [answer.body] if answer.body else []
        else:
            chunks = answer.body
        if hasattr(chunks, "__aiter__"):
            async for chunk in chunks:
                await stream.send_all(conn.send(h11.Data(data=chunk)))
        else:
            for chunk in chunks:
                await stream.send_all(conn.send(h11.Data(data=chunk)))
        await stream.send_all(conn.send(h11.EndOfMessage()))
