"""Reading request bodies: the size limit, the media type, strict JSON (API-1, API-6).

The body is read incrementally and abandoned as soon as it passes the limit,
so an oversized upload costs at most ``max_body`` bytes of memory. JSON that
nests deeper than :data:`MAX_JSON_DEPTH` or holds a lone UTF-16 surrogate
(``"\ud800"``, which no UTF-8 text can carry) is refused with 400 before
anything is created: every later step (stores, Lua, canonical JSON) would
fail on it.
"""

from __future__ import annotations

import array
import itertools
import json
import re
from typing import Any

from starlette.requests import Request

from ironflow_core.api.errors import ApiError, bad_request
from ironflow_core.jsonutil import JsonNestingError, loads_strict

JSON_MEDIA_TYPE = "Expected request with `Content-Type: application/json`"


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``, parameters ignored."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        return True
    kind, _, subtype = media.partition("/")
    return kind == "application" and subtype.endswith("+json")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes (declared or streamed)."""
    too_large = ApiError(413, f"Request body exceeds the limit of {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


MAX_JSON_DEPTH = 128
"""Deepest nesting of arrays and objects a body may have (upstream's parser stops at 128)."""
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NESTING = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_OTHER_BYTES = bytes(b for b in range(256) if b not in b"[{]}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class UnsafeJsonError(ApiError):
    """Well-formed JSON that the server refuses: too deep, or a lone surrogate."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


def json_depth(raw: bytes) -> int:
    """The deepest nesting of ``[``/``{`` outside strings (C-speed scans, no recursion)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return 0
    brackets = _STRINGS.sub(b"", raw).translate(_NESTING, _OTHER_BYTES)
    if not brackets:
        return 0
    return max(itertools.accumulate(array.array("b", brackets)))


def parse_json(raw: bytes) -> Any:
    """Strict JSON; 400 for syntax errors, invalid UTF-8, deep nesting and lone surrogates."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise UnsafeJsonError(
            f"The request body nests arrays/objects more than {MAX_JSON_DEPTH} levels deep"
        )
    try:
        data = loads_strict(raw.decode("utf-8"), max_depth=None, parse_float=float)
    except UnicodeDecodeError:
        raise bad_request("Failed to parse the request body as JSON: invalid UTF-8") from None
    except JsonNestingError:  # pragma: no cover - json_depth refuses these first
        raise UnsafeJsonError("The request body is nested too deeply") from None
    except ValueError as exc:
        raise bad_request(f"Failed to parse the request body as JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise UnsafeJsonError(
                "The request body contains a lone UTF-16 surrogate escape (such as "
                "\\ud800); strings must be valid Unicode"
            ) from None
    return data


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """415 without a JSON media type, 413 over the limit, 400 malformed, 422 not an object."""
    if not is_json_media_type(request.headers.get("content-type")):
        raise ApiError(415, JSON_MEDIA_TYPE)
    data = parse_json(await read_body(request, limit))
    if not isinstance(data, dict):
        raise ApiError(422, "The request body must be a JSON object")
    return data
