"""Fixtures: loopback servers inside the test's trio run, and node contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from ironflow_core.context import NodeContext
from ironflow_core.registry import build_registry
from ironflow_core.services import RunServices
from ironflow_core.settings import EngineLimits, LuaLimits

from .loopback import LoopbackServer


@pytest.fixture
async def server(nursery: Any) -> LoopbackServer:
    srv = LoopbackServer()
    await nursery.start(srv.serve)
    return srv


@pytest.fixture
async def other_server(nursery: Any) -> LoopbackServer:
    """A second origin (another port) for cross-origin redirects."""
    srv = LoopbackServer()
    await nursery.start(srv.serve)
    return srv


@pytest.fixture(scope="session")
def registry() -> Any:
    return build_registry()


@pytest.fixture
async def make_ctx(registry: Any) -> AsyncIterator[Callable[..., NodeContext]]:
    """Build NodeContexts sharing one RunServices; run its cleanups (client close) after."""
    made: list[RunServices] = []

    def make(
        data: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        step: str = "call",
        node_type: str = "http_get",
    ) -> NodeContext:
        services = RunServices(
            run_id="r1",
            flow_name="t",
            registry=registry,
            env=dict(env or {}),
            engine_limits=EngineLimits(max_concurrent_tasks=2),
            lua_limits=LuaLimits(),
        )
        made.append(services)
        return NodeContext(data or {}, step_name=step, node_type=node_type, services=services)

    yield make
    for services in made:
        for cleanup in services.cleanups:
            await cleanup()
