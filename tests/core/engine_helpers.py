"""Programmatic flows and scriptable test nodes for engine tests."""

from __future__ import annotations

import types
from typing import Any

import trio

from ironflow_core import NodeError, NodeFailure, NodeSpec, hookimpl
from ironflow_core.model import FlowDefinition, StepSpec
from ironflow_core.registry import Registry, build_registry


async def _script(ctx: Any, config: dict) -> dict:
    """A node driven by its config: sleep, then fail or emit.

    ``seen`` lists context keys whose presence is recorded in the output as
    ``<step>_saw_<key>``; ``fail_times`` fails the first N attempts.
    """
    attempts = ctx.services.scratch.setdefault("attempts", {})
    attempts[ctx.step_name] = attempts.get(ctx.step_name, 0) + 1
    n = attempts[ctx.step_name]
    log = ctx.services.scratch.setdefault("log", [])
    log.append((ctx.step_name, n, trio.current_time()))
    running = ctx.services.scratch.setdefault("running", [0, 0])
    running[0] += 1
    running[1] = max(running[1], running[0])
    try:
        if config.get("sleep"):
            await trio.sleep(config["sleep"])
    finally:
        running[0] -= 1
    out = dict(config.get("out", {}))
    for key in config.get("seen", ()):
        out[f"{ctx.step_name}_saw_{key}"] = ctx.get(key, "<missing>")
    if config.get("fail") and n <= config.get("fail_times", 10**9):
        if "failure_output" in config:
            out_f = dict(config["failure_output"])
            out_f["attempt"] = n
            raise NodeFailure(config["fail"], out_f)
        raise NodeError(config["fail"])
    if config.get("echo_error"):
        for key in ("_error_message", "_error_step", "_error_node_type", "_error_output"):
            if key in ctx:
                out[f"saw{key}"] = ctx[key]
    return out


async def _route(ctx: Any, config: dict) -> dict:
    return {f"_route_{ctx.step_name}": config["route"]}


test_plugin = types.SimpleNamespace()


@hookimpl
def ironflow_register_nodes() -> list[NodeSpec]:
    return [
        NodeSpec(name="script", run=_script, summary="scripted test node"),
        NodeSpec(name="router", run=_route, summary="writes a route"),
    ]


test_plugin.ironflow_register_nodes = ironflow_register_nodes


def registry() -> Registry:
    """Built-ins (stores, loader, core nodes) plus the scripted test nodes."""
    return build_registry({}, entry_points=False, extra=[("engine-tests", test_plugin)])


def step(name: str, node: str = "script", deps: tuple[str, ...] = (), **kw: Any) -> StepSpec:
    config = dict(kw.pop("config", {}))
    config["_step_name"] = name
    return StepSpec(name=name, node_type=node, config=config, dependencies=deps, **kw)


def flow(*steps: StepSpec, name: str = "test") -> FlowDefinition:
    return FlowDefinition(name=name, steps=tuple(steps))
