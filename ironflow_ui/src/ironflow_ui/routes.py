"""The Starlette routes that serve the dashboard's files from the installed package.

Every response carries a strict Content-Security-Policy: the pages load only
their own scripts and styles and talk only to this server, so no CDN and no
inline script can ever run, even if a run's data contained markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).with_name("static")
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
]


class _SecuredFiles:
    """StaticFiles with the security headers added to every response."""

    def __init__(self, files: ASGIApp) -> None:
        self.files = files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"cache-control"]
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        await self.files(scope, receive, send_secured)


async def _to_slash(_request: Any) -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=308)


def ui_routes() -> list[BaseRoute]:
    """``/ui`` redirects to ``/ui/``; ``/ui/...`` serves the files (``index.html`` for ``/ui/``)."""
    files = _SecuredFiles(StaticFiles(directory=STATIC, html=True))
    return [Route("/ui", _to_slash, methods=["GET", "HEAD"]), Mount("/ui", app=files)]
