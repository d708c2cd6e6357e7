"""The store's only door to Redis: redis-py's sync client, driven through trio's thread pool.

redis-py's asyncio client does not run under trio, so every command runs in a
worker thread (``trio.to_thread.run_sync``). The pool
(``redis.BlockingConnectionPool``) and a ``trio.CapacityLimiter`` share one
size, ``max_connections``: a thread that runs always finds a connection, and a
caller beyond the limit waits in trio, not in a blocked thread. ``redis`` is
imported when the first command runs, so opening the store stays light.

A cancelled caller does not abandon its thread (``abandon_on_cancel=False``):
the command finishes, its connection goes back to the pool with nothing left
unread, and only then does the cancellation take effect. The socket timeouts
bound that wait. redis-py's own retries are off: a failed command is reported,
never sent twice; a pooled connection that Redis closed (a restart) is
replaced by the pool before it is used.

Every failure becomes a message, never a traceback: ``StoreUnavailableError``
("cannot reach Redis at redis://host:port/db: ...") for I/O, timeouts and
failed authentication, and ``RedisReplyError`` for an error reply the store
interprets itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import trio

from ironflow_core.storekit import StoreUnavailableError, redact_urls
from ironflow_store_redis.address import RedisAddress

Arg = str | bytes | int
T = TypeVar("T")

_CLOSED = "Connection closed by server."


class RedisReplyError(Exception):
    """The server answered with an error reply (``WRONGTYPE ...``, ``NOAUTH ...``)."""

    @property
    def code(self) -> str:
        """The error prefix (``BUSYGROUP``, ``NOSCRIPT``), for callers that tolerate one kind."""
        return str(self).split(" ", 1)[0]


class RedisClient:
    """Commands and Lua scripts against one Redis server, from trio.

    ``calls`` counts the commands and script runs issued (each one thread hop);
    tests use it to see that nothing reached Redis.
    """

    def __init__(self, address: RedisAddress) -> None:
        self.address = address
        self.calls = 0
        self._redis: Any = None
        self._limiter: trio.CapacityLimiter | None = None
        self._scripts: dict[str, Any] = {}

    async def call(self, *args: Arg) -> object:
        """Run one command; redis-py's reply parsing applies (``HGETALL`` gives a dict)."""
        return await self.call_args(args)

    async def call_args(self, args: Sequence[Arg]) -> object:
        """Like ``call`` for a command built as a sequence (no unpacking at the call site)."""
        client = self._client()
        return await self._in_thread(lambda: client.execute_command(*args))

    async def run_script(self, text: str, keys: Sequence[str], args: Sequence[Arg]) -> object:
        """Run a Lua script by SHA-1 (``EVALSHA``); redis-py loads it on ``NOSCRIPT``."""
        client = self._client()
        script = self._scripts.get(text)
        if script is None:
            script = self._scripts[text] = client.register_script(text)
        return await self._in_thread(lambda: script(keys=list(keys), args=list(args)))

    async def in_thread(self, work: Callable[[Any], T]) -> T:
        """Run ``work(redis_client)`` in the pool's thread (a pipeline, a Pub/Sub read)."""
        client = self._client()
        return await self._in_thread(lambda: work(client))

    async def aclose(self) -> None:
        """Close the pooled connections; a later command opens new ones."""
        if self._redis is not None:
            self._redis.connection_pool.disconnect()

    # ------------------------------------------------------------ internal
    def _client(self) -> Any:
        """The ``redis.Redis`` client, built on first use (this is where ``redis`` is imported)."""
        if self._redis is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            address = self.address
            options: dict[str, Any] = {
                "db": address.db,
                "username": address.username,
                "password": address.password,
                "socket_timeout": address.command_timeout,
                "socket_connect_timeout": address.connect_timeout,
                "retry": Retry(NoBackoff(), 0),
                "decode_responses": True,
                "encoding_errors": "surrogateescape",
            }
            if address.scheme == "unix":
                options.update(connection_class=redis.UnixDomainSocketConnection,
                               path=address.path)
            else:
                options.update(host=address.host, port=address.port)
            if address.scheme == "rediss":
                options.update(
                    connection_class=redis.SSLConnection,
                    ssl_cert_reqs="required" if address.tls_verify else "none",
                    ssl_check_hostname=address.tls_verify,
                    ssl_ca_certs=address.tls_ca_file,
                )
            pool = redis.BlockingConnectionPool(
                max_connections=address.max_connections,
                timeout=address.connect_timeout,
                **options,
            )
            self._redis = redis.Redis(connection_pool=pool)
            self._limiter = trio.CapacityLimiter(address.max_connections)
        return self._redis

    async def _in_thread(self, work: Callable[[], T]) -> T:
        import redis.exceptions as errors

        self.calls += 1
        try:
            result = await trio.to_thread.run_sync(
                work, limiter=self._limiter, abandon_on_cancel=False
            )
        except errors.RedisError as exc:
            failure: Exception | None = self._translate(exc)
        else:
            failure = None
        # The command ran to its end; a cancellation that came meanwhile wins over its outcome.
        await trio.lowlevel.checkpoint_if_cancelled()
        if failure is not None:
            raise failure
        return result

    def _translate(self, exc: Exception) -> Exception:
        """redis-py's exception as the message the store reports."""
        import redis.exceptions as errors

        if isinstance(exc, errors.AuthenticationError):
            if exc.status_code == "NOAUTH":  # a command sent without a password
                return RedisReplyError(_reply_text(exc))
            return StoreUnavailableError(  # AUTH itself was refused
                redact_urls(f"cannot use Redis at {self.address.display}: {_reply_text(exc)}")
            )
        if isinstance(exc, errors.ConnectionError | errors.TimeoutError):
            return StoreUnavailableError(
                redact_urls(f"cannot reach Redis at {self.address.display}: {self._reason(exc)}")
            )
        return RedisReplyError(_reply_text(exc))  # an error reply

    def _reason(self, exc: Exception) -> str:
        """A short cause (``Connection refused``) from redis-py's error and what it chained."""
        import ssl

        import redis.exceptions as errors

        text = str(exc)
        if isinstance(exc, errors.TimeoutError):
            if text.startswith("Timeout connecting"):
                return f"no connection within {self.address.connect_timeout:g} s"
            return f"no reply within {self.address.command_timeout:g} s"
        if text == _CLOSED:
            return "connection closed by the server"
        if text == "No connection available.":
            return f"no free connection within {self.address.connect_timeout:g} s"
        for cause in _chain(exc):
            if isinstance(cause, ssl.SSLError):
                detail = getattr(cause, "verify_message", None) or cause.reason or str(cause)
                return f"TLS handshake failed: {detail}"
            if isinstance(cause, OSError) and cause.strerror:
                return cause.strerror
        return text or type(exc).__name__


def _reply_text(exc: Any) -> str:
    """The server's error reply as sent: redis-py keeps the code apart from the message."""
    code = getattr(exc, "status_code", None)
    text = str(exc)
    return f"{code} {text}" if code and not text.startswith(code) else text


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from, nearest first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
