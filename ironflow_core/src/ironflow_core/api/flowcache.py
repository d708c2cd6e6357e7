"""Loaded flows kept for reuse, keyed by what a load depends on (issue 17).

Evaluating a flow file costs a fresh Lua state, the DSL and extraction; the
API would pay it for every request naming the same, unchanged flow. A load
depends on the source text, the path it was read from (chunk name, error
texts, ``source_path``), the analysis flag, and the loader's registry and
environment, which are fixed for a :class:`FlowLoader`'s lifetime (``env()``
reads that environment, so it is deterministic). Only definitions the loader
marks ``deterministic`` are kept: a flow that reads the clock, randomness or
a UUID, or prints or logs at load time, is evaluated again every time. Keys
hold a SHA-256 of the text, so an edited file is a new key; failures are
never kept. The cache is a bounded LRU, shared by the loader's worker
threads under a lock. Definitions are immutable (frozen attrs; step configs
are only read), so one copy serves every run.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from ironflow_core.model import FlowDefinition

DEFAULT_ENTRIES = 128
Key = tuple[str | None, str, bool]


def flow_key(path: str | None, text: str, analyze: bool) -> Key:
    """The cache key of a flow source: its path, content hash and validation mode."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return (path, digest, analyze)


class FlowCache:
    """At most ``entries`` loaded flows, least recently used dropped first."""

    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        self.entries = entries
        self._flows: OrderedDict[Key, FlowDefinition] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> FlowDefinition | None:
        """The cached definition for ``key`` (now the most recent), or None."""
        with self._lock:
            flow = self._flows.get(key)
            if flow is None:
                self.misses += 1
                return None
            self._flows.move_to_end(key)
            self.hits += 1
            return flow

    def put(self, key: Key, flow: FlowDefinition) -> None:
        """Remember a deterministic definition, evicting the least recently used past the bound."""
        if not flow.deterministic or self.entries <= 0:
            return
        with self._lock:
            self._flows[key] = flow
            self._flows.move_to_end(key)
            while len(self._flows) > self.entries:
                self._flows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._flows)
