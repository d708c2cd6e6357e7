"""The text a text-format node reads: its ``input`` string or the value at ``source_key``.

Shared by the hashing, markup, YAML/XML and date nodes, which all take one of
the two (never both) and read a non-string context value as its compact JSON.
"""

from __future__ import annotations

from typing import Any

from ironflow_core import jsonutil
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.params import source_value


def value_text(value: Any) -> str:
    """A context value as text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else jsonutil.dumps(value)


def text_input(ctx: NodeContext, input_: str | None, source_key: str | None, *, both: str,
               neither: str) -> str:
    """``input`` (interpolated) or the value at ``source_key``; None means not given."""
    if input_ is not None and source_key is not None:
        raise NodeError(both)
    if input_ is not None:
        return ctx.interpolate(input_)
    if source_key is not None:
        return value_text(source_value(ctx, source_key))
    raise NodeError(neither)
