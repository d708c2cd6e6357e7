"""``GET /metrics``: registered only when metrics are enabled, behind the API key like every route."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironflow_core.metrics import CONTENT_TYPE, MetricsObserver

if TYPE_CHECKING:
    from ironflow_core.registry import Registry

log = logging.getLogger("ironflow.api")


QUEUE_STATUS_SECONDS = 2.0
"""How long a scrape waits for a shared queue's status before serving without it."""


def metrics_route(registry: Registry, queue: Any = None) -> Route:
    """The route serving the ``MetricsObserver`` registered in ``registry``.

    With a shared run queue, each scrape first reads its status (depth,
    pending, dead letters, live workers); an unreachable queue is logged and
    the rest is served.
    """
    observer = next((o for o in registry.observers if isinstance(o, MetricsObserver)), None)
    if observer is None:  # pragma: no cover - ``ironflow serve`` registers it with the setting
        raise RuntimeError("metrics are enabled but no MetricsObserver is registered")

    async def metrics(_request: Request) -> Response:
        if queue is not None and getattr(queue, "shared", False):
            try:
                with trio.fail_after(QUEUE_STATUS_SECONDS):
                    observer.observe_queue(await queue.status())
            except (Exception, trio.TooSlowError) as exc:
                log.warning("metrics: could not read the run queue's status: %s", exc)
        return Response(observer.exposition(), media_type=CONTENT_TYPE,
                        headers={"cache-control": "no-store"})

    return Route("/metrics", metrics, methods=["GET"])
