"""Reading request bodies: the size limit, the media type, strict JSON (API-1, API-6).

The body is read incrementally and abandoned as soon as it passes the limit,
so an oversized upload costs at most ``max_body`` bytes of memory.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from ironflow_core.api.errors import ApiError, bad_request

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


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise bad_request("Failed to parse the request body as JSON: invalid UTF-8") from None
    except ValueError as exc:
        raise bad_request(f"Failed to parse the request body as JSON: {exc}") from None


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """415 without a JSON media type, 413 over the limit, 400 malformed, 422 not an object."""
    if not is_json_media_type(request.headers.get("content-type")):
        raise ApiError(415, JSON_MEDIA_TYPE)
    data = parse_json(await read_body(request, limit))
    if not isinstance(data, dict):
        raise ApiError(422, "The request body must be a JSON object")
    return data
