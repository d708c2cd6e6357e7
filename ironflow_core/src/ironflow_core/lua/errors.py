"""Errors raised by the Lua layer, before the loader or a node words them for users.

    LuaError
     ├── LuaCompileError     a chunk did not compile (syntax error)
     ├── LuaExecutionError   Lua code raised an error
     │    └── LuaLimitError  the instruction, time, cancellation or deadline limit stopped it
     └── LuaConversionError  a value could not cross between Lua and JSON (carries the path)

``HostError`` is raised inside host functions (the Python side of a Lua
global) and becomes a plain Lua error string; it never reaches callers.
"""

from __future__ import annotations


class LuaError(Exception):
    """Base of the Lua layer's errors; ``str(exc)`` is the message for the flow author."""


class LuaCompileError(LuaError):
    """A chunk failed to compile; the message keeps Lua's ``chunk:line:`` prefix."""


class LuaExecutionError(LuaError):
    """Lua code raised an error (message without traceback)."""


class LuaLimitError(LuaExecutionError):
    """A sandbox limit (instructions, time, cancellation, deadline) stopped the code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class LuaConversionError(LuaError):
    """A value could not be converted between Lua and JSON; the message names the path."""


class HostError(Exception):
    """Raised by a host function to fail the calling Lua code with ``message``."""


def memory_message(what: str, limit: int) -> str:
    """The error for a value refused before it entered Lua (names the setting to raise)."""
    return (f"not enough memory: {what} would exceed the Lua memory limit of {limit} bytes "
            "(IRONFLOW_LUA_MAX_MEMORY_BYTES)")
