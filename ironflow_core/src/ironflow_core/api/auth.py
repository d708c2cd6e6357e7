"""API-key authentication (API-2).

Every route but the health probes needs ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``, compared in constant time. A failure is a 401 with a
plain-text body, as upstream answers. Once a request is authenticated both
credential headers are removed, so no handler (and no webhook flow) ever sees
the key. Webhooks with a signing secret are the exception: their signature,
checked by the handler before anything else, authenticates them instead.
"""

from __future__ import annotations

import hmac
from typing import Any

OPEN_PATHS = frozenset({"/health", "/health/live", "/health/ready"})
UNAUTHORIZED = b"missing or invalid API authentication"
_CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")


class ApiKeyMiddleware:
    """Refuses requests without the API key (constant-time compare), except POSTs to signed webhooks."""
    def __init__(self, app: Any, api_key: str,
                 signed_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.key = api_key.encode("utf-8")
        self.signed_paths = signed_paths
        """Signed webhook paths: authenticated by their signature, not the key."""

    def _authenticated(self, headers: list[tuple[bytes, bytes]]) -> bool:
        ok = False
        for name, value in headers:
            lowered = name.lower()
            candidate: bytes | None = None
            if lowered == b"authorization" and value.startswith(b"Bearer "):
                candidate = value[len(b"Bearer "):]
            elif lowered == b"x-api-key":
                candidate = value
            if candidate is not None and hmac.compare_digest(candidate, self.key):
                ok = True
        return ok

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        signed = scope["path"] in self.signed_paths and scope.get("method") == "POST"
        if not signed and not self._authenticated(headers):
            await send({
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(UNAUTHORIZED)).encode()),
                            (b"www-authenticate", b"Bearer")],
            })
            await send({"type": "http.response.body", "body": UNAUTHORIZED})
            return
        scope = dict(scope)
        scope["headers"] = [(n, v) for n, v in headers if n.lower() not in _CREDENTIAL_HEADERS]
        await self.app(scope, receive, send)
