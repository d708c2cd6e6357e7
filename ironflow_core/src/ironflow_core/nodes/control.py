"""Routing nodes: ``if_node`` and ``switch_node`` (IF-1, SW-1).

They never fail on the data they inspect; they write ``_route_<step>``, which
the engine matches against the ``route`` of the steps that depend on them.
Required fields are optional in the config classes so that a missing one
fails the step with upstream's wording; a wrongly typed one is a load error.
"""

from __future__ import annotations

from typing import Any

import attrs

from ironflow_core.conditions import evaluate_condition, switch_value
from ironflow_core.configs import run_required
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.specs import NodeSpec


@attrs.frozen
class IfConfig:
    """``if_node``'s parameters, as the flow's table gives them."""

    condition: str | None = run_required()
    true_route: str | None = None
    false_route: str | None = None


async def if_node(ctx: NodeContext, config: IfConfig) -> dict[str, Any]:
    """The ``if_node`` node: evaluate a condition and set a route."""
    if config.condition is None:
        raise NodeError("if_node requires 'condition' parameter")
    result = evaluate_condition(config.condition, ctx)
    if result:
        route = "true" if config.true_route is None else config.true_route
    else:
        route = "false" if config.false_route is None else config.false_route
    return {
        f"_route_{ctx.step_name}": route,
        f"_condition_result_{ctx.step_name}": result,
    }


@attrs.frozen
class SwitchConfig:
    """``switch_node``'s parameters, as the flow's table gives them."""

    value: str | None = run_required()
    cases: dict[str, Any] | None = run_required()
    """Value text -> route; a non-string route is ignored (CND-20)."""
    default: str | None = None


async def switch_node(ctx: NodeContext, config: SwitchConfig) -> dict[str, Any]:
    """The ``switch_node`` node: multi-case routing based on a value."""
    if config.value is None:
        raise NodeError("switch_node requires 'value' parameter")
    if config.cases is None:
        raise NodeError("switch_node requires 'cases' object")
    resolved = switch_value(ctx, config.value)
    route = config.cases.get(resolved)
    if not isinstance(route, str):
        # CND-20: no case, or a non-string case value, takes the default.
        route = "default" if config.default is None else config.default
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
