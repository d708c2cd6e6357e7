"""The memory store (child runs, tests) against the shared conformance suite."""

from __future__ import annotations

from ironflow_core.stores.memory import MemoryStore

from .store_conformance import StoreConformance


class TestMemoryStore(StoreConformance):
    async def make_store(self) -> MemoryStore:
        return MemoryStore()
