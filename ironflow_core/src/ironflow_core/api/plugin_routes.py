"""Serving the routes plugins register through ``ironflow_register_routes``.

Protected routes join the API's router after the built-in ones (so they
cannot shadow an endpoint) and sit behind the API key like everything else.
Public routes (static files) are answered by ``PublicRoutes``, which sits
outside the key check and hands every request it does not match to the API.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.routing import BaseRoute, Match

from ironflow_core.specs import RouteSpec


def split_routes(specs: Iterable[RouteSpec]) -> tuple[list[BaseRoute], list[BaseRoute]]:
    """(public, protected) routes of the registered specs, in registration order."""
    public: list[BaseRoute] = []
    protected: list[BaseRoute] = []
    for spec in specs:
        (public if spec.public else protected).extend(spec.routes)
    return public, protected


class PublicRoutes:
    """Answer requests a public plugin route fully matches; pass the rest to ``app``.

    Only GET/HEAD requests are considered: public routes exist for static files,
    and a request with any other method goes through the key check. A path a
    built-in route matches is never public, whatever a plugin registered.
    """

    def __init__(self, app: Any, routes: list[BaseRoute], builtin: Iterable[BaseRoute]) -> None:
        self.app = app
        self.routes = routes
        self.builtin = list(builtin)

    def _builtin(self, scope: dict) -> bool:
        return any(route.matches(scope)[0] is not Match.NONE for route in self.builtin)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (self.routes and scope["type"] == "http" and scope.get("method") in ("GET", "HEAD")
                and not self._builtin(scope)):
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope = {**scope, **child}
                    await route.handle(scope, receive, send)
                    return
        await self.app(scope, receive, send)
