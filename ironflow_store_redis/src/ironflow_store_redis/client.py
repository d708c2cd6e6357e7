"""The store's only door to Redis: a pool of trio-native connections (``connection.py``).

Commands run in the caller's task: packed, written to the socket and the
reply read back, with no thread in between (a thread hop cost more than the
round trip itself). ``pipeline`` writes several commands at once and reads
their replies in order: one round trip. ``subscribe`` gives Pub/Sub a
connection of its own, outside the pool.

The pool holds at most ``max_connections`` connections; a caller beyond
that waits in trio for one to come back. A pooled connection the server has
closed (a restart) or that holds data nobody asked for is replaced before it
carries a command. Nothing is retried: a failed command is reported, never
sent twice. The one exception is ``NOSCRIPT``: the script did not run, so it
is loaded and run again in one pipelined round trip.

Cancellation: a caller cancelled in the middle of an exchange returns at
once, and its connection is closed, not pooled, so no later command can read
the reply meant for it. Finishing the read under a shield would keep the
connection but hold the cancelled caller for up to the command timeout (30 s
by default) on a hung server; a cancellation is rare (shutdown, a timeout
around a step), a new connection is cheap.

Replies are RESP2 as the server sends them (``connection.py``): a hash read
by ``HGETALL`` is a flat list of fields and values (``pairs`` makes it a
dict), an integer an ``int``, a missing value ``None``. Failures are messages,
never tracebacks: ``StoreUnavailableError`` ("cannot reach Redis at
redis://host:port/db: ...") for I/O, timeouts and refused authentication, and
``RedisReplyError`` for an error reply, which the store interprets itself.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Sequence
from typing import Any

import trio

from ironflow_store_redis.address import RedisAddress
from ironflow_store_redis.connection import (
    Arg,
    Connection,
    Deadlines,
    RedisReplyError,
    pack,
    tls_context,
    unavailable,
)

__all__ = ["Arg", "RedisClient", "RedisReplyError", "Subscription", "pairs"]


def pairs(reply: object) -> dict[str, Any]:
    """A flat ``[field, value, ...]`` reply (``HGETALL``, stream entry fields) as a dict."""
    if isinstance(reply, dict):
        return reply
    if isinstance(reply, list | tuple):
        items: Sequence[Any] = reply
        return {str(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}
    return {}


class RedisClient:
    """Commands, pipelines, Lua scripts and a Pub/Sub subscription against one Redis server.

    ``calls`` counts the commands and script runs issued; tests use it to see
    that nothing reached Redis.
    """

    def __init__(self, address: RedisAddress) -> None:
        self.address = address
        self.calls = 0
        self._idle: list[Connection] = []
        self._deadlines = Deadlines(address.command_timeout)
        self._slots = trio.Semaphore(address.max_connections)
        self._generation = 0
        self._tls: ssl.SSLContext | None = None
        self._shas: dict[str, str] = {}

    async def call(self, *args: Arg) -> Any:
        """Run one command; an error reply raises ``RedisReplyError``."""
        return await self.call_args(args)

    async def call_args(self, args: Sequence[Arg]) -> Any:
        """Like ``call`` for a command built as a sequence (no unpacking at the call site)."""
        reply = await self._exchange(pack(args), 0)
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Run several commands in one round trip; their replies in order.

        Redis runs each command whatever the others answer (no transaction):
        after every reply is read, the first error reply is raised.
        """
        if not commands:
            return []
        replies: list[Any] = await self._exchange(b"".join(map(pack, commands)), len(commands))
        for reply in replies:
            if isinstance(reply, RedisReplyError):
                raise reply
        return replies

    async def run_script(self, text: str, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run a Lua script by SHA-1 (``EVALSHA``).

        On ``NOSCRIPT`` (a restart or ``SCRIPT FLUSH`` emptied the server's
        cache; the script did not run) it is loaded and run again, pipelined.
        """
        sha = self._shas.get(text)
        if sha is None:
            sha = self._shas[text] = hashlib.sha1(text.encode()).hexdigest()
        command: list[Arg] = ["EVALSHA", sha, len(keys), *keys, *args]
        try:
            return await self.call_args(command)
        except RedisReplyError as exc:
            if exc.code != "NOSCRIPT":
                raise
        _sha, reply = await self.pipeline([("SCRIPT", "LOAD", text), command])
        return reply

    async def subscribe(self, channel: str) -> Subscription:
        """A connection of its own (outside the pool) subscribed to ``channel``."""
        self.calls += 1
        connection = await Connection.open(self.address, self._deadlines, self._tls_context())
        try:
            reply = await connection.exchange(pack(("SUBSCRIBE", channel)), 0)
            if isinstance(reply, RedisReplyError):
                raise reply
        except BaseException:
            connection.close()
            raise
        return Subscription(connection)

    async def aclose(self) -> None:
        """Close the pooled connections; those in use are closed when they come back.

        A later command opens new ones.
        """
        self._generation += 1
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    # ------------------------------------------------------------ internal
    async def _exchange(self, payload: bytes, count: int) -> Any:
        """Send ``payload`` on a pooled connection; ``count`` replies (0: one, not in a list)."""
        self.calls += count or 1
        slots = self._slots
        try:
            slots.acquire_nowait()
        except trio.WouldBlock:
            await slots.acquire()
        try:
            generation = self._generation
            connection = await self._checkout()
            try:
                reply = await connection.exchange(payload, count)
            except BaseException:
                connection.close()  # failed or cancelled mid-exchange: a reply may be unread
                raise
            if generation == self._generation:
                self._idle.append(connection)
            else:
                connection.close()
            return reply
        finally:
            slots.release()

    async def _checkout(self) -> Connection:
        """An idle connection still fit for a command, or a new one."""
        idle = self._idle
        while idle:
            connection = idle.pop()
            if not connection.is_stale():
                return connection
            connection.close()
        return await Connection.open(self.address, self._deadlines, self._tls_context())

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.address.scheme != "rediss":
            return None
        if self._tls is None:
            try:
                self._tls = tls_context(self.address)
            except (OSError, ssl.SSLError) as exc:  # an unreadable ssl_ca_certs file
                raise unavailable(self.address, exc.strerror or str(exc)) from None
        return self._tls


class Subscription:
    """A subscribed connection: ``receive`` waits for the next published message."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def receive(self) -> str:
        """The data of the next message published on the channel (no timeout)."""
        while True:
            reply = await self._connection.receive()
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == "message":
                return str(reply[2])
            if isinstance(reply, RedisReplyError):
                raise reply

    def close(self) -> None:
        """Close the connection (unsubscribing with it)."""
        self._connection.close()
