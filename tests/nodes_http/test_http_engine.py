"""HTTP nodes inside a real run: routing, the step deadline, the per-run client."""

from __future__ import annotations

import time
from typing import Any

import trio

from ironflow_core.engine import prepare_run
from ironflow_core.model import FlowDefinition, RunStatus, StepSpec, TaskStatus
from ironflow_core.stores.memory import MemoryStore

from .loopback import Answer, Seen, json_answer


def step(name: str, node: str, deps: tuple[str, ...] = (), **kw: Any) -> StepSpec:
    config = {**kw.pop("config", {}), "_step_name": name}
    return StepSpec(name=name, node_type=node, config=config, dependencies=deps, **kw)


async def run(registry: Any, *steps: StepSpec, context: dict | None = None) -> Any:
    executor = prepare_run(
        FlowDefinition(name="http", steps=steps),
        store=MemoryStore(),
        registry=registry,
        context=context or {},
        env={"IRONFLOW_MAX_CONCURRENT_TASKS": "4"},
    )
    return await executor.run(), executor


async def test_status_inspection_routes_rate_limited(server, registry):
    """05-http/status_inspection_retry.lua, pointed at the loopback server."""
    server.route("/status/429", json_answer("{}", 429, [("Retry-After", "0")]))
    record, executor = await run(
        registry,
        step(
            "probe",
            "http_get",
            config={
                "url": server.base + "/status/${ctx.target_status}",
                "output_key": "provider",
                "fail_on_status": False,
                "retry_statuses": [429, 500, 502, 503],
                "status_retries": 1,
                "status_retry_backoff": 0.01,
                "max_retry_after": 1,
            },
        ),
        step(
            "route",
            "if_http_status",
            ("probe",),
            config={
                "status_key": "provider_status",
                "default_route": "other",
                "routes": {"2xx": "ok", "429": "rate_limited", "5xx": "provider_error"},
            },
        ),
        step(
            "rate_limited",
            "log",
            ("route",),
            route="rate_limited",
            config={"message": "Rate limited after ${ctx.provider_attempts} attempt(s)"},
        ),
        step("ok", "log", ("route",), route="ok", config={"message": "ok"}),
        context={"target_status": "429"},
    )
    assert record.status is RunStatus.SUCCESS
    assert record.ctx["provider_attempts"] == 2
    assert record.ctx["_route_route"] == "rate_limited"
    assert record.tasks["rate_limited"].status is TaskStatus.SUCCESS
    assert record.tasks["ok"].status is TaskStatus.SKIPPED
    # The run's HTTP client was closed by the run's cleanups.
    clients = [v for k, v in executor.services.scratch.items() if "client" in k]
    assert len(clients) == 1 and clients[0].is_closed


async def test_http_7_failed_status_publishes_nothing_and_skips_dependents(server, registry):
    server.route("/missing", json_answer('{"e":1}', 404))
    record, _ = await run(
        registry,
        step("probe", "http_get", config={"url": server.url("/missing")}),
        step("route", "if_http_status", ("probe",), config={"status_key": "http_status"}),
    )
    assert record.status is RunStatus.FAILED
    task = record.tasks["probe"]
    assert task.status is TaskStatus.FAILED
    assert f"HTTP GET http://127.0.0.1:{server.port}/[REDACTED] returned status 404" in task.error
    assert "http_status" not in record.ctx
    assert record.tasks["route"].status is not TaskStatus.SUCCESS


async def test_eng_72_step_timeout_cancels_a_slow_http_request(server, registry):
    release = trio.Event()

    async def slow(_seen: Seen) -> Answer:
        await release.wait()
        return json_answer("{}")

    server.route("/slow", slow)
    started = time.monotonic()
    record, _ = await run(
        registry,
        step("probe", "http_get", timeout_s=0.3, config={"url": server.url("/slow")}),
    )
    elapsed = time.monotonic() - started
    release.set()
    assert record.status is RunStatus.FAILED
    assert record.tasks["probe"].error == "Task 'probe' timed out after 0.3s total"
    assert elapsed < 0.3 + 1.0


async def test_if_body_contains_routes_on_response_text(server, registry):
    server.route("/json", json_answer('{"url":"https://httpbin.org/get"}'))
    record, _ = await run(
        registry,
        step("get", "http_get", config={"url": server.url("/json")}),
        step(
            "inspect",
            "if_body_contains",
            ("get",),
            config={"source_key": "http_data", "pattern": "httpbin.org"},
        ),
        step("has_httpbin", "log", ("inspect",), route="true", config={"message": "yes"}),
    )
    assert record.status is RunStatus.SUCCESS
    assert record.ctx["_contains_inspect"] is True
    assert record.tasks["has_httpbin"].status is TaskStatus.SUCCESS
