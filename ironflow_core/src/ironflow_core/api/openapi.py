"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

Written by hand from the contract rather than generated from handler
signatures: the handlers parse raw bodies (to keep the contract's error order
and exact texts), so only a hand-written document can say what they accept.
``openapi_document`` refuses a route without a documented operation, and the
test suite checks the document against the live routes and real responses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ironflow_core._version import __version__
from ironflow_core.model import RUN_STATUSES, EventType

JSONObject = dict[str, Any]


def _ref(name: str) -> JSONObject:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: JSONObject, description: str) -> JSONObject:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> JSONObject:
    return _json(_ref("Error"), description)


NULLABLE_STRING = {"type": ["string", "null"]}
TIMESTAMP = {"type": ["string", "null"], "description": "RFC 3339 UTC timestamp"}

SCHEMAS: JSONObject = {
    "Error": {
        "type": "object",
        "required": ["error", "code"],
        "properties": {
            "error": {"type": "string"},
            "code": {"type": "string", "enum": [
                "bad_request", "forbidden", "not_found", "method_not_allowed", "conflict",
                "event_cursor_gone", "payload_too_large", "unsupported_media_type",
                "unprocessable_entity", "service_unavailable", "internal_error"]},
            "error_id": {"type": "string", "description": "Only on 500; also in X-Error-ID"},
            "errors": {"type": "array", "items": {"type": "string"},
                       "description": "Validation errors of an invalid flow"},
        },
    },
    "FlowSource": {
        "type": "object",
        "description": "Exactly one of source, source_base64 or file (null counts as absent).",
        "properties": {
            "source": {"type": ["string", "null"], "description": "Lua flow text"},
            "source_base64": {"type": ["string", "null"],
                              "description": "Lua flow text, standard base64"},
            "file": {"type": ["string", "null"],
                     "description": "Flow file, resolved inside flows_dir when configured"},
        },
    },
    "RunRequest": {
        "allOf": [_ref("FlowSource"), {
            "type": "object",
            "properties": {"context": {"type": ["object", "null"],
                                       "description": "Initial context"}},
        }],
    },
    "ValidateRequest": {
        "allOf": [_ref("FlowSource"), {
            "type": "object",
            "properties": {"strict": {"type": ["boolean", "null"]}},
        }],
    },
    "RunReply": {
        "type": "object",
        "required": ["run_id", "flow_name", "status"],
        "properties": {
            "run_id": {"type": "string"},
            "flow_name": {"type": "string"},
            "status": {"type": "string", "enum": list(RUN_STATUSES)},
        },
    },
    "ResumeReply": {
        "type": "object",
        "required": ["run_id", "status"],
        "properties": {
            "run_id": {"type": "string"},
            "status": {"type": "string", "enum": ["running"]},
        },
    },
    "Warning": {
        "type": "object",
        "required": ["code", "message", "line", "column"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "line": {"type": "integer"},
            "column": {"type": "integer"},
            "step": {"type": "string"},
        },
    },
    "ValidateReply": {
        "type": "object",
        "required": ["valid", "flow_name", "steps"],
        "properties": {
            "valid": {"type": "boolean"},
            "flow_name": NULLABLE_STRING,
            "steps": {"type": ["integer", "null"]},
            "errors": {"type": "array", "items": {"type": "string"}},
            "warnings": {"type": "array", "items": _ref("Warning")},
        },
    },
    "RunSummary": {
        "type": "object",
        "required": ["id", "flow_name", "status", "started", "finished", "task_count"],
        "properties": {
            "id": {"type": "string"},
            "flow_name": {"type": "string"},
            "status": {"type": "string", "enum": list(RUN_STATUSES)},
            "started": TIMESTAMP,
            "finished": TIMESTAMP,
            "task_count": {"type": "integer", "minimum": 0},
        },
    },
    "RunPage": {
        "type": "object",
        "required": ["runs", "limit", "returned", "has_more", "next_cursor"],
        "properties": {
            "runs": {"type": "array", "items": _ref("RunSummary")},
            "limit": {"type": "integer", "minimum": 1},
            "returned": {"type": "integer", "minimum": 0},
            "has_more": {"type": "boolean"},
            "next_cursor": NULLABLE_STRING,
        },
    },
    "TaskRecord": {
        "type": "object",
        "required": ["name", "status", "attempt", "node_type"],
        "properties": {
            "name": {"type": "string"},
            "status": {"type": "string", "enum": [
                "pending", "running", "success", "failed", "skipped", "cancelled"]},
            "attempt": {"type": "integer", "minimum": 0},
            "node_type": {"type": "string"},
            "input": {},
            "output": {},
            "error": {"type": "string"},
            "started": {"type": "string"},
            "finished": {"type": "string"},
            "depends_on": {"type": "array", "items": {"type": "string"},
                           "description": "The steps this step depends on (omitted when none)"},
        },
    },
    "RunRecord": {
        "type": "object",
        "required": ["id", "flow_name", "status", "started", "finished", "ctx", "tasks"],
        "properties": {
            "id": {"type": "string"},
            "flow_name": {"type": "string"},
            "status": {"type": "string", "enum": list(RUN_STATUSES)},
            "started": TIMESTAMP,
            "finished": TIMESTAMP,
            "ctx": {"type": "object"},
            "tasks": {"type": "object", "additionalProperties": _ref("TaskRecord")},
        },
    },
    "Deleted": {
        "type": "object",
        "required": ["deleted"],
        "properties": {"deleted": {"type": "string"}},
    },
    "NodeList": {
        "type": "object",
        "required": ["nodes", "total"],
        "properties": {
            "nodes": {"type": "array", "items": {
                "type": "object",
                "required": ["node_type", "description"],
                "properties": {"node_type": {"type": "string"},
                               "description": {"type": "string"}},
            }},
            "total": {"type": "integer", "minimum": 0},
        },
    },
    "PluginList": {
        "type": "object",
        "required": ["plugins", "total"],
        "properties": {
            "plugins": {"type": "array", "items": {
                "type": "object",
                "required": ["name", "distribution", "version", "status", "provides"],
                "properties": {
                    "name": {"type": "string"},
                    "distribution": {"type": "string"},
                    "version": {"type": "string"},
                    "status": {"type": "string", "enum": ["active", "failed", "disabled"]},
                    "provides": {"type": "array", "items": {"type": "string"},
                                 "description": "e.g. node:http_get, store:redis, route:/ui"},
                    "error": {"type": "string", "description": "Why a plugin failed"},
                },
            }},
            "total": {"type": "integer", "minimum": 0},
        },
    },
    "Cancelling": {
        "type": "object",
        "required": ["run_id", "status"],
        "properties": {"run_id": {"type": "string"},
                       "status": {"type": "string", "enum": ["cancelling"]}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "version"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "ready", "draining", "not_ready"]},
            "version": {"type": "string"},
        },
    },
    "Event": {
        "type": "object",
        "description": "The data of one SSE frame (its id is the resume cursor).",
        "required": ["id", "run_id", "type", "timestamp"],
        "properties": {
            "id": {"type": "string"},
            "run_id": {"type": "string"},
            "type": {"type": "string", "enum": [t.value for t in EventType]},
            "timestamp": {"type": "string"},
            "flow_name": {"type": "string"},
            "run_status": {"type": "string"},
            "step": {"type": "string"},
            "node_type": {"type": "string"},
            "task_status": {"type": "string"},
            "attempt": {"type": "integer"},
            "duration_ms": {"type": "integer"},
            "error": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    "OpenApiDocument": {"type": "object"},
}

RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "Canonical run id: 1-128 ASCII letters, digits, '-' and '_'"}
INTERNAL = {
    "description": "Internal error; the body carries error_id",
    "headers": {"X-Error-ID": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": _ref("Error")}},
}
UNAUTHORIZED = {"description": "Missing or invalid API key (plain text body)",
                "content": {"text/plain": {"schema": {"type": "string"}}}}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$"},
    "description": "Same key and body return the same run; another body with it is 409",
}


def _op(summary: str, responses: JSONObject, *, body: JSONObject | None = None,
        parameters: list[JSONObject] | None = None, open_route: bool = False) -> JSONObject:
    operation: JSONObject = {"summary": summary, "responses": dict(responses)}
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    if open_route:
        operation["security"] = []
    else:
        operation["responses"].setdefault("401", UNAUTHORIZED)
        operation["responses"].setdefault("500", INTERNAL)
    return operation


def _json_body(name: str) -> JSONObject:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


_RUN_ERRORS = {
    "400": _error("Bad source count, bad key, invalid base64, flow failed to load or "
                  "validate (with 'errors')"),
    "403": _error("Ad-hoc sources are disabled"),
    "404": _error("Flow file not found"),
    "409": _error("Idempotency-Key already used for a different request"),
    "413": _error("Body over the limit"),
    "415": _error("Content-Type is not JSON"),
    "422": _error("A field has the wrong type"),
    "503": _error("Draining, or at the run or flow-load limit"),
}

OPERATIONS: dict[tuple[str, str], JSONObject] = {
    ("/flows/run", "POST"): _op(
        "Load and execute a flow; waits for the run to finish",
        {"200": _json(_ref("RunReply"), "The run finished (any status, failed included)"),
         **_RUN_ERRORS},
        body=_json_body("RunRequest"), parameters=[IDEMPOTENCY_KEY],
    ),
    ("/flows/validate", "POST"): _op(
        "Validate a flow without running it",
        {"200": _json(_ref("ValidateReply"), "Validation result"),
         **{k: v for k, v in _RUN_ERRORS.items() if k != "409"}},
        body=_json_body("ValidateRequest"),
    ),
    ("/runs", "GET"): _op(
        "A page of run summaries, newest first",
        {"200": _json(_ref("RunPage"), "One page"),
         "400": _error("Bad status, limit or cursor, or offset given")},
        parameters=[
            {"name": "status", "in": "query", "schema": {"type": "string",
                                                         "enum": list(RUN_STATUSES)}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            {"name": "after", "in": "query", "schema": {"type": "string"},
             "description": "next_cursor of the previous page"},
        ],
    ),
    ("/runs/{run_id}", "GET"): _op(
        "The full run record",
        {"200": _json(_ref("RunRecord"), "The run"), "400": _error("Invalid run id"),
         "404": _error("Run not found")},
        parameters=[RUN_ID],
    ),
    ("/runs/{run_id}/resume", "POST"): _op(
        "Resume an interrupted or failed run in place (same run id); recorded completions "
        "are kept, the other steps run again",
        {"202": _json(_ref("ResumeReply"), "The run continues in this server"),
         "400": _error("Invalid run id"), "404": _error("Run not found"),
         "409": _error("The run is still executing (its lease is live), it already "
                       "succeeded, or it has no stored flow"),
         "503": _error("Draining, or at the run limit")},
        parameters=[RUN_ID],
    ),
    ("/runs/{run_id}", "DELETE"): _op(
        "Delete a run's state and events",
        {"200": _json(_ref("Deleted"), "Deleted"), "400": _error("Invalid run id"),
         "404": _error("Run not found"), "409": _error("The run is still executing")},
        parameters=[RUN_ID],
    ),
    ("/runs/{run_id}/events", "GET"): _op(
        "Server-Sent Events of a run: replay, then live until run_finished",
        {"200": {"description": "text/event-stream; each frame's data is an Event",
                 "content": {"text/event-stream": {"schema": {"type": "string"}}}},
         "400": _error("Invalid run id or cursor"), "404": _error("Run not found"),
         "410": _error("Event cursor is no longer available")},
        parameters=[
            RUN_ID,
            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"},
             "description": "Resume after this event id (wins over 'after')"},
            {"name": "after", "in": "query", "schema": {"type": "string"}},
        ],
    ),
    ("/runs/{run_id}/cancel", "POST"): _op(
        "Cancel a run executing in this server; it ends with status cancelled",
        {"202": _json(_ref("Cancelling"), "Cancellation started"),
         "400": _error("Invalid run id"), "404": _error("Run not found"),
         "409": _error("The run already finished, or is not executing in this server")},
        parameters=[RUN_ID],
    ),
    ("/plugins", "GET"): _op("Installed plugins and what each provides",
                             {"200": _json(_ref("PluginList"), "Plugins in load order")}),
    ("/nodes", "GET"): _op("Registered node types",
                           {"200": _json(_ref("NodeList"), "Nodes, sorted by type")}),
    ("/webhooks/{name}", "POST"): _op(
        "Run the flow configured for a webhook; the JSON body is the initial context",
        {"200": _json(_ref("RunReply"), "The run finished"),
         "400": _error("Body is not a JSON object, reserved key, bad forwarded header, or "
                       "the flow failed to load"),
         "403": _error("Invalid webhook signature"),
         "404": _error("Webhook or flow file not found"),
         "413": _error("Body over the limit"), "415": _error("Content-Type is not JSON"),
         "503": _error("Draining, or at the run or flow-load limit")},
        body={"required": False,
              "content": {"application/json": {"schema": {"type": "object"}}}},
        parameters=[{"name": "name", "in": "path", "required": True,
                     "schema": {"type": "string"}}],
    ),
    ("/health", "GET"): _op("Liveness", {"200": _json(_ref("Health"), "Alive")},
                            open_route=True),
    ("/health/live", "GET"): _op("Liveness", {"200": _json(_ref("Health"), "Alive")},
                                 open_route=True),
    ("/health/ready", "GET"): _op(
        "Readiness: admitting work and the store answers within 2 s",
        {"200": _json(_ref("Health"), "Ready"),
         "503": _json(_ref("Health"), "Draining or not ready")},
        open_route=True,
    ),
    ("/openapi.json", "GET"): _op(
        "This document", {"200": _json(_ref("OpenApiDocument"), "OpenAPI 3.1 document")},
    ),
}


def openapi_document(routes: Iterable[tuple[str, Iterable[str]]]) -> JSONObject:
    """The document for ``routes``; a route without a documented operation is a bug."""
    paths: JSONObject = {}
    for path, methods in routes:
        for method in methods:
            paths.setdefault(path, {})[method.lower()] = OPERATIONS[(path, method)]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "IronFlow API",
            "version": __version__,
            "description": "Run and inspect IronFlow workflows over HTTP.",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }
