"""Fixtures for calling ``shell_command`` directly with a real NodeContext."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from ironflow_core.context import NodeContext
from ironflow_core.registry import build_registry
from ironflow_core.services import RunServices
from ironflow_core.settings import EngineLimits, LuaLimits


@pytest.fixture(scope="session")
def registry() -> Any:
    return build_registry()


@pytest.fixture
def make_ctx(registry: Any) -> Callable[..., NodeContext]:
    """``make_ctx(data, env=...)``: the run sees the real environment plus ``env``."""

    def build(data: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None):
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("IRONFLOW_")}
        run_env.update(env or {})
        services = RunServices(
            run_id="r1",
            flow_name="t",
            registry=registry,
            env=run_env,
            engine_limits=EngineLimits(max_concurrent_tasks=2),
            lua_limits=LuaLimits(),
        )
        return NodeContext(
            dict(data or {}), step_name="s", node_type="shell_command", services=services
        )

    return build
