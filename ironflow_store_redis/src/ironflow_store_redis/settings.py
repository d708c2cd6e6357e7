"""The Redis store's and queue's own settings: ``REDIS_URL``, ``REDIS_PREFIX``, ``REDIS_TTL``.

Each is read from the environment first (an empty value counts as unset),
then from its ``ironflow.yaml`` key (``redis_url``, ``redis_prefix``,
``redis_ttl``); ``None`` leaves the default (``keys.DEFAULT_URL``,
``keys.DEFAULT_PREFIX``, no expiry). Pure: no I/O and no ``redis`` import.
"""

from __future__ import annotations

from typing import Any

import attrs

from ironflow_core import QueueSettings, StoreSettings
from ironflow_core.storekit import ConfigError

MAX_TTL_SECONDS = 99_999_999_999
"""CLI-14: the largest ``REDIS_TTL`` (what upstream accepts)."""


@attrs.frozen
class RedisSettings:
    """Where the runs live and how long a finished run's keys are kept."""

    url: str | None = None
    prefix: str | None = None
    ttl_seconds: int | None = None


def _text(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value


def parse_ttl(value: Any) -> int | None:
    """``REDIS_TTL``/``redis_ttl``: whole seconds in 1..=99 999 999 999, else fatal (CLI-14)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError("REDIS_TTL must be a positive integer")
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            raise ConfigError("REDIS_TTL must be a positive integer")
        value = int(text)
    if not isinstance(value, int):
        raise ConfigError("REDIS_TTL must be a positive integer")
    if value <= 0:
        raise ConfigError("Redis TTL must be greater than zero")
    if value > MAX_TTL_SECONDS:
        raise ConfigError(f"Redis TTL must not exceed {MAX_TTL_SECONDS} seconds")
    return value


def redis_settings(settings: StoreSettings | QueueSettings) -> RedisSettings:
    """The Redis settings from what the core hands a store or queue factory."""
    return RedisSettings(
        url=_text(settings.option("REDIS_URL", "redis_url"), "redis_url"),
        prefix=_text(settings.option("REDIS_PREFIX", "redis_prefix"), "redis_prefix"),
        ttl_seconds=parse_ttl(settings.option("REDIS_TTL", "redis_ttl")),
    )
