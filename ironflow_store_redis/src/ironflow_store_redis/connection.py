"""One connection to Redis from trio: open it, send packed commands, read the replies.

The protocol is RESP2. Commands are packed by ``hiredis.pack_command`` and
replies parsed by ``hiredis.Reader`` (both C, from the Redis project); a reply
is what Redis sent, with bulk strings decoded as UTF-8 (``surrogateescape``
for bytes that are not) and an error reply as a ``RedisReplyError`` value.

A connection is opened with TCP (``trio.open_tcp_stream``), a unix socket
(``trio.open_unix_socket``) or TLS (``trio.SSLStream`` over TCP) within the
connect timeout, then sends ``AUTH`` and ``SELECT`` when the address asks for
them. Plain sockets are then driven directly (``trio.lowlevel``), which
costs a command half of what a ``trio.SocketStream`` does. Every exchange
(send the commands, read as many replies) is bounded by the command timeout
(``Deadlines``). Every I/O failure is a ``StoreUnavailableError`` naming the
address and a short reason; after one, the connection must be closed.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
from collections.abc import Sequence
from typing import Any

import hiredis
import trio

from ironflow_core.storekit import StoreUnavailableError, redact_urls
from ironflow_store_redis.address import RedisAddress

Arg = str | bytes | int | float

_CHUNK = 65536
"""Bytes asked of the socket per read (below malloc's mmap threshold: cheap for small replies)."""


class RedisReplyError(Exception):
    """The server answered with an error reply (``WRONGTYPE ...``, ``NOAUTH ...``)."""

    @property
    def code(self) -> str:
        """The error prefix (``BUSYGROUP``, ``NOSCRIPT``), for callers that tolerate one kind."""
        return str(self).split(" ", 1)[0]


class _More:
    """hiredis's answer while the buffer holds no whole reply yet."""


_MORE = _More()


def pack(args: Sequence[Arg]) -> bytes:
    """One command in RESP; a ``str`` that is not valid UTF-8 keeps its bytes (surrogateescape)."""
    try:
        return hiredis.pack_command(tuple(args))  # type: ignore[arg-type]  # stub: 1-tuple
    except UnicodeEncodeError:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode("utf-8", "surrogateescape") if isinstance(arg, str) else (
                arg if isinstance(arg, bytes) else repr(arg).encode())
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        return b"".join(parts)


def unavailable(address: RedisAddress, reason: str, verb: str = "reach") -> StoreUnavailableError:
    """``cannot reach Redis at <address>: <reason>``, with any URL in it redacted."""
    return StoreUnavailableError(redact_urls(f"cannot {verb} Redis at {address.display}: {reason}"))


def tls_context(address: RedisAddress) -> ssl.SSLContext:
    """The client context for ``rediss://``: system CAs or ``ssl_ca_certs``; none checked for
    ``ssl_cert_reqs=none``."""
    context = ssl.create_default_context(cafile=address.tls_ca_file)
    if not address.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Deadlines:
    """The command timeout of every exchange in flight, enforced by one watcher task per run.

    A cancel scope per command would cost more than the rest of the command's
    own work; instead each exchange notes its deadline here (a dict insert), and
    a system task sleeps until the oldest one. Deadlines come in the order the
    exchanges started (one timeout for all), so the oldest is the first entry.
    A connection whose deadline passes is closed, which wakes its waiting task.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._pending: dict[Connection, float] = {}
        self._token: trio.lowlevel.TrioToken | None = None

    def start(self, connection: Connection) -> None:
        token = trio.lowlevel.current_trio_token()
        if token is not self._token:  # the first exchange of this trio run
            self._token = token
            self._pending.clear()
            trio.lowlevel.spawn_system_task(self._watch, token, name="redis command timeouts")
        self._pending[connection] = trio.current_time() + self.timeout

    def stop(self, connection: Connection) -> None:
        self._pending.pop(connection, None)

    async def _watch(self, token: trio.lowlevel.TrioToken) -> None:
        pending = self._pending
        while self._token is token:
            now = trio.current_time()
            for connection, deadline in list(pending.items()):
                if deadline > now:
                    break
                del pending[connection]
                connection.time_out()
            # New exchanges end after the oldest one and after now + timeout.
            await trio.sleep_until(next(iter(pending.values()), now + self.timeout))


class Connection:
    """A connected, authenticated socket and the parser of its replies; one task at a time.

    Plain TCP and unix sockets are driven with ``trio.lowlevel.wait_readable``/
    ``wait_writable`` on a non-blocking socket: a command is sent without a
    pass through the scheduler, and its reply costs one. TLS goes through
    ``trio.SSLStream``.
    """

    __slots__ = ("_deadlines", "_poll", "_reader", "_sock", "_tls", "address", "closed",
                 "timed_out")

    def __init__(self, address: RedisAddress, deadlines: Deadlines, sock: socket.socket,
                 tls: trio.SSLStream[trio.SocketStream] | None) -> None:
        self.address = address
        self._deadlines = deadlines
        self._sock = sock
        self._tls = tls
        self._reader = hiredis.Reader(
            encoding="utf-8", errors="surrogateescape", replyError=RedisReplyError,
            notEnoughData=_MORE,
        )
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self.closed = False
        self.timed_out = False

    @classmethod
    async def open(
        cls, address: RedisAddress, deadlines: Deadlines, tls: ssl.SSLContext | None
    ) -> Connection:
        """Connect within the connect timeout, then authenticate and select the database."""
        opened: tuple[socket.socket, trio.SSLStream[trio.SocketStream] | None] | None = None
        try:
            with trio.move_on_after(address.connect_timeout):
                opened = await _open_socket(address, tls)
        except (OSError, trio.BrokenResourceError) as exc:
            raise unavailable(address, _reason(exc)) from None
        if opened is None:
            raise unavailable(address, f"no connection within {address.connect_timeout:g} s")
        connection = cls(address, deadlines, *opened)
        try:
            await connection._hello()
        except BaseException:
            connection.close()
            raise
        return connection

    async def _hello(self) -> None:
        """``AUTH`` and ``SELECT`` in one round trip; a refusal names the address, not the secret."""
        address = self.address
        commands: list[tuple[Arg, ...]] = []
        if address.username or address.password:
            if address.username:
                commands.append(("AUTH", address.username, address.password or ""))
            else:
                commands.append(("AUTH", address.password or ""))
        if address.db:
            commands.append(("SELECT", address.db))
        if not commands:
            return
        replies = await self.exchange(b"".join(pack(c) for c in commands), len(commands))
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                if reply.code == "NOAUTH":  # SELECT without a password: the command's refusal
                    raise reply
                raise unavailable(address, str(reply), verb="use")

    def is_stale(self) -> bool:
        """True when the server spoke unasked: it closed the connection (a restart) or sent data
        no command waits for. Either way the connection must not carry another command."""
        return bool(self._poll.poll(0)) or bool(self._reader.has_data())

    async def exchange(self, payload: bytes, count: int) -> Any:
        """Send ``payload`` (``count`` packed commands) and read their replies, in order,
        within the command timeout; ``count`` 0 is one command, its reply not in a list."""
        deadlines = self._deadlines
        deadlines.start(self)
        try:
            try:
                await self._send(payload)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise unavailable(self.address, _reason(exc)) from None
            if not count:
                return await self.receive()
            return [await self.receive() for _ in range(count)]
        except StoreUnavailableError:
            if self.timed_out:  # closed by the deadline watcher, not by the server
                raise unavailable(
                    self.address, f"no reply within {self.address.command_timeout:g} s"
                ) from None
            raise
        finally:
            deadlines.stop(self)

    async def receive(self) -> object:
        """The next reply, however long it takes (Pub/Sub waits here without a deadline)."""
        reader = self._reader
        try:
            reply = reader.gets()
            while reply is _MORE:
                data = await self._receive_some()
                if not data:
                    raise unavailable(self.address, "connection closed by the server")
                reader.feed(data)  # type: ignore[arg-type]  # any buffer works
                reply = reader.gets()
        except hiredis.ProtocolError as exc:
            raise unavailable(self.address, f"protocol error: {exc}") from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise unavailable(self.address, _reason(exc)) from None
        return reply

    def time_out(self) -> None:
        """The exchange in flight outlived the command timeout: end it (its task sees why)."""
        self.timed_out = True
        self.close()

    def close(self) -> None:
        """Close at once (no TLS goodbye): safe in a cancelled task and with a reply unread."""
        if self.closed:
            return
        self.closed = True
        if self._tls is not None:
            self._tls.transport_stream.socket.close()  # wakes a task waiting on it
        else:
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()

    # ------------------------------------------------------------ internal
    async def _send(self, payload: bytes) -> None:
        if self._tls is not None:
            await self._tls.send_all(payload)
            return
        sock = self._sock
        await trio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(payload)
        while view:
            try:
                view = view[sock.send(view):]
            except BlockingIOError:  # a big batch: the rest as the socket drains
                await trio.lowlevel.wait_writable(sock)

    async def _receive_some(self) -> bytes | bytearray:
        if self._tls is not None:
            return await self._tls.receive_some(_CHUNK)
        sock = self._sock
        try:
            data = sock.recv(_CHUNK)
        except BlockingIOError:
            pass
        else:  # the reply was there already: still a schedule point, as trio's I/O is
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                return sock.recv(_CHUNK)
            except BlockingIOError:
                pass


async def _open_socket(
    address: RedisAddress, tls: ssl.SSLContext | None
) -> tuple[socket.socket, trio.SSLStream[trio.SocketStream] | None]:
    """A connected socket; non-blocking, out of trio's stream (plain) or under TLS."""
    stream: trio.SocketStream
    if address.scheme == "unix":
        stream = await trio.open_unix_socket(address.path or "")
    else:
        stream = await trio.open_tcp_stream(address.host, address.port)
    if tls is None:
        held = stream.socket
        plain = socket.socket(held.family, held.type, held.proto, fileno=held.detach())
        plain.setblocking(False)
        return plain, None
    try:
        secure = trio.SSLStream(stream, tls, server_hostname=address.host)
        await secure.do_handshake()
    except BaseException:
        stream.socket.close()
        raise
    return stream.socket, secure  # type: ignore[return-value]  # only fileno() is used


def _reason(exc: BaseException) -> str:
    """A short cause (``Connection refused``) from an I/O error and what it chained or grouped."""
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLError):
            detail = getattr(cause, "verify_message", None) or cause.reason or str(cause)
            return f"TLS handshake failed: {detail}"
    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.errno:  # trio adds the address to strerror
            return os.strerror(cause.errno)
    if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError):
        return "connection closed by the server"
    return str(exc) or type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, the exceptions it was raised from and those grouped in them, nearest first."""
    seen: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return seen
