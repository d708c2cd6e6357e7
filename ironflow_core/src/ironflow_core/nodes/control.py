"""Routing nodes: ``if_node`` and ``switch_node`` (CONTRACT §5.9 IF-1, SW-1).

They never fail on the data they inspect; they write ``_route_<step>``, which
the engine matches against the ``route`` of the steps that depend on them.
Fields are ``Any`` because upstream reads them leniently: a non-string
route falls back to its default, a non-string required field is "missing"
at run time rather than a load error.
"""

from __future__ import annotations

from typing import Any

import attrs

from ironflow_core.conditions import evaluate_condition, switch_value
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.specs import NodeSpec


@attrs.frozen
class IfConfig:
    condition: Any = None
    true_route: Any = None
    false_route: Any = None


async def if_node(ctx: NodeContext, config: IfConfig) -> dict[str, Any]:
    if not isinstance(config.condition, str):
        raise NodeError("if_node requires 'condition' parameter")
    result = evaluate_condition(config.condition, ctx)
    if result:
        route = config.true_route if isinstance(config.true_route, str) else "true"
    else:
        route = config.false_route if isinstance(config.false_route, str) else "false"
    return {
        f"_route_{ctx.step_name}": route,
        f"_condition_result_{ctx.step_name}": result,
    }


@attrs.frozen
class SwitchConfig:
    value: Any = None
    cases: Any = None
    default: Any = None


async def switch_node(ctx: NodeContext, config: SwitchConfig) -> dict[str, Any]:
    if not isinstance(config.value, str):
        raise NodeError("switch_node requires 'value' parameter")
    if not isinstance(config.cases, dict):
        raise NodeError("switch_node requires 'cases' object")
    resolved = switch_value(ctx, config.value)
    route = config.cases.get(resolved)
    if not isinstance(route, str):
        # CND-20: no case, or a non-string case value, takes the default.
        route = config.default if isinstance(config.default, str) else "default"
    return {
        f"_route_{ctx.step_name}": route,
        f"_switch_value_{ctx.step_name}": resolved,
    }


NODES: list[NodeSpec] = [
    NodeSpec(
        name="if_node",
        run=if_node,
        config=IfConfig,
        summary="Evaluate a condition and set a route",
    ),
    NodeSpec(
        name="switch_node",
        run=switch_node,
        config=SwitchConfig,
        summary="Multi-case routing based on a value",
    ),
]
