"""The memory store (child runs, tests) against the shared conformance suite."""

from __future__ import annotations

from ironflow_core.store_conformance import StoreConformance
from ironflow_core.stores.memory import MemoryStore


class TestMemoryStore(StoreConformance):
    async def make_store(self) -> MemoryStore:
        return MemoryStore()
