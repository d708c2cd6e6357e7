"""Choosing and opening the run queue: ``IRONFLOW_QUEUE`` > ``queue_backend`` > ``inline``.

A shared queue hands runs to other processes, so they must reach the same
state store: ``json`` (local files) and ``memory`` (this process) are refused
at start-up with a message that says what to set instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ironflow_core.errors import ConfigError, IronflowError, StoreUnavailableError
from ironflow_core.settings import QUEUE
from ironflow_core.specs import QueueSettings

if TYPE_CHECKING:
    from ironflow_core.queues import RunQueue
    from ironflow_core.registry import Registry

DEFAULT_QUEUE: str = QUEUE.default
LOCAL_STORES = frozenset({"json", "memory"})


def queue_name(env: Mapping[str, str], config: Mapping[str, Any] | None = None) -> str:
    """``IRONFLOW_QUEUE`` > ``queue_backend`` > ``inline``; empty means the default."""
    value = env.get(QUEUE.env or "") or (config or {}).get(QUEUE.yaml or "")
    if value is None:
        return DEFAULT_QUEUE
    if not isinstance(value, str):
        raise ConfigError("queue_backend must be a string")
    return value.strip() or DEFAULT_QUEUE


def open_queue(
    registry: Registry, env: Mapping[str, str], config: Mapping[str, Any] | None = None,
) -> RunQueue:
    """The configured queue; ``ConfigError`` for an unknown one or a store workers cannot reach."""
    from ironflow_core.stores.select import backend_name

    config = config or {}
    name = queue_name(env, config)
    spec = registry.queues.get(name)
    if spec is None:
        known = ", ".join(sorted(registry.queues))
        raise ConfigError(f"Unknown queue '{name}' (IRONFLOW_QUEUE). Use one of: {known}")
    store = backend_name(env, config)
    if spec.shared_store and store in LOCAL_STORES:
        raise ConfigError(
            f"IRONFLOW_QUEUE={name} hands runs to worker processes, which cannot reach the "
            f"'{store}' state store (it lives in "
            f"{'this process' if store == 'memory' else 'local files'}); "
            "set IRONFLOW_STORE=redis (or another shared store)"
        )
    settings = QueueSettings(store_backend=store, env=env, config=config)
    try:
        return spec.open(settings)  # type: ignore[no-any-return]
    except IronflowError:
        raise
    except Exception as exc:
        raise StoreUnavailableError(f"Failed to open queue '{name}': {exc}") from exc
