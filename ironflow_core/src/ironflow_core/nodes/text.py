"""Text and pacing nodes: ``template_render``, ``log``, ``delay`` (semantics.md#text-nodes).

Required strings are ``run_required`` so that a missing one fails the step
with upstream's wording; ``log`` keeps upstream's leniency (a non-string
``message`` renders as ``""``, LG-1).
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from ironflow_core.configs import Interpolated, lenient, run_required
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.logtext import escape_controls
from ironflow_core.params import ABSENT, NumberParam, strict_float
from ironflow_core.specs import NodeSpec

logger = logging.getLogger("ironflow.node")

_LEVELS = {"debug": logging.DEBUG, "warn": logging.WARNING, "error": logging.ERROR}
_MAX_DELAY = 2.0**64  # Rust's Duration cannot hold this many seconds


@attrs.frozen
class TemplateRenderConfig:
    """``template_render``'s parameters (TR-1)."""

    template: Interpolated | None = run_required()
    output_key: str | None = run_required()


async def template_render(ctx: NodeContext, config: TemplateRenderConfig) -> dict[str, Any]:
    """TR-1: the rendered template under ``output_key``."""
    if config.template is None:
        raise NodeError("template_render requires 'template'")
    if config.output_key is None:
        raise NodeError("template_render requires 'output_key'")
    return {config.output_key: ctx.interpolate(config.template)}


@attrs.frozen
class LogConfig:
    """``log``'s parameters (LG-1)."""

    message: Interpolated = lenient("")
    """Only a string is rendered and logged; anything else logs ``""``."""
    level: str | None = lenient()
    """``debug``, ``warn``, ``error``; anything else (any type) logs at info."""


async def log(ctx: NodeContext, config: LogConfig) -> dict[str, Any]:
    """LG-1: log the rendered message; every log step writes ``log_message``.

    The log line escapes control characters (a message cannot forge a line);
    ``log_message`` keeps the text as rendered.
    """
    message = ctx.interpolate(config.message)
    # Exact, lower-case names only: `trace`, `WARN` and the rest log at info.
    level = _LEVELS.get(config.level, logging.INFO) if config.level is not None else logging.INFO
    logger.log(level, "%s", escape_controls(message), extra={"step": ctx.step_name, "run_id": ctx.run_id})
    return {"log_message": message}


@attrs.frozen
class DelayConfig:
    """``delay``'s parameters (DL-1)."""

    seconds: NumberParam = ABSENT
    """A number or a numeric string (interpolated), NODE-6; absent means 1 second."""


async def delay(ctx: NodeContext, config: DelayConfig) -> dict[str, Any]:
    """DL-1: sleep, then report the duration as a JSON float."""
    if config.seconds is None:
        # An explicit `json_null` is present but not a number (upstream errors).
        raise NodeError("'seconds' must be a finite number")
    seconds = 1.0 if config.seconds is ABSENT else strict_float(ctx, "seconds", config.seconds, 1.0)
    if seconds < 0:
        raise NodeError("delay seconds must be a finite, non-negative number of seconds")
    if seconds >= _MAX_DELAY:
        raise NodeError("delay seconds is too large to represent as a duration")
    await trio.sleep(seconds)
    return {"delay_seconds": float(seconds)}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="template_render",
        run=template_render,
        config=TemplateRenderConfig,
        summary="Render a string template with context variable interpolation",
    ),
    NodeSpec(
        name="log",
        run=log,
        config=LogConfig,
        summary="Write a message to the workflow log",
    ),
    NodeSpec(
        name="delay",
        run=delay,
        config=DelayConfig,
        summary="Pause execution for a specified duration",
    ),
]
