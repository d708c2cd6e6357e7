"""Entry point of ironflow-store-redis (group ``ironflow``, name ``store-redis``).

Importing this module stays light: the store and its client load only when
``IRONFLOW_STORE=redis`` opens the store.
"""

from __future__ import annotations

from ironflow_core import QueueSettings, QueueSpec, StateStore, StoreSettings, StoreSpec, hookimpl


def open_redis_store(settings: StoreSettings) -> StateStore:
    """A ``RedisStore`` from ``REDIS_URL``/``REDIS_PREFIX``/``REDIS_TTL`` (or their yaml keys)."""
    from ironflow_store_redis.address import parse_redis_url
    from ironflow_store_redis.keys import DEFAULT_PREFIX, DEFAULT_URL
    from ironflow_store_redis.settings import redis_settings
    from ironflow_store_redis.store import RedisStore

    own = redis_settings(settings)
    address = parse_redis_url(own.url or DEFAULT_URL)
    prefix = own.prefix if own.prefix is not None else DEFAULT_PREFIX
    return RedisStore(address, prefix=prefix, ttl_seconds=own.ttl_seconds)


@hookimpl
def ironflow_register_stores() -> list[StoreSpec]:
    """Register the ``redis`` state store."""
    return [
        StoreSpec(
            name="redis",
            open=open_redis_store,
            summary="Runs kept in a standalone Redis server (REDIS_URL, REDIS_PREFIX, REDIS_TTL)",
        )
    ]


def open_redis_queue(settings: QueueSettings) -> object:
    """The ``redis`` queue on the same server and prefix as the store (``REDIS_URL``)."""
    from ironflow_store_redis.address import parse_redis_url
    from ironflow_store_redis.keys import DEFAULT_PREFIX, DEFAULT_URL
    from ironflow_store_redis.queue import RedisQueue
    from ironflow_store_redis.settings import redis_settings

    own = redis_settings(settings)
    address = parse_redis_url(own.url or DEFAULT_URL)
    prefix = own.prefix if own.prefix is not None else DEFAULT_PREFIX
    return RedisQueue(address, prefix=prefix)


@hookimpl
def ironflow_register_queues() -> list[QueueSpec]:
    """Register the ``redis`` run queue."""
    return [
        QueueSpec(
            name="redis",
            open=open_redis_queue,
            summary="Redis Streams consumer group read by `ironflow worker` processes",
        )
    ]
