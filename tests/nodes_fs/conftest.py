"""Fixtures for calling the file and ZIP nodes directly with a real NodeContext.

``call(node, config, ctx=None)`` structures ``config`` into the node's config
class exactly as the flow loader would, then awaits the node's run function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from ironflow_core.configs import structure_config
from ironflow_core.context import NodeContext
from ironflow_core.registry import build_registry


@pytest.fixture(scope="session")
def registry() -> Any:
    return build_registry()


@pytest.fixture
def make_ctx(registry: Any) -> Callable[..., NodeContext]:
    """``make_ctx(data, env=...)``: a context whose run sees only ``env`` as IRONFLOW_* settings."""

    def build(data: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None):
        # imported here: importing the pytest plugin module from a conftest at
        # collection time would stop pytest from rewriting its asserts
        from ironflow_core.testing import node_context

        return node_context(data, registry=registry, env=env, node_type="fs")

    return build


@pytest.fixture
def call(registry: Any, make_ctx: Callable[..., NodeContext]) -> Callable[..., Any]:
    async def invoke(
        node: str, config: Mapping[str, Any], ctx: NodeContext | None = None
    ) -> dict[str, Any]:
        spec = registry.node(node)
        assert spec is not None, node
        structured = structure_config(spec.config, {"_step_name": "s", **config})
        return dict(await spec.run(ctx if ctx is not None else make_ctx(), structured))

    return invoke
