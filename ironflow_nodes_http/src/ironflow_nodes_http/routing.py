"""Routing on a response: ``if_http_status`` (semantics.md#http-routing) and ``if_body_contains`` (semantics.md#http-routing).

Both write ``_route_<step>`` under the step's own name (DSL-26), which is how
dependents choose their branch (ENG-50).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from ironflow_core.conditions import resolve_path
from ironflow_core.errors import NodeError
from ironflow_core.jsonutil import dumps
from ironflow_core.params import lenient_bool
from ironflow_core.specs import NodeSpec

_U16_TEXT = re.compile(r"\+?[0-9]+")


def _text_or(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


@attrs.frozen
class IfHttpStatusConfig:
    status_key: Any = None
    success_route: Any = None
    error_route: Any = None
    default_route: Any = None
    routes: Any = None


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
    return f"{status // 100}xx"


def pick_status_route(routes: dict[str, Any], status: int, default_route: str) -> str:
    """IHS-2: exact code, then class, then ``routes.default``, then ``default_route``."""
    for rule in (str(status), status_class(status), "default"):
        route = routes.get(rule)
        if isinstance(route, str):
            return route
    return default_route


async def run_if_http_status(ctx: Any, config: IfHttpStatusConfig) -> dict[str, Any]:
    if not isinstance(config.status_key, str):
        raise NodeError("if_http_status requires 'status_key'")
    key = config.status_key
    success_route = _text_or(config.success_route, "success")
    error_route = _text_or(config.error_route, "error")
    default_route = _text_or(config.default_route, error_route)
    found, raw = resolve_path(ctx, key)
    if not found:
        raise NodeError(f"Key '{key}' not found in context")
    status = _status(raw, key)
    if isinstance(config.routes, dict):
        route = pick_status_route(config.routes, status, default_route)
    else:
        route = success_route if 200 <= status <= 299 else error_route
    step = ctx.step_name
    return {
        f"_route_{step}": route,
        f"_status_code_{step}": status,
        f"_status_class_{step}": status_class(status),
    }


@attrs.frozen
class IfBodyContainsConfig:
    source_key: Any = None
    pattern: Any = None
    true_route: Any = None
    false_route: Any = None
    case_sensitive: Any = None
    required: Any = None


def contains(text: str, pattern: str, case_sensitive: bool) -> bool:
    """IBC-2: an empty pattern never matches; insensitive mode lower-cases both sides."""
    if not pattern:
        return False
    if case_sensitive:
        return pattern in text
    return pattern.lower() in text.lower()


async def run_if_body_contains(ctx: Any, config: IfBodyContainsConfig) -> dict[str, Any]:
    if not isinstance(config.source_key, str):
        raise NodeError("if_body_contains requires 'source_key'")
    if not isinstance(config.pattern, str):
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
        text = value if isinstance(value, str) else dumps(value)
        matched = contains(text, config.pattern, case_sensitive)
    step = ctx.step_name
    route = (
        _text_or(config.true_route, "true") if matched else _text_or(config.false_route, "false")
    )
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
