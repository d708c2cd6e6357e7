"""The core's built-in stores: ``json`` (default, on disk) and ``memory``.

Imports stay light: each store module is imported only when a store is opened.
"""

from __future__ import annotations

from ironflow_core.hookspecs import hookimpl
from ironflow_core.specs import StateStore, StoreSettings, StoreSpec


def open_json_store(settings: StoreSettings) -> StateStore:
    """Open the default on-disk store; imported lazily so that listing stores stays cheap."""
    from ironflow_core.stores.json_store import JsonStore

    return JsonStore(settings.store_dir)


def open_memory_store(settings: StoreSettings) -> StateStore:
    """Open a process-local store, for tests and one-shot runs that need no persistence."""
    from ironflow_core.stores.memory import MemoryStore

    return MemoryStore()


@hookimpl
def ironflow_register_stores() -> list[StoreSpec]:
    """Register the built-in stores through the same hook a store plugin uses."""
    return [
        StoreSpec(
            name="json",
            open=open_json_store,
            summary="One JSON file per run in the store directory (upstream layout)",
        ),
        StoreSpec(
            name="memory",
            open=open_memory_store,
            summary="Runs kept in process memory; gone when the process exits",
        ),
    ]
