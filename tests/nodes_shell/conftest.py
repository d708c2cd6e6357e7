"""Fixtures for calling ``shell_command`` directly with a real NodeContext."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from ironflow_core.context import NodeContext
from ironflow_core.registry import build_registry


@pytest.fixture(scope="session")
def registry() -> Any:
    return build_registry()


@pytest.fixture
def make_ctx(registry: Any) -> Callable[..., NodeContext]:
    """``make_ctx(data, env=...)``: the run sees the real environment plus ``env``."""

    def build(data: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None):
        # imported here: importing the pytest plugin module from a conftest at
        # collection time would stop pytest from rewriting its asserts
        from ironflow_core.testing import node_context

        return node_context(data, registry=registry, env=env, node_type="shell_command")

    return build
