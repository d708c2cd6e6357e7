"""The ``code`` node: Lua source or a serialized function handler (CD-1..6).

Every attempt runs in a fresh runtime environment (semantics.md#lua-globals globals, the run's Lua
limits), inline when it is short, else in a worker thread (``run_in_sandbox``). The context is deep-copied into Lua as the global
``ctx``, which is also the handler's argument; whatever the code does to it is
discarded. Only the first return value counts: ``nil`` → no output, an object
→ one output key per field, anything else → ``{result = value}``.
"""

from __future__ import annotations

from typing import Any

import attrs

from ironflow_core.configs import lenient
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.specs import NodeSpec

SOURCE_PREFIX = "Code execution failed: "
FUNCTION_PREFIX = "Function execution failed: "


@attrs.frozen
class CodeConfig:
    """``code``'s parameters, as the flow's table gives them."""

    source: str | None = lenient()
    """Lua source (string), or a function the loader turned into ``bytecode_b64``."""
    bytecode_b64: str | None = lenient()
    """A signed handler produced by the loader (wins over ``source``)."""


async def run_code(ctx: NodeContext, config: CodeConfig) -> dict[str, Any]:
    """The ``code`` node: execute inline Lua code with access to the workflow context."""
    from ironflow_core.lua.errors import LuaError
    from ironflow_core.lua.functions import FunctionAuthError
    from ironflow_core.lua.runtime import LuaExecution, run_in_sandbox

    if config.bytecode_b64 is None and config.source is None:
        raise NodeError("code node requires 'source' or a function handler")
    prefix = FUNCTION_PREFIX if config.bytecode_b64 is not None else SOURCE_PREFIX
    data = ctx.to_dict()

    def work(sandbox: LuaExecution) -> dict[str, Any]:
        try:
            lua_ctx = sandbox.to_lua(data)
            sandbox.set_global("ctx", lua_ctx)
            if config.bytecode_b64 is not None:
                value = sandbox.call(sandbox.load_function(config.bytecode_b64), lua_ctx)
            else:
                value = sandbox.call(sandbox.compile_source(config.source or ""))
            if value is None:
                return {}
            converted = sandbox.from_lua(value)
        except FunctionAuthError as exc:
            raise NodeError(str(exc)) from None
        except LuaError as exc:
            raise NodeError(prefix + str(exc)) from None
        if isinstance(converted, dict):
            return converted
        return {"result": converted}

    return await run_in_sandbox(ctx.services, work, label=ctx.step_name,
                                key=("code", config.bytecode_b64 if config.bytecode_b64 is not None else config.source))


NODES = [
    NodeSpec(
        name="code",
        run=run_code,
        config=CodeConfig,
        summary="Execute inline Lua code with access to the workflow context",
    )
]
