"""Assembling the ASGI application: routes, error mapping and the middleware stack.

Layers, outermost first: internal-error guard (500 + ``error_id``), CORS
(so preflights never need credentials), plugins' public routes (static
files), API-key check, then the router (built-in routes, then plugins'
protected ones) with the mapping of expected errors onto ``{"error", "code"}``
bodies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from ironflow_core.api.auth import ApiKeyMiddleware
from ironflow_core.api.errors import (
    ApiError,
    InternalErrorMiddleware,
    internal_error_body,
    log_internal,
    new_error_id,
)
from ironflow_core.api.events import MemoryEventStore
from ironflow_core.api.handlers import Api, ok
from ironflow_core.api.openapi import openapi_document
from ironflow_core.api.plugin_routes import PublicRoutes, split_routes
from ironflow_core.api.runs import RunManager
from ironflow_core.api.settings import ServerSettings
from ironflow_core.api.sources import FlowLoader
from ironflow_core.api.sse import EventStream
from ironflow_core.api.webhooks import signed_webhook_paths
from ironflow_core.errors import (
    InvalidInputError,
    RunConflictError,
    RunNotFoundError,
    StoreError,
)
from ironflow_core.settings import without_env_names
from ironflow_core.specs import StateStore

if TYPE_CHECKING:
    from ironflow_core.registry import Registry

ROUTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/flows/run", ("POST",)),
    ("/flows/validate", ("POST",)),
    ("/runs", ("GET",)),
    ("/runs/{run_id}/events", ("GET",)),
    ("/runs/{run_id}/cancel", ("POST",)),
    ("/runs/{run_id}/resume", ("POST",)),
    ("/runs/{run_id}", ("GET", "DELETE")),
    ("/nodes", ("GET",)),
    ("/plugins", ("GET",)),
    ("/webhooks/{name}", ("POST",)),
    ("/health", ("GET",)),
    ("/health/live", ("GET",)),
    ("/health/ready", ("GET",)),
    ("/openapi.json", ("GET",)),
)
"""Every public path and its methods: the OpenAPI document is checked against this."""


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return ok(exc.body(), exc.status)


async def _store_error(_request: Request, exc: Exception) -> Response:
    """ST-12: invalid input 400, not found 404, conflict 409; the rest is internal."""
    if isinstance(exc, InvalidInputError):
        return ok(ApiError(400, str(exc)).body(), 400)
    if isinstance(exc, RunNotFoundError):
        return ok(ApiError(404, str(exc)).body(), 404)
    if isinstance(exc, RunConflictError):
        return ok(ApiError(409, str(exc)).body(), 409)
    error_id = new_error_id()
    log_internal(error_id, exc, "state store")
    response = ok(internal_error_body(error_id), 500)
    response.headers["x-error-id"] = error_id
    return response


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return ok(ApiError(404, "Not found").body(), 404)
    if exc.status_code == 405:
        response = ok(ApiError(405, "Method not allowed").body(), 405)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response
    return ok(ApiError(exc.status_code, str(exc.detail)).body(), exc.status_code)


def build_app(settings: ServerSettings, *, store: StateStore, registry: Registry,
              env: Mapping[str, str], queue: Any = None) -> tuple[Any, RunManager]:
    """The ASGI app and the run manager whose nursery the server must provide.

    ``queue``: a shared run queue makes the server enqueue runs for workers.
    """
    # Flows never see the webhook secrets (IRONFLOW_API_KEY and REDIS_URL are
    # hidden from env() everywhere, see settings.read_env_var).
    env = without_env_names(env, (hook.signature.secret_env for hook in settings.webhooks.values()
                                  if hook.signature is not None))
    # Subworkflows load only from the server's flows directory (engine.lineage reads
    # FLOWS_DIR): with none configured, an ad-hoc flow can load no child flow at all.
    env.pop("FLOWS_DIR", None)
    if settings.flows_dir:
        env["FLOWS_DIR"] = os.path.realpath(settings.flows_dir)
    events = MemoryEventStore(settings.event_capacity)
    runs = RunManager(store, events, registry=registry, env=env,
                      max_runs=settings.max_concurrent_runs,
                      config_concurrency=settings.config_concurrency, queue=queue)
    loader = FlowLoader(registry, env, settings.max_flow_loads, settings.max_flow_source_bytes)
    api = Api(settings=settings, store=store, registry=registry, events=events, runs=runs,
              loader=loader)
    document = openapi_document(ROUTES)

    async def openapi(_request: Request) -> Response:
        return ok(document)

    handlers: dict[str, dict[str, Any]] = {
        "/flows/run": {"POST": api.run_flow},
        "/flows/validate": {"POST": api.validate_flow},
        "/runs": {"GET": api.list_runs},
        "/runs/{run_id}/events": {"GET": EventStream(store, events, runs).handle},
        "/runs/{run_id}/cancel": {"POST": api.cancel_run},
        "/runs/{run_id}/resume": {"POST": api.resume_run},
        "/runs/{run_id}": {"GET": api.get_run, "DELETE": api.delete_run},
        "/nodes": {"GET": api.nodes},
        "/plugins": {"GET": api.plugins},
        "/webhooks/{name}": {"POST": api.webhook},
        "/health": {"GET": api.health},
        "/health/live": {"GET": api.health},
        "/health/ready": {"GET": api.ready},
        "/openapi.json": {"GET": openapi},
    }
    routes = []
    for path, methods in ROUTES:
        # A run id may contain an encoded '/': match it so it is rejected with 400 (API-60).
        pattern = "/runs/{run_id:path}" if path == "/runs/{run_id}" else path
        for method in methods:
            routes.append(Route(pattern, handlers[path][method], methods=[method]))
    if settings.metrics_enabled:
        from ironflow_core.api.metrics import metrics_route

        routes.append(metrics_route(registry, queue))
    public, protected = split_routes(registry.routes)
    router = Router(routes=[*routes, *protected])

    async def routed(scope: Any, receive: Any, send: Any) -> None:
        # With an "app" in scope, Starlette raises HTTPException for 404/405 instead of
        # answering in plain text, so they get the JSON error shape too.
        scope["app"] = router
        await router(scope, receive, send)

    app: Any = ExceptionMiddleware(
        routed,
        handlers={ApiError: _api_error, StoreError: _store_error, HTTPException: _http_error},
    )
    if settings.api_key:
        app = ApiKeyMiddleware(app, settings.api_key,
                               signed_webhook_paths(settings.webhooks))
    if public:
        app = PublicRoutes(app, public, builtin=routes)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app = CORSMiddleware(app, allow_origins=list(settings.cors_origins),
                             allow_methods=["*"], allow_headers=["*"])
    return InternalErrorMiddleware(app), runs
