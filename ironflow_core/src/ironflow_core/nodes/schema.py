"""JSON Schema nodes (semantics.md#text-nodes ``validate_schema``/``json_validate``).

``jsonschema`` is imported when a step runs, not with the module, so the CLI
starts fast. The draft comes from ``$schema`` (2020-12 when absent), ``format``
is annotation-only (no format checker) and references resolve only within the
schema and the bundled meta-schemas: nothing is fetched over the network.
A failed validation is a structured failure (ENG-80): the task fails and its
``validation_*`` output is still published.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from ironflow_core import jsonutil
from ironflow_core.configs import run_required
from ironflow_core.errors import NodeError, NodeFailure
from ironflow_core.nodes.jsondata import parse_json_text
from ironflow_core.params import ABSENT, JsonValue, required_str, source_value
from ironflow_core.specs import NodeSpec

if TYPE_CHECKING:
    from ironflow_core.context import NodeContext


@attrs.frozen
class SchemaConfig:
    """The parameters of ``json_validate``, ``validate_schema``."""

    source_key: str | None = run_required(lenient=True)
    schema: JsonValue = ABSENT
    """Inline schema; wins over ``schema_key`` whenever present, whatever its type."""
    schema_key: Any = None


def _schema(ctx: Any, config: SchemaConfig, node: str) -> Any:
    if config.schema is not ABSENT:
        return config.schema
    key = config.schema_key
    if not isinstance(key, str):
        raise NodeError(f"{node} requires 'schema' or 'schema_key'")
    schema = source_value(ctx, key)
    if isinstance(schema, str):
        try:
            return parse_json_text(schema)
        except ValueError as exc:
            raise NodeError(f"Invalid JSON schema string in '{key}': {exc}") from None
    return schema


def _draft_key(uri: str) -> str:
    # like upstream: http and https, with or without the trailing '#', name one draft
    return uri.rstrip("#").removeprefix("https://").removeprefix("http://")


def _validator_class(schema: Any) -> Any:
    from jsonschema import validators

    drafts = (
        validators.Draft4Validator,
        validators.Draft6Validator,
        validators.Draft7Validator,
        validators.Draft201909Validator,
        validators.Draft202012Validator,
    )
    if isinstance(schema, bool) or not isinstance(schema, dict) or "$schema" not in schema:
        return validators.Draft202012Validator
    uri = schema["$schema"]
    if isinstance(uri, str):
        for draft in drafts:
            if _draft_key(draft.META_SCHEMA["$schema"]) == _draft_key(uri):
                return draft
    raise NodeError(
        f"Invalid JSON schema: Unknown meta-schema: '{uri}'. "
        "Custom meta-schemas must be registered in the registry before use"
    )


def _pointer(path: Iterable[Any]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def validate(data: Any, schema: Any) -> list[str]:
    """Every violation as ``<message> at <json-pointer>``; ``NodeError`` for a bad schema."""
    from jsonschema.exceptions import SchemaError
    from jsonschema_specifications import REGISTRY
    from referencing.exceptions import Unresolvable

    if not isinstance(schema, (dict, bool)):
        raise NodeError(
            f"Invalid JSON schema: {jsonutil.dumps(schema)} is not of type 'object', 'boolean'"
        )
    cls = _validator_class(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise NodeError(f"Invalid JSON schema: {exc.message}") from None
    validator = cls(schema, registry=REGISTRY, format_checker=None)
    try:
        return [
            f"{error.message} at {_pointer(error.absolute_path)}"
            for error in validator.iter_errors(data)
        ]
    except Unresolvable as exc:
        raise NodeError(f"Invalid JSON schema: {exc}") from None
    except RecursionError:  # a $ref cycle that never reaches a keyword
        raise NodeError("Invalid JSON schema: $ref recursion limit exceeded") from None


def _finish(errors: list[str]) -> dict[str, Any]:
    output = {"validation_success": not errors, "validation_errors": errors}
    if errors:
        raise NodeFailure("Schema validation failed: " + "; ".join(errors), output)
    return output


async def validate_schema(ctx: NodeContext, config: SchemaConfig) -> dict[str, Any]:
    """The ``validate_schema`` node: validate context data against a JSON Schema."""
    source_key = required_str("validate_schema", "source_key", config.source_key)
    schema = _schema(ctx, config, "validate_schema")
    data = source_value(ctx, source_key)
    return _finish(validate(data, schema))


async def json_validate(ctx: NodeContext, config: SchemaConfig) -> dict[str, Any]:
    """VS-1: a string value is JSON text to parse first; anything else is validated as is."""
    source_key = required_str("json_validate", "source_key", config.source_key)
    schema = _schema(ctx, config, "json_validate")
    data = source_value(ctx, source_key)
    if isinstance(data, str):
        try:
            data = parse_json_text(data)
        except ValueError as exc:
            raise NodeError(f"Invalid JSON string in '{source_key}': {exc}") from None
    return _finish(validate(data, schema))


NODES: list[NodeSpec] = [
    NodeSpec(
        name="validate_schema",
        run=validate_schema,
        config=SchemaConfig,
        summary="Validate context data against a JSON Schema",
    ),
    NodeSpec(
        name="json_validate",
        run=json_validate,
        config=SchemaConfig,
        summary="Validate JSON text against a JSON Schema",
    ),
]
