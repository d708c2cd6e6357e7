"""The API's error shapes (API-5, API-6).

Handlers raise ``ApiError``; it becomes ``{"error", "code"}`` with the
contract's status. Anything else that escapes a handler is an internal error:
the client sees only an opaque ``error_id`` (body and ``X-Error-ID``), the
log keeps the detail, redacted, under the same id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from ironflow_core.jsonutil import dumps
from ironflow_core.redact import redact_urls

log = logging.getLogger("ironflow.api")

CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "event_cursor_gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    500: "internal_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An expected failure with its HTTP status; ``extra`` adds members to the body."""

    def __init__(self, status: int, message: str, *, code: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or CODES.get(status, "error")
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        """The JSON error body: message, code and any extra fields."""
        return {"error": self.message, "code": self.code, **self.extra}


def bad_request(message: str, **extra: Any) -> ApiError:
    """A 400 with ``message`` (and extra fields such as the list of errors)."""
    return ApiError(400, message, extra=extra or None)


def not_found(message: str) -> ApiError:
    """A 404 with ``message``."""
    return ApiError(404, message)


def unavailable(message: str) -> ApiError:
    """A 503 with ``message`` (draining, at capacity, store unreachable)."""
    return ApiError(503, message)


def json_body(status: int, data: Any, headers: Sequence[tuple[bytes, bytes]] = ()) -> dict:
    """An ASGI ``http.response.start`` message plus its body, for the raw middlewares."""
    payload = dumps(data).encode("utf-8")
    return {
        "start": {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        },
        "body": {"type": "http.response.body", "body": payload},
    }


def new_error_id() -> str:
    """A fresh ID tying a 500 reply to its log line."""
    return str(uuid.uuid4())


def internal_error_body(error_id: str) -> dict[str, str]:
    """The 500 body: no detail, only the ID to find it in the log."""
    return {"error": "Internal server error", "code": "internal_error", "error_id": error_id}


def log_internal(error_id: str, exc: BaseException, where: str) -> None:
    """The detail stays in the log, redacted; the traceback only at debug level."""
    log.error("internal error %s in %s: %s: %s", error_id, where, type(exc).__name__,
              redact_urls(str(exc)))
    log.debug("internal error %s traceback", error_id, exc_info=exc)


class InternalErrorMiddleware:
    """Outermost layer: an unexpected exception becomes a 500 with an ``error_id``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            error_id = new_error_id()
            log_internal(error_id, exc, f"{scope.get('method')} {scope.get('path')}")
            if started:
                return  # the response is under way; the log is all we can do
            message = json_body(500, internal_error_body(error_id),
                                [(b"x-error-id", error_id.encode())])
            await send(message["start"])
            await send(message["body"])
