"""Fixtures for a sibling distribution's node tests, built on ``ironflow_core.testing``.

Each plugin's conftest calls ``node_fixtures`` with its own entry point name and
module: the registry holds the core's built-ins plus that one plugin (never the
installed entry points), so a test sees exactly the nodes it is about. Whether
the entry point itself is installed is checked by each plugin's
``assert_plugin_installed`` test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

# ironflow_core.testing is imported inside the fixtures: importing the pytest
# plugin module from a conftest at collection time would stop pytest from
# rewriting its asserts.


def node_fixtures(
    plugin_name: str, plugin_module: str, node_type: str, step: str = "s"
) -> tuple[Any, Any, Any]:
    """``registry``, ``make_ctx`` and ``call`` fixtures for one plugin's nodes.

    ``make_ctx(data, env=..., step=...)`` builds a real ``NodeContext`` whose
    run sees ``clean_env()`` plus ``env``; the fixture runs every context's
    cleanups (an HTTP client's close) after the test. ``call(node, config,
    ctx=None)`` structures ``config`` as the loader would and runs the node.
    """

    @pytest.fixture(scope="session")
    def registry() -> Any:
        from ironflow_core.testing import make_registry

        return make_registry((plugin_name, plugin_module))

    @pytest.fixture
    async def make_ctx(registry: Any) -> AsyncIterator[Callable[..., Any]]:
        from ironflow_core.testing import node_context

        made: list[Any] = []

        def build(
            data: Mapping[str, Any] | None = None,
            *,
            env: Mapping[str, str] | None = None,
            step: str = step,
            node_type: str = node_type,
        ) -> Any:
            ctx = node_context(data, registry=registry, env=env, step_name=step,
                               node_type=node_type)
            made.append(ctx)
            return ctx

        yield build
        for ctx in made:
            for cleanup in ctx.services.cleanups:
                await cleanup()

    @pytest.fixture
    def call(registry: Any, make_ctx: Callable[..., Any]) -> Callable[..., Any]:
        from ironflow_core.testing import call_node

        async def invoke(
            node: str, config: Mapping[str, Any], ctx: Any | None = None
        ) -> dict[str, Any]:
            return await call_node(node, config, registry=registry,
                                   ctx=ctx if ctx is not None else make_ctx())

        return invoke

    return registry, make_ctx, call
