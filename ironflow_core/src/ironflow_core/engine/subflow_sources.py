"""Sub-flows travel with their parent run, like the parent's own flow.

The first time a run loads a sub-workflow file, its source is stored
(content-addressed) and listed in the run's ``RunOrigin.subflows`` under the
path the step resolved. A resumed run loads that recorded source instead of
the file: a sub-workflow step that runs again runs the sub-flow the run
started with, and needs no file. A sub-workflow step is one step of its
parent: in flight when the parent's process died, it runs again as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import trio

from ironflow_core.errors import StoreCorruptionError
from ironflow_core.model import FlowDefinition, RunOrigin
from ironflow_core.specs import FlowSource, StateStore


class SubflowSources:
    """Loads a run's sub-flows: recorded ones from the store, new ones from files (recorded)."""

    def __init__(self, store: StateStore, run_id: str, origin: RunOrigin,
                 owner: Callable[[], str | None]) -> None:
        self.store = store
        self.run_id = run_id
        self.origin = origin
        self.owner = owner
        self._lock = trio.Lock()

    async def load(self, path: str, *, registry: object, env: Mapping[str, str]) -> FlowDefinition:
        from ironflow_core.loading import load_flow

        digest = self.origin.subflows.get(path)
        if digest is not None:
            stored = await self.store.load_flow(digest)
            if stored is None:
                raise StoreCorruptionError(
                    f"The recorded sub-flow '{path}' of run '{self.run_id}' is missing from "
                    "the store"
                )
            source = FlowSource(text=stored.source, path=stored.file_name)
            return await trio.to_thread.run_sync(
                partial(load_flow, source, registry=registry, env=env)
            )
        flow = await trio.to_thread.run_sync(partial(load_flow, path, registry=registry, env=env))
        if flow.origin is not None:
            async with self._lock:
                if path not in self.origin.subflows:
                    self.origin.subflows[path] = await self.store.save_flow(flow.origin)
                    await self.store.set_origin(self.run_id, self.origin, owner=self.owner())
        return flow
