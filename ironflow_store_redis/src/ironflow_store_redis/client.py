"""Where Redis is and how to talk to it: ``REDIS_URL`` parsing and a bounded trio connection pool.

URL forms (``redis-py``-compatible)::

    redis://[[user]:password@]host[:port][/db][?option=value...]
    rediss://...                       (TLS)
    unix://[[user]:password@]/path/to/redis.sock[?db=N]

Options: ``db``, ``socket_timeout`` and ``socket_connect_timeout`` (seconds),
``max_connections``, and for TLS ``ssl_cert_reqs`` (``required``/``none``) and
``ssl_ca_certs`` (a CA file). Unknown options are ignored.

Every failure to reach the server, or a connection that breaks mid-command,
becomes ``StoreUnavailableError("cannot reach Redis at redis://host:port/db:
...")``: the URL in it never carries credentials or query values.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
import trio
from ironflow_core.errors import ConfigError, StoreUnavailableError
from ironflow_core.redact import redact_urls

from ironflow_store_redis.resp import (
    Arg,
    ConnectionLost,
    ProtocolError,
    RedisReplyError,
    RespConnection,
)

DEFAULT_PORT = 6379
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_COMMAND_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 16


@attrs.frozen
class RedisAddress:
    """A parsed ``REDIS_URL``."""

    scheme: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    path: str | None = None
    db: int = 0
    username: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    tls_verify: bool = True
    tls_ca_file: str | None = None

    @property
    def display(self) -> str:
        """The address for messages: scheme, host, port and database, nothing secret."""
        if self.scheme == "unix":
            return f"unix://{self.path}?db={self.db}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/{self.db}"


def _bad_url(url: str, reason: str) -> ConfigError:
    return ConfigError(f"Invalid REDIS_URL '{redact_urls(url)}': {reason}")


def _option_float(url: str, options: dict[str, list[str]], name: str, default: float) -> float:
    values = options.get(name)
    if not values:
        return default
    try:
        value = float(values[-1])
    except ValueError:
        raise _bad_url(url, f"{name} must be a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise _bad_url(url, f"{name} must be a positive number of seconds")
    return value


def _option_int(url: str, value: str, name: str, minimum: int) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) < minimum:
        raise _bad_url(url, f"{name} must be an integer of at least {minimum}")
    return int(text)


def parse_redis_url(url: str) -> RedisAddress:
    """Parse ``REDIS_URL``; a malformed one is a ``ConfigError`` with the URL redacted."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _bad_url(url, str(exc)) from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise _bad_url(url, "use redis://, rediss:// or unix://")
    options = parse_qs(parts.query)
    db = 0
    if scheme == "unix":
        if not parts.path:
            raise _bad_url(url, "a unix:// URL needs a socket path")
    else:
        segment = parts.path.strip("/")
        if segment:
            db = _option_int(url, unquote(segment), "the database number", 0)
    if options.get("db"):
        db = _option_int(url, options["db"][-1], "db", 0)
    max_connections = DEFAULT_MAX_CONNECTIONS
    if options.get("max_connections"):
        max_connections = _option_int(url, options["max_connections"][-1], "max_connections", 1)
    cert_reqs = (options.get("ssl_cert_reqs") or ["required"])[-1].lower()
    if cert_reqs not in ("required", "optional", "none"):
        raise _bad_url(url, "ssl_cert_reqs must be required, optional or none")
    return RedisAddress(
        scheme=scheme,
        host=parts.hostname or "127.0.0.1",
        port=port if port is not None else DEFAULT_PORT,
        path=unquote(parts.path) if scheme == "unix" else None,
        db=db,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        connect_timeout=_option_float(
            url, options, "socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT
        ),
        command_timeout=_option_float(url, options, "socket_timeout", DEFAULT_COMMAND_TIMEOUT),
        max_connections=max_connections,
        tls_verify=cert_reqs != "none",
        tls_ca_file=(options.get("ssl_ca_certs") or [None])[-1],
    )


def _reason(exc: BaseException) -> str:
    """A short cause for an I/O failure (``Connection refused``), never a traceback."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        if isinstance(current, trio.TooSlowError):
            return "timed out"
        current = current.__cause__ or current.__context__
    return str(exc) or type(exc).__name__


def _close_now(conn: RespConnection) -> None:
    """Close a connection outside the trio run it was opened in (sync, best effort)."""
    stream: Any = conn.stream
    while stream is not None and not hasattr(stream, "socket"):
        stream = getattr(stream, "transport_stream", None)
    if stream is not None:
        try:
            stream.socket.close()
        except OSError:
            pass


class RedisClient:
    """A bounded pool of trio connections to one Redis server.

    At most ``max_connections`` commands are in flight at once; further callers
    wait for a free connection. A command that fails because a pooled connection
    went stale (the server restarted) is retried once on a fresh connection, but
    only if no reply byte had arrived, so a command never runs twice.
    """

    def __init__(self, address: RedisAddress) -> None:
        self.address = address
        self.round_trips = 0
        self.bytes_sent = 0
        """Counters for tests and benchmarks: commands sent and their encoded size."""
        self._idle: list[RespConnection] = []
        self._slots = trio.Semaphore(address.max_connections)
        self._token: object = None

    async def call(self, *args: Arg) -> object:
        """Run one command; ``RedisReplyError`` for an error reply, else ``StoreUnavailableError``."""
        return await self.call_args(args)

    async def call_args(self, args: Sequence[Arg]) -> object:
        async with self._slots:
            fresh = False
            while True:
                conn, reused = await self._checkout(fresh)
                try:
                    with trio.fail_after(self.address.command_timeout):
                        self.round_trips += 1
                        before = conn.bytes_sent
                        try:
                            reply = await conn.call(args)
                        finally:
                            self.bytes_sent += conn.bytes_sent - before
                except RedisReplyError:
                    self._idle.append(conn)
                    raise
                except ConnectionLost as exc:
                    await conn.aclose()
                    if reused and not exc.received and not fresh:
                        fresh = True  # a stale pooled connection: try once on a new one
                        continue
                    raise self._unreachable(exc) from None
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    await conn.aclose()
                    if reused and not fresh:
                        fresh = True
                        continue
                    raise self._unreachable(exc) from None
                except trio.TooSlowError:
                    await conn.aclose()
                    raise self._unreachable(
                        f"no reply within {self.address.command_timeout:g} s"
                    ) from None
                except ProtocolError as exc:
                    await conn.aclose()
                    raise self._unreachable(f"invalid reply ({exc})") from None
                except BaseException:
                    await conn.aclose()  # cancelled mid-command: its state is unknown
                    raise
                self._idle.append(conn)
                return reply

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            if self._token is trio.lowlevel.current_trio_token():
                await conn.aclose()
            else:
                _close_now(conn)

    # ------------------------------------------------------------ internal
    def _unreachable(self, cause: BaseException | str) -> StoreUnavailableError:
        reason = cause if isinstance(cause, str) else _reason(cause)
        return StoreUnavailableError(
            redact_urls(f"cannot reach Redis at {self.address.display}: {reason}")
        )

    async def _checkout(self, fresh: bool) -> tuple[RespConnection, bool]:
        token = trio.lowlevel.current_trio_token()
        if token is not self._token:
            # Connections belong to the trio run that opened them (the CLI may
            # call trio.run more than once with one store).
            for conn in self._idle:
                _close_now(conn)
            self._idle.clear()
            self._token = token
        if fresh:
            stale, self._idle = self._idle, []
            for conn in stale:
                await conn.aclose()
        if self._idle:
            return self._idle.pop(), True
        return await self._connect(), False

    async def _connect(self) -> RespConnection:
        address = self.address
        try:
            with trio.fail_after(address.connect_timeout):
                stream = await self._open_stream()
                conn = RespConnection(stream)
                try:
                    await self._handshake(conn)
                except BaseException:
                    await conn.aclose()
                    raise
        except trio.TooSlowError:
            raise self._unreachable(
                f"no connection within {address.connect_timeout:g} s"
            ) from None
        except RedisReplyError as exc:
            raise StoreUnavailableError(
                redact_urls(f"cannot use Redis at {address.display}: {exc}")
            ) from None
        except (OSError, ConnectionLost, ProtocolError, trio.BrokenResourceError) as exc:
            raise self._unreachable(exc) from None
        return conn

    async def _open_stream(self) -> trio.abc.Stream:
        address = self.address
        if address.scheme == "unix":
            assert address.path is not None
            return await trio.open_unix_socket(address.path)
        tcp = await trio.open_tcp_stream(address.host, address.port)
        tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if address.scheme != "rediss":
            return tcp
        import ssl

        context = ssl.create_default_context(cafile=address.tls_ca_file)
        if not address.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        tls = trio.SSLStream(tcp, context, server_hostname=address.host)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as exc:
            await tcp.aclose()
            cause = exc.__cause__
            raise OSError(0, f"TLS handshake failed: {cause or exc}") from None
        return tls

    async def _handshake(self, conn: RespConnection) -> None:
        address = self.address
        if address.password is not None:
            if address.username:
                await conn.call(["AUTH", address.username, address.password])
            else:
                await conn.call(["AUTH", address.password])
        if address.db:
            await conn.call(["SELECT", address.db])
