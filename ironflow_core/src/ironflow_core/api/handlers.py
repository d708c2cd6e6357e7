"""The endpoint handlers of semantics.md#api (everything but the event stream, see ``sse.py``).

Each handler follows the contract's processing order literally, because the
order decides which error a client sees when a request is wrong in two ways
(API-11, API-50): source count, idempotency, ad-hoc policy, file resolution,
admission, loading, execution.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import attrs
import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ironflow_core._version import __version__
from ironflow_core.api.bodies import (
    UnsafeJsonError,
    is_json_media_type,
    parse_json,
    read_body,
    read_json_object,
)
from ironflow_core.api.errors import ApiError, bad_request, not_found
from ironflow_core.api.events import MemoryEventStore
from ironflow_core.api.idempotency import (
    INVALID_KEY,
    MARKER,
    fingerprint,
    run_id_for_key,
    valid_key,
)
from ironflow_core.api.runs import RunHandle, RunManager
from ironflow_core.api.settings import ServerSettings
from ironflow_core.api.sources import (
    ADHOC_FORBIDDEN,
    FILE_LOAD_FAILED,
    FlowFile,
    FlowLoader,
    FlowLoadFailed,
    Requested,
    pick_source,
    resolve_flow_file,
)
from ironflow_core.api.webhooks import WebhookRequestError, forwarded_headers, verify_signature
from ironflow_core.errors import (
    FlowValidationError,
    IronflowError,
    RunConflictError,
    RunNotFoundError,
    StoreError,
)
from ironflow_core.jsonutil import dumps
from ironflow_core.model import RUN_STATUSES, RunRecord, RunStatus
from ironflow_core.redact import redact_urls
from ironflow_core.runid import run_id_problem
from ironflow_core.specs import StateStore

log = logging.getLogger("ironflow.api")
if TYPE_CHECKING:
    from ironflow_core.registry import Registry

OFFSET_REJECTED = "offset pagination is not supported; use the `after` cursor"
WEBHOOK_RESERVED_KEYS = ("_headers", "_webhook", "_flow_dir")
READY_PROBE_SECONDS = 2.0


class CanonicalJSON(JSONResponse):
    """Every API body is compact JSON with sorted keys (JSON-1)."""

    def render(self, content: Any) -> bytes:
        """Encode with the project's JSON encoder (the same bytes as the CLI's output)."""
        return dumps(content).encode("utf-8")


def ok(data: Any, status: int = 200) -> Response:
    """A JSON reply with ``status``."""
    return CanonicalJSON(data, status_code=status)


def checked_run_id(request: Request) -> str:
    """API-60: validate the path id before any storage access."""
    run_id = request.path_params["run_id"]
    problem = run_id_problem(run_id)
    if problem is not None:
        raise bad_request(problem)
    return run_id


def respond_async(request: Request) -> bool:
    """RFC 7240 ``Prefer: respond-async`` (any of the header's comma-separated tokens)."""
    for value in request.headers.getlist("prefer"):
        for token in value.split(","):
            if token.split(";", 1)[0].strip().lower() == "respond-async":
                return True
    return False


def run_reply(record: RunRecord) -> dict[str, str]:
    """The short answer for a run: its ID, flow name and status."""
    return {"run_id": record.id, "flow_name": record.flow_name, "status": str(record.status)}


@attrs.define
class Api:
    """The REST endpoints: each method handles one route and raises ``ApiError`` for a bad request."""
    settings: ServerSettings
    store: StateStore
    registry: Registry
    events: MemoryEventStore
    runs: RunManager
    loader: FlowLoader

    # --------------------------------------------------------------- runs
    async def _start(self, requested: Requested, file: FlowFile | None,
                     context: dict[str, Any], *, run_id: str | None = None,
                     overlay: dict[str, Any] | None = None, wait: bool = True) -> RunHandle:
        """API-11 steps 3-7: policy, file, admission, load, start."""
        if requested.inline and not self.settings.allow_adhoc_flows:
            raise ApiError(403, ADHOC_FORBIDDEN)
        if file is None and not requested.inline:
            file = resolve_flow_file(self.settings.flows_dir, requested.value)
        admission = self.runs.admit()
        try:
            with admission.preparing():
                flow = await self.loader.load(requested, file)
            if file is not None:
                context["_flow_dir"] = file.flow_dir
            elif self.settings.flows_dir:
                context["_flow_dir"] = os.path.realpath(self.settings.flows_dir)
            try:
                return self.runs.launch(flow, context, admission, run_id=run_id,
                                        overlay=overlay, wait=wait)
            except FlowValidationError as exc:
                raise _flow_invalid(exc, file) from None
        except BaseException:
            admission.release()
            raise

    async def _finish(self, handle: RunHandle) -> Response:
        """API-15: wait for the final record; 200 even when the run failed."""
        await handle.done.wait()
        if handle.error is not None:
            raise handle.error
        assert handle.record is not None
        return ok(run_reply(handle.record))

    async def _existing(self, run_id: str) -> RunRecord | None:
        try:
            return await self.store.get_run(run_id)
        except RunNotFoundError:
            return None

    def _replay(self, record: RunRecord, marker: str) -> Response:
        """API-22: the same request gets the run as it is now; another request is 409."""
        if record.ctx.get(MARKER) != marker:
            raise ApiError(409, "Idempotency-Key was already used for a different request")
        return ok(run_reply(record))

    async def _accepted(self, handle: RunHandle) -> Response:
        """``Prefer: respond-async``: 202 with the run's ID and URL once it is recorded."""
        await handle.created.wait()
        if self.runs.queue is not None:
            await handle.done.wait()  # enqueued (or refused): the answer is known
        if handle.error is not None:
            raise handle.error
        url = f"/runs/{handle.run_id}"
        reply = {"run_id": handle.run_id, "flow_name": handle.executor.flow.name,
                 "status": "pending", "url": url}
        response = ok(reply, 202)
        response.headers["location"] = url
        response.headers["preference-applied"] = "respond-async"
        return response

    async def run_flow(self, request: Request) -> Response:
        """``POST /flows/run``: run a flow and reply with its final status (or 202 with ``Prefer: respond-async``)."""
        if respond_async(request):
            return await self._run_flow(request, wait=False)
        return await self._run_flow(request, wait=True)

    async def _run_flow(self, request: Request, *, wait: bool) -> Response:
        body = await read_json_object(request, self.settings.max_body)
        requested = pick_source(body)
        raw_context = body.get("context")
        if raw_context is not None and not isinstance(raw_context, dict):
            raise ApiError(422, "'context' must be a JSON object")
        context = dict(raw_context or {})
        if MARKER in context:
            raise bad_request(f"'context' must not contain '{MARKER}'")
        keys = request.headers.getlist("idempotency-key")
        if not keys:
            handle = await self._start(requested, None, context, wait=wait)
            return await (self._finish(handle) if wait else self._accepted(handle))
        if len(keys) > 1 or not valid_key(keys[0]):
            raise bad_request(INVALID_KEY)
        run_id = run_id_for_key(keys[0])
        marker = fingerprint(requested.kind, requested.value, raw_context)
        async with self.runs.key_lock(run_id):
            existing = await self._existing(run_id)
            if existing is not None:
                return self._replay(existing, marker)
            context[MARKER] = marker
            handle = await self._start(requested, None, context, run_id=run_id, wait=wait)
            await handle.created.wait()
        if not wait and not isinstance(handle.error, RunConflictError):
            return await self._accepted(handle)
        await handle.done.wait()
        if isinstance(handle.error, RunConflictError):
            # Created meanwhile by another process sharing the store.
            existing = await self._existing(run_id)
            if existing is not None:
                return self._replay(existing, marker)
        return await self._finish(handle)

    async def validate_flow(self, request: Request) -> Response:
        """``POST /flows/validate``: load and plan a flow without running it; errors and warnings listed."""
        body = await read_json_object(request, self.settings.max_body)
        requested = pick_source(body)
        strict = body.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise ApiError(422, "'strict' must be a boolean")
        if requested.inline and not self.settings.allow_adhoc_flows:
            raise ApiError(403, ADHOC_FORBIDDEN)
        file = None if requested.inline else resolve_flow_file(self.settings.flows_dir,
                                                                requested.value)
        try:
            flow = await self.loader.load(requested, file, analyze=True)
        except FlowLoadFailed as exc:
            return ok({"valid": False, "flow_name": None, "steps": None,
                       "errors": [exc.detail]})
        from ironflow_core.validation import validate_definition

        report = validate_definition(flow, self.registry)
        errors = list(report.errors)
        warnings = [
            {"code": w.code, "message": w.message, "line": w.line or 0,
             "column": w.column or 0, **({"step": w.step} if w.step else {})}
            for w in report.warnings
        ]
        if strict and warnings:
            errors.append(f"Strict validation rejected {len(warnings)} warning(s)")
        reply: dict[str, Any] = {"valid": not errors, "flow_name": flow.name,
                                 "steps": len(flow.steps)}
        if errors:
            reply["errors"] = errors
        if warnings:
            reply["warnings"] = warnings
        return ok(reply)

    # ----------------------------------------------------------- webhooks
    async def webhook(self, request: Request) -> Response:
        """``POST /webhooks/{name}``: check the signature, then run the webhook's flow with the request."""
        name = request.path_params["name"]
        hook = self.settings.webhooks.get(name)
        if hook is None:
            raise not_found(f"Webhook '{name}' not found")
        raw = await read_body(request, self.settings.max_body)
        headers = request.scope.get("headers") or []
        try:
            if hook.signature is not None:
                verify_signature(hook.signature, headers, raw)
            overlay = {"_headers": forwarded_headers(hook, headers)}
        except WebhookRequestError as exc:
            raise ApiError(exc.status, str(exc)) from None
        context: dict[str, Any] = {}
        if raw:
            if not is_json_media_type(request.headers.get("content-type")):
                raise ApiError(415, "webhook request body must have Content-Type "
                                    "application/json")
            try:
                context = parse_json(raw)
            except UnsafeJsonError:
                raise
            except ApiError:
                context = None  # type: ignore[assignment]
            if not isinstance(context, dict):
                raise bad_request("webhook request body must be a JSON object")
            for key in WEBHOOK_RESERVED_KEYS:
                if key in context:
                    raise bad_request(f"webhook request body must not contain '{key}'")
        file = resolve_flow_file(self.settings.flows_dir, hook.flow)
        context["_webhook"] = name
        handle = await self._start(Requested("file", hook.flow), file, context, overlay=overlay)
        return await self._finish(handle)

    # --------------------------------------------------------- run records
    async def list_runs(self, request: Request) -> Response:
        """``GET /runs``: a page of run summaries after a cursor, optionally of one status."""
        query = request.query_params
        if "offset" in query:
            raise bad_request(OFFSET_REJECTED)
        status: RunStatus | None = None
        if "status" in query:
            text = query["status"]
            if text not in RUN_STATUSES:
                raise bad_request(f"Invalid status '{text}'. Use: {', '.join(RUN_STATUSES)}")
            status = RunStatus(text)
        cap = self.settings.max_list_records
        limit = min(50, cap)
        limits = query.getlist("limit")
        if len(limits) > 1:
            raise bad_request("'limit' must be given at most once")
        if limits:
            text = limits[0]
            if not text.isascii() or not text.isdigit():
                raise bad_request(f"'limit' must be an integer between 1 and {cap}")
            limit = int(text)
            if not 1 <= limit <= cap:
                raise bad_request(
                    f"'limit' must be between 1 and {cap} (IRONFLOW_MAX_LIST_RECORDS)"
                )
        after = query.get("after") or None
        page = await self.store.list_runs(status=status, limit=limit, after=after)
        return ok({
            "runs": [summary.to_json() for summary in page.runs],
            "limit": limit,
            "returned": len(page.runs),
            "has_more": page.has_more,
            "next_cursor": page.next_cursor,
        })

    async def get_run(self, request: Request) -> Response:
        """``GET /runs/{id}``: the full run record (forwarded request headers removed)."""
        run_id = checked_run_id(request)
        data = (await self.store.get_run(run_id)).to_json()
        if isinstance(data.get("ctx"), dict):
            data["ctx"].pop("_headers", None)
        return ok(data)

    async def resume_run(self, request: Request) -> Response:
        """Resume a run in place (issue 14): 202 with its id; 409 while its lease is live."""
        run_id = checked_run_id(request)
        try:
            await self.runs.resume(run_id)
        except RunConflictError as exc:
            raise ApiError(409, str(exc)) from None
        except IronflowError as exc:
            if isinstance(exc, StoreError):
                raise
            raise ApiError(409, str(exc)) from None
        return ok({"run_id": run_id, "status": "running"}, 202)

    async def delete_run(self, request: Request) -> Response:
        """``DELETE /runs/{id}``: remove a finished run; 409 while it executes."""
        run_id = checked_run_id(request)
        if self.runs.is_active(run_id):
            raise ApiError(409, f"Run '{run_id}' is still executing")
        try:
            await self.store.delete_run(run_id)
        except RunNotFoundError:
            if not self.events.delete_run(run_id):
                raise
        else:
            self.events.delete_run(run_id)
        return ok({"deleted": run_id})

    async def cancel_run(self, request: Request) -> Response:
        """Cancel a run executing in this server: 202 at once, the run ends ``cancelled``."""
        run_id = checked_run_id(request)
        if self.runs.cancel(run_id):
            return ok({"run_id": run_id, "status": "cancelling"}, 202)
        record = await self.store.get_run(run_id)  # 404 when absent
        if record.status.terminal:
            raise ApiError(409, f"Run '{run_id}' already finished ({record.status})")
        raise ApiError(409, f"Run '{run_id}' is not executing in this server")

    # --------------------------------------------------------------- misc
    async def plugins(self, request: Request) -> Response:
        """``GET /plugins``: every plugin with its status and what it provides."""
        plugins = [record.to_json() for record in self.registry.plugins]
        return ok({"plugins": plugins, "total": len(plugins)})

    async def nodes(self, request: Request) -> Response:
        """``GET /nodes``: every node type with its summary."""
        nodes = [{"node_type": name, "description": spec.summary}
                 for name, spec in sorted(self.registry.nodes.items())]
        return ok({"nodes": nodes, "total": len(nodes)})

    async def health(self, request: Request) -> Response:
        """``GET /health``: the process answers (liveness)."""
        return ok({"status": "ok", "version": __version__})

    async def ready(self, request: Request) -> Response:
        """``GET /ready``: the store answers and the server is not draining (readiness)."""
        if self.runs.draining:
            return ok({"status": "draining", "version": __version__}, 503)
        ready = False
        with trio.move_on_after(READY_PROBE_SECONDS):
            try:
                await self.store.list_runs(limit=1)
                ready = True
            except Exception:
                ready = False
        queue = None
        if ready and self.runs.queue is not None:
            queue = await self._queue_status()
            ready = queue is not None
        if not ready:
            return ok({"status": "not_ready", "version": __version__}, 503)
        if queue is not None:
            return ok({"status": "ready", "version": __version__, "queue": queue})
        return ok({"status": "ready", "version": __version__})

    async def _queue_status(self) -> dict[str, Any] | None:
        """A worker-backed server is ready when its queue answers (issue 16)."""
        assert self.runs.queue is not None
        with trio.move_on_after(READY_PROBE_SECONDS):
            try:
                status = (await self.runs.queue.status()).to_json()
            except Exception:
                return None
            workers = status.pop("workers")
            status["workers"] = len(workers)
            return status
        return None


def _flow_invalid(exc: FlowValidationError, file: FlowFile | None) -> ApiError:
    """API-12: a problem found in the flow source reads as a load failure, as it always has.

    Problems placed at a line of the source (unknown node types, configs,
    names) are reported like a flow that did not load: inline sources with
    the ``Failed to parse flow:`` prefix, flow files without their details
    (logged only); flow-level problems (cycles, limits) as they are.
    """
    if not any(problem.line is not None for problem in exc.problems):
        return bad_request(str(exc), errors=exc.errors)
    if file is not None:
        log.warning("flow file %s is invalid: %s", file.path, redact_urls(str(exc)))
        return FlowLoadFailed(FILE_LOAD_FAILED, FILE_LOAD_FAILED)
    detail = redact_urls(str(exc))
    return FlowLoadFailed(f"Failed to parse flow: {detail}", detail)
