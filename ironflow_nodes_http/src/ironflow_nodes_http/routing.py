"""Routing on a response: ``if_http_status`` (semantics.md#http-routing) and ``if_body_contains`` (semantics.md#http-routing).

Both write ``_route_<step>`` under the step's own name (DSL-26), which is how
dependents choose their branch (ENG-50).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from ironflow_core import (
    BoolParam,
    JsonValue,
    NodeError,
    NodeSpec,
    json_dumps,
    lenient,
    lenient_bool,
    resolve_path,
)

_U16_TEXT = re.compile(r"\+?[0-9]+")


@attrs.frozen
class IfHttpStatusConfig:
    """``if_http_status``'s parameters, as the flow's table gives them."""

    status_key: str | None = lenient()
    success_route: str = lenient("success")
    error_route: str = lenient("error")
    default_route: str | None = lenient()
    """Default: ``error_route``."""
    routes: dict[str, JsonValue] | None = lenient()
    """Status (``"404"``), class (``"4xx"``) or ``default`` -> route."""


def _status(value: Any, key: str) -> int:
    """IHS-1: a JSON integer or a decimal string, fitting u16."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise NodeError(f"{key} must be a number or numeric string")
    if isinstance(value, str):
        if not _U16_TEXT.fullmatch(value) or int(value) > 65535:
            raise NodeError(f"{key} must be a valid status number string")
        return int(value)
    if isinstance(value, float) or not 0 <= value <= 65535:
        raise NodeError(f"{key} value must fit in u16")
    return value


def status_class(status: int) -> str:
    """``1xx``..``5xx``: the route key of a status family (IHS-2)."""
    return f"{status // 100}xx"


def pick_status_route(routes: dict[str, Any], status: int, default_route: str) -> str:
    """IHS-2: exact code, then class, then ``routes.default``, then ``default_route``."""
    for rule in (str(status), status_class(status), "default"):
        route = routes.get(rule)
        if isinstance(route, str):
            return route
    return default_route


async def run_if_http_status(ctx: Any, config: IfHttpStatusConfig) -> dict[str, Any]:
    """The ``if_http_status`` node: route execution based on an HTTP status code."""
    if config.status_key is None:
        raise NodeError("if_http_status requires 'status_key'")
    key = config.status_key
    default_route = config.error_route if config.default_route is None else config.default_route
    found, raw = resolve_path(ctx, key)
    if not found:
        raise NodeError(f"Key '{key}' not found in context")
    status = _status(raw, key)
    if config.routes is not None:
        route = pick_status_route(config.routes, status, default_route)
    else:
        route = config.success_route if 200 <= status <= 299 else config.error_route
    step = ctx.step_name
    return {
        f"_route_{step}": route,
        f"_status_code_{step}": status,
        f"_status_class_{step}": status_class(status),
    }


@attrs.frozen
class IfBodyContainsConfig:
    """``if_body_contains``'s parameters, as the flow's table gives them."""

    source_key: str | None = lenient()
    pattern: str | None = lenient()
    true_route: str = lenient("true")
    false_route: str = lenient("false")
    case_sensitive: BoolParam = None
    required: BoolParam = None


def contains(text: str, pattern: str, case_sensitive: bool) -> bool:
    """IBC-2: an empty pattern never matches; insensitive mode lower-cases both sides."""
    if not pattern:
        return False
    if case_sensitive:
        return pattern in text
    return pattern.lower() in text.lower()


async def run_if_body_contains(ctx: Any, config: IfBodyContainsConfig) -> dict[str, Any]:
    """The ``if_body_contains`` node: route execution based on whether context content contains a pattern."""
    if config.source_key is None:
        raise NodeError("if_body_contains requires 'source_key'")
    if config.pattern is None:
        raise NodeError("if_body_contains requires 'pattern'")
    key = config.source_key
    required = lenient_bool(ctx, config.required, False)
    case_sensitive = lenient_bool(ctx, config.case_sensitive, True)
    found, value = resolve_path(ctx, key)
    if not found:
        if required:
            raise NodeError(f"if_body_contains requires '{key}' to exist in context")
        matched = False
    else:
        text = value if isinstance(value, str) else json_dumps(value)
        matched = contains(text, config.pattern, case_sensitive)
    step = ctx.step_name
    route = config.true_route if matched else config.false_route
    return {f"_route_{step}": route, f"_contains_{step}": matched}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="if_http_status",
        run=run_if_http_status,
        config=IfHttpStatusConfig,
        summary="Route execution based on an HTTP status code",
    ),
    NodeSpec(
        name="if_body_contains",
        run=run_if_body_contains,
        config=IfBodyContainsConfig,
        summary="Route execution based on whether context content contains a pattern",
    ),
]
