"""Fixtures: loopback servers inside the test's trio run, and node contexts (kit-built)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugin_fixtures import node_fixtures

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


registry, make_ctx, call = node_fixtures(
    "nodes-http", "ironflow_nodes_http.plugin", node_type="http_get", step="call"
)
