"""One connection to Redis over a trio stream: open it, send packed commands, read the replies.

The protocol is RESP2. Commands are packed by ``hiredis.pack_command`` and
replies parsed by ``hiredis.Reader`` (both C, from the Redis project); a reply
is what Redis sent, with bulk strings decoded as UTF-8 (``surrogateescape``
for bytes that are not) and an error reply as a ``RedisReplyError`` value.

A connection is opened with TCP (``trio.open_tcp_stream``), a unix socket
(``trio.open_unix_socket``) or TLS (``trio.SSLStream`` over TCP) within the
connect timeout, then sends ``AUTH`` and ``SELECT`` when the address asks for
them. Every exchange (send the commands, read as many replies) is bounded by
the command timeout. Every I/O failure is a ``StoreUnavailableError`` naming
the address and a short reason; after one, the connection must be closed.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence

import hiredis
import trio

from ironflow_core.storekit import StoreUnavailableError, redact_urls
from ironflow_store_redis.address import RedisAddress

Arg = str | bytes | int | float

_CHUNK = 65536
"""Bytes asked of the stream per read (below malloc's mmap threshold, so cheap for small replies)."""


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


class Connection:
    """A connected, authenticated stream and the parser of its replies; used by one task at a time."""

    __slots__ = ("_reader", "_socket", "_stream", "address")

    def __init__(self, address: RedisAddress, stream: trio.abc.Stream,
                 socket: trio.socket.SocketType) -> None:
        self.address = address
        self._stream = stream
        self._socket = socket
        self._reader = hiredis.Reader(
            encoding="utf-8", errors="surrogateescape", replyError=RedisReplyError,
            notEnoughData=_MORE,
        )

    @classmethod
    async def open(cls, address: RedisAddress, tls: ssl.SSLContext | None) -> Connection:
        """Connect within the connect timeout, then authenticate and select the database."""
        stream: trio.abc.Stream | None = None
        try:
            with trio.move_on_after(address.connect_timeout):
                stream, socket = await _open_stream(address, tls)
        except (OSError, trio.BrokenResourceError) as exc:
            raise unavailable(address, _reason(exc)) from None
        if stream is None:
            raise unavailable(address, f"no connection within {address.connect_timeout:g} s")
        connection = cls(address, stream, socket)
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
        return self._socket.is_readable() or self._reader.has_data()

    async def exchange(self, payload: bytes, count: int) -> list[object]:
        """Send ``payload`` (``count`` packed commands) and read ``count`` replies, in order."""
        with trio.move_on_after(self.address.command_timeout):
            try:
                await self._stream.send_all(payload)
                return [await self.receive() for _ in range(count)]
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise unavailable(self.address, _reason(exc)) from None
        raise unavailable(self.address, f"no reply within {self.address.command_timeout:g} s")

    async def exchange_one(self, payload: bytes) -> object:
        """``exchange`` of one command, its reply alone (the common case, without a list)."""
        with trio.move_on_after(self.address.command_timeout):
            try:
                await self._stream.send_all(payload)
                return await self.receive()
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise unavailable(self.address, _reason(exc)) from None
        raise unavailable(self.address, f"no reply within {self.address.command_timeout:g} s")

    async def receive(self) -> object:
        """The next reply, however long it takes (Pub/Sub waits here without a timeout)."""
        reader = self._reader
        try:
            reply = reader.gets()
            while reply is _MORE:
                data = await self._stream.receive_some(_CHUNK)
                if not data:
                    raise unavailable(self.address, "connection closed by the server")
                reader.feed(data)  # type: ignore[arg-type]  # any buffer works
                reply = reader.gets()
        except hiredis.ProtocolError as exc:
            raise unavailable(self.address, f"protocol error: {exc}") from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise unavailable(self.address, _reason(exc)) from None
        return reply

    def close(self) -> None:
        """Close at once (no TLS goodbye): safe in a cancelled task and with a reply unread."""
        self._socket.close()


async def _open_stream(
    address: RedisAddress, tls: ssl.SSLContext | None
) -> tuple[trio.abc.Stream, trio.socket.SocketType]:
    stream: trio.SocketStream
    if address.scheme == "unix":
        stream = await trio.open_unix_socket(address.path or "")
    else:
        stream = await trio.open_tcp_stream(address.host, address.port)
    socket = stream.socket
    if tls is None:
        return stream, socket
    try:
        secure = trio.SSLStream(stream, tls, server_hostname=address.host)
        await secure.do_handshake()
    except BaseException:
        socket.close()
        raise
    return secure, socket


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
