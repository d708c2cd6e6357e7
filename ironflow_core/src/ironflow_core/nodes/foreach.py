"""``foreach``: map an array through a Lua function (FE-1..3, DSL-51/54).

The loader serializes ``transform`` into ``transform_bytecode_b64``. The whole
loop runs in one sandboxed runtime environment (inline when short, else in a
worker thread: ``run_in_sandbox``), under one set of Lua limits (the
instruction budget is shared by all items), with ``ctx`` set as a global; the
step deadline and run cancellation interrupt it via the hook.

Every config field is ``Any``: upstream checks parameters when the step runs,
with NODE-4 wording, so a wrong parameter fails only its step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from ironflow_core.configs import lenient, run_required
from ironflow_core.errors import NodeError
from ironflow_core.params import BoolParam, lenient_bool, source_value
from ironflow_core.specs import NodeSpec

if TYPE_CHECKING:
    from ironflow_core.context import NodeContext
    from ironflow_core.lua.runtime import LuaExecution


@attrs.frozen
class ForeachConfig:
    """``foreach``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    transform_bytecode_b64: Any = None
    """What the ``nodes.foreach`` factory makes of a ``transform`` function."""
    output_key: str = lenient("foreach_results")
    filter_nulls: BoolParam = None


async def foreach(ctx: NodeContext, config: ForeachConfig) -> dict[str, Any]:
    """The ``foreach`` node: iterate over an array, execute a Lua function per item, and collect results."""
    if config.source_key is None:
        raise NodeError("foreach requires 'source_key'")
    bytecode = config.transform_bytecode_b64
    if not isinstance(bytecode, str):
        # DSL-51: a string ``transform`` is not supported at run time.
        raise NodeError("foreach requires 'transform' to be a function")
    filter_nulls = lenient_bool(ctx, config.filter_nulls, True)
    items = source_value(ctx, config.source_key)
    if not isinstance(items, list):
        raise NodeError(f"Value at '{config.source_key}' is not an array")

    from ironflow_core.lua.errors import LuaCompileError, LuaError
    from ironflow_core.lua.runtime import run_in_sandbox

    context = ctx.to_dict()

    def loop(sandbox: LuaExecution) -> list[Any]:
        try:
            sandbox.set_global("ctx", sandbox.to_lua(context))
            try:
                transform = sandbox.load_function(bytecode)
            except LuaCompileError as exc:
                raise NodeError(f"Failed to load transform function: {exc}") from None
            results = []
            for i0, item in enumerate(items):
                argument = sandbox.to_lua(item)
                try:
                    value = sandbox.call(transform, argument, i0 + 1)
                except LuaError as exc:  # a Lua error or an exceeded limit (FE-3)
                    raise NodeError(
                        f"foreach transform failed on item {i0} (index {i0 + 1}): {exc}"
                    ) from None
                result = sandbox.from_lua(value, f"$foreach[{i0}]")  # FE-2
                if result is None and filter_nulls:
                    continue
                results.append(result)
            return results
        except LuaError as exc:  # conversion limits, an unauthenticated function
            raise NodeError(str(exc)) from None

    results = await run_in_sandbox(ctx.services, loop, label=f"foreach step '{ctx.step_name}'",
                                   key=("foreach", bytecode, len(items).bit_length()))
    return {config.output_key: results, f"{config.output_key}_count": len(results)}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="foreach",
        run=foreach,
        config=ForeachConfig,
        summary="Iterate over an array, execute a Lua function per item, and collect results",
    ),
]
