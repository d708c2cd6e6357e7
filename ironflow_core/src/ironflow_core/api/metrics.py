"""``GET /metrics``: registered only when metrics are enabled, behind the API key like every route."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironflow_core.metrics import CONTENT_TYPE, MetricsObserver


def metrics_route(registry: Any) -> Route:
    """The route serving the ``MetricsObserver`` registered in ``registry``."""
    observer = next((o for o in registry.observers if isinstance(o, MetricsObserver)), None)
    if observer is None:  # pragma: no cover - ``ironflow serve`` registers it with the setting
        raise RuntimeError("metrics are enabled but no MetricsObserver is registered")

    async def metrics(_request: Request) -> Response:
        return Response(observer.exposition(), media_type=CONTENT_TYPE,
                        headers={"cache-control": "no-store"})

    return Route("/metrics", metrics, methods=["GET"])
