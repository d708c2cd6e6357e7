"""Per-run services handed to nodes through ``ctx.services``.

Nodes reach the registry (subworkflows build child runs from it), the
process environment as the run sees it, the limits, a cancellation flag that
Lua's instruction hook polls from its worker thread, and a per-run scratch
space where plugins keep clients (one HTTP client per run, for example).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ironflow_core.settings import EngineLimits, LuaLimits

if TYPE_CHECKING:
    from ironflow_core.engine.lineage import Lineage
    from ironflow_core.model import RunRecord
    from ironflow_core.registry import Registry

ChildRunner = Callable[..., Awaitable["RunRecord"]]
"""``await run_child(flow, context, parent_step=<the calling step>)``."""


@attrs.define
class RunServices:
    """What one run shares with its nodes: registry, environment, limits, cancellation."""

    run_id: str
    flow_name: str
    registry: Registry
    env: Mapping[str, str]
    engine_limits: EngineLimits
    lua_limits: LuaLimits
    cancelled: threading.Event = attrs.field(factory=threading.Event)
    """Set when the whole run is cancelled; Lua hooks poll it from worker threads."""
    run_child: ChildRunner | None = None
    """Executes a child flow in memory with its own limits (SUB-2)."""
    lineage: Lineage | None = None
    """Where the run sits among subworkflows: allowed flow directories, depth, budget."""
    overlay: Mapping[str, Any] | None = None
    """The execution overlay (webhook ``_headers``), inherited by child runs."""
    scratch: dict[str, Any] = attrs.field(factory=dict)
    """Per-run state that plugins keep between steps (clients, caches)."""
    cleanups: list[Callable[[], Awaitable[None]]] = attrs.field(factory=list)
    """Async callbacks run when the run finishes (close clients)."""
    subflows: Any = None
    """``engine.subflow_sources.SubflowSources``: sub-flows travel with the run (None: files)."""
