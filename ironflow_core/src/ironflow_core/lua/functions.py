"""Serialized Lua function handlers: signing and verification (DSL-52, DSL-53).

The loader dumps a handler with a privately kept ``string.dump`` and stores
``base64(HMAC-SHA256(key, bytecode) || bytecode)`` as ``bytecode_b64``. The key
is random per process, so only chunks this process produced ever load; a
``bytecode_b64`` written by hand (or coming from another process) is refused
before Lua sees it. The upvalue rule itself is checked in ``dsl.lua``, where
the function is still a live Lua value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from ironflow_core.lua.errors import LuaError

_KEY = secrets.token_bytes(32)
TAG_BYTES = 32
_VERIFIED_MAX = 4096
_verified: dict[str, bytes] = {}
"""Recently verified handlers: the same step runs again and again (a pure function of the text)."""

UPVALUE_MESSAGE = (
    "Lua function handler at line {line} captures {count} outer local value(s), but "
    "captured upvalues cannot survive handler serialization; move constants inside the "
    "handler or pass values through ctx"
)
"""DSL-52 (the Lua side formats the same text)."""


class FunctionAuthError(LuaError):
    """A ``bytecode_b64`` that this process did not produce."""


def _tag(bytecode: bytes) -> bytes:
    return hmac.new(_KEY, bytecode, hashlib.sha256).digest()


def sign(bytecode: bytes) -> bytes:
    """``base64(tag || bytecode)`` as ASCII bytes (a Lua string for the config)."""
    return base64.b64encode(_tag(bytecode) + bytecode)


def verify(bytecode_b64: str) -> bytes:
    """The bytecode inside an authenticated ``bytecode_b64``; raises :class:`FunctionAuthError`."""
    bytecode = _verified.get(bytecode_b64)
    if bytecode is None:
        bytecode = _verify(bytecode_b64)
        if len(_verified) >= _VERIFIED_MAX:
            del _verified[next(iter(_verified))]
        _verified[bytecode_b64] = bytecode
    return bytecode


def _verify(bytecode_b64: str) -> bytes:
    try:
        raw = base64.b64decode(bytecode_b64, validate=True)
    except (binascii.Error, ValueError):
        raise FunctionAuthError(
            "Function bytecode failed authentication: bytecode_b64 is not valid base64"
        ) from None
    if len(raw) <= TAG_BYTES:
        raise FunctionAuthError(
            "Function bytecode failed authentication: bytecode_b64 is too short to carry a tag"
        )
    tag, bytecode = raw[:TAG_BYTES], raw[TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(bytecode)):
        raise FunctionAuthError(
            "Function bytecode failed authentication: it is not authenticated by this process "
            "(handlers are serialized per process; write the handler as a Lua function in the "
            "flow file)"
        )
    return bytecode
