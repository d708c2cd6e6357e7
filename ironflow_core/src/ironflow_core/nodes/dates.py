"""``date_format``: parse a date, optionally move it to a fixed offset, format it (semantics.md#text-nodes).

Parsing and formatting follow upstream's chrono dialect; that engine lives in
``ironflow_core._compat.chrono``.
"""

from __future__ import annotations

from typing import Any

import attrs

from ironflow_core._compat.chrono import (
    BAD_FORMAT,
    ChronoError,
    FormatError,
    auto_parse,
    format_moment,
    now_utc,
    parse_timezone,
    parse_with_format,
    strftime_items,
)
from ironflow_core.configs import Interpolated, lenient
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.nodes.textinput import text_input
from ironflow_core.specs import NodeSpec

_SUPPORTED = "RFC3339, RFC2822, YYYY-MM-DD HH:MM:SS, YYYY-MM-DDTHH:MM:SS, YYYY-MM-DD"


@attrs.frozen
class DateFormatConfig:
    """``date_format``'s parameters (DF-10..14)."""

    input: Interpolated | None = lenient()
    """The date text; ``now`` is the current time."""
    source_key: str | None = lenient()
    input_format: str | None = lenient()
    output_format: str = lenient("%Y-%m-%d %H:%M:%S")
    output_key: str = lenient("formatted_date")
    timezone: str | None = lenient()


async def date_format(ctx: NodeContext, config: DateFormatConfig) -> dict[str, Any]:
    """DF-10..14: ``<k>`` formatted text and ``<k>_unix`` integer seconds."""
    raw = text_input(
        ctx,
        config.input,
        config.source_key,
        both="date_format: provide either 'input' or 'source_key', not both",
        neither="date_format requires either 'input' or 'source_key'",
    )
    if raw.isascii() and raw.lower() == "now":
        moment = now_utc()
    elif config.input_format is not None:
        try:
            moment = parse_with_format(raw, config.input_format)
        except ChronoError as exc:
            raise NodeError(
                f"Failed to parse '{raw}' with format '{config.input_format}': {exc}"
            ) from None
    else:
        parsed = auto_parse(raw)
        if parsed is None:
            raise NodeError(f"Could not parse '{raw}' as a date. Supported formats: {_SUPPORTED}")
        moment = parsed
    if config.timezone is not None:
        moment = moment.at_offset(parse_timezone(config.timezone))
    try:
        formatted = format_moment(moment, strftime_items(config.output_format))
    except FormatError:
        raise NodeError(f"Invalid output_format '{config.output_format}': {BAD_FORMAT}") from None
    return {config.output_key: formatted, f"{config.output_key}_unix": moment.timestamp()}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="date_format",
        run=date_format,
        config=DateFormatConfig,
        summary="Parse and format dates/timestamps",
    ),
]
