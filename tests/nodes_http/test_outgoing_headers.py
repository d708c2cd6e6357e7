"""``ironflow_register_outgoing_headers``: plugins add headers to the HTTP nodes' requests."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ironflow_core import HeaderSpec, hookimpl
from ironflow_core.engine import execute
from ironflow_core.loading import load_flow
from ironflow_core.model import RunStatus
from ironflow_core.registry import build_registry
from ironflow_core.specs import FlowSource
from ironflow_core.stores.memory import MemoryStore

from .loopback import Answer, LoopbackServer

FLOW = """
local flow = Flow.new("headers")
flow:step("plain", nodes.http_get({ url = "${ctx.url}", output_key = "a" }))
flow:step("own", nodes.http_get({ url = "${ctx.url}", output_key = "b",
                                  headers = { ["X-Tenant"] = "flow-choice" } }))
return flow
"""


class TenantPlugin:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def tenant(self, ctx: Any, url: str) -> dict[str, str]:
        self.calls.append((ctx.run_id, ctx.step_name, url))
        return {"x-tenant": "plugin-choice", "x-step": ctx.step_name}

    @staticmethod
    def broken(ctx: Any, url: str) -> dict[str, str]:
        raise RuntimeError("provider bug")

    @hookimpl
    def ironflow_register_outgoing_headers(self) -> list[HeaderSpec]:
        return [HeaderSpec(name="tenant", headers=self.tenant),
                HeaderSpec(name="broken", headers=self.broken)]


async def test_plugin_headers_reach_the_server_and_the_flow_s_own_win(
        nursery: Any, caplog: pytest.LogCaptureFixture):
    server = LoopbackServer()
    server.route("/ping", Answer(200, [], b"ok"))
    await nursery.start(server.serve)
    plugin = TenantPlugin()
    registry = build_registry({}, entry_points=True, extra=[("tenant-test", plugin)])
    names = [spec.name for spec in registry.outgoing_headers]
    assert names.index("tenant") + 1 == names.index("broken")
    record = next(r for r in registry.plugins if r.name == "tenant-test")
    assert record.provides == ["headers:tenant", "headers:broken"]
    flow = load_flow(FlowSource(text=FLOW), registry=registry, env={})
    with caplog.at_level(logging.WARNING, logger="ironflow.engine"):
        result = await execute(flow, store=MemoryStore(), registry=registry, env={},
                               context={"url": server.url("/ping")})
    assert result.status is RunStatus.SUCCESS
    seen = {s.header("x-step"): s for s in server.seen}
    assert seen["plain"].header("x-tenant") == "plugin-choice"
    assert [v for k, v in seen["own"].headers if k == "x-tenant"] == ["flow-choice"]
    assert sorted(step for _run, step, _url in plugin.calls) == ["own", "plain"]
    assert {url for _run, _step, url in plugin.calls} == {server.url("/ping")}
    assert "outgoing header provider 'broken' failed" in caplog.text
