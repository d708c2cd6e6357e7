"""``REDIS_URL``: what it may say, and the address it names (pure, no I/O, no ``redis`` import).

URL forms (``redis-py``-compatible)::

    redis://[[user]:password@]host[:port][/db][?option=value...]
    rediss://...                       (TLS)
    unix://[[user]:password@]/path/to/redis.sock[?db=N]

Options: ``db``, ``socket_timeout`` and ``socket_connect_timeout`` (seconds),
``max_connections``, and for TLS ``ssl_cert_reqs`` (``required``/``optional``/
``none``) and ``ssl_ca_certs`` (a CA file). Unknown options are ignored.

The URL is checked when the store opens, so a bad one is a ``ConfigError``
before any connection; ``RedisAddress.display`` is the address errors name,
without credentials or query.
"""

from __future__ import annotations

import math
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from ironflow_core.storekit import ConfigError, redact_urls

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
        """The address for messages: scheme, host, port and database, nothing secret.

        A unix socket's database is not written as a query (``?db=``): error
        texts go through ``redact_urls``, which hides every query value.
        """
        if self.scheme == "unix":
            return f"unix://{self.path}" + (f" (db {self.db})" if self.db else "")
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
        tls_ca_file=options["ssl_ca_certs"][-1] if options.get("ssl_ca_certs") else None,
    )
