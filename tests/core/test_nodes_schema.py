"""JSON Schema nodes (VS-1..3, ENG-80, PY-9)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from ironflow_core.configs import structure_config
from ironflow_core.errors import NodeError, NodeFailure
from ironflow_core.nodes import schema as schema_nodes
from ironflow_core.registry import build_registry
from ironflow_core.testing import make_registry, node_context

SPECS = {spec.name: spec for spec in schema_nodes.NODES}
REGISTRY = make_registry()

ORDER_SCHEMA = {
    "type": "object",
    "required": ["id", "name", "status"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "status": {"type": "string", "enum": ["new", "processing", "done"]},
        "age": {"type": "integer", "minimum": 0},
    },
}
ORDER = {"id": "ORD-123", "name": "Alice", "status": "new", "age": 29}
ORDER_JSON = '{"id":"ORD-123","name":"Alice","status":"new","age":29}'


async def run(node: str, ctx: dict[str, Any], **config: Any) -> dict[str, Any]:
    spec = SPECS[node]
    context = node_context(ctx, registry=REGISTRY, node_type=node, raw_config=config)
    return dict(await spec.run(context, structure_config(spec.config, config)))


async def failure(node: str, ctx: dict[str, Any], **config: Any) -> NodeFailure:
    with pytest.raises(NodeFailure) as caught:
        await run(node, ctx, **config)
    return caught.value


async def plain_error(node: str, ctx: dict[str, Any], **config: Any) -> str:
    with pytest.raises(NodeError) as caught:
        await run(node, ctx, **config)
    assert not isinstance(caught.value, NodeFailure)
    return str(caught.value)


def test_appendix_b_summaries() -> None:
    registry = build_registry(env={}, entry_points=False)
    assert registry.nodes["validate_schema"].summary == (
        "Validate context data against a JSON Schema"
    )
    assert registry.nodes["json_validate"].summary == "Validate JSON text against a JSON Schema"


def test_jsonschema_imported_lazily() -> None:
    code = (
        "import sys, ironflow_core.nodes.schema, ironflow_core.nodes.plugin;"
        "print('jsonschema' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


# -- validate_schema ---------------------------------------------------------------------


async def test_vs_3_valid() -> None:
    out = await run("validate_schema", {"order": ORDER}, source_key="order", schema=ORDER_SCHEMA)
    assert out == {"validation_success": True, "validation_errors": []}


async def test_vs_3_invalid_is_structured_failure() -> None:
    bad = {"id": 7, "status": "lost", "age": -1}
    caught = await failure(
        "validate_schema", {"order": bad}, source_key="order", schema=ORDER_SCHEMA
    )
    assert set(caught.output) == {"validation_success", "validation_errors"}
    assert caught.output["validation_success"] is False
    errors = caught.output["validation_errors"]
    assert len(errors) == 4
    assert all(isinstance(e, str) for e in errors)
    pointers = sorted(e.rsplit(" at ", 1)[1] for e in errors)
    assert pointers == ["", "/age", "/id", "/status"]
    assert str(caught) == "Schema validation failed: " + "; ".join(errors)


async def test_vs_3_pointer_escapes_and_indexes() -> None:
    schema = {"properties": {"a/b~c": {"items": {"type": "string"}}}}
    caught = await failure(
        "validate_schema", {"d": {"a/b~c": ["x", 1]}}, source_key="d", schema=schema
    )
    assert caught.output["validation_errors"][0].endswith(" at /a~1b~0c/1")


async def test_vs_1_validates_value_as_is() -> None:
    # a string is data to validate_schema, never JSON text
    caught = await failure(
        "validate_schema", {"d": ORDER_JSON}, source_key="d", schema={"type": "object"}
    )
    assert caught.output["validation_success"] is False


async def test_vs_schema_key_object_and_json_string() -> None:
    ctx = {"order": ORDER, "s_obj": ORDER_SCHEMA, "s_txt": '{"type":"object","required":["zz"]}'}
    out = await run("validate_schema", ctx, source_key="order", schema_key="s_obj")
    assert out["validation_success"] is True
    caught = await failure("validate_schema", ctx, source_key="order", schema_key="s_txt")
    assert len(caught.output["validation_errors"]) == 1


async def test_vs_inline_schema_wins_over_schema_key() -> None:
    out = await run(
        "validate_schema",
        {"d": 1, "k": {"type": "string"}},
        source_key="d",
        schema={"type": "integer"},
        schema_key="k",
    )
    assert out["validation_success"] is True


async def test_vs_2_requires_schema_or_schema_key() -> None:
    assert await plain_error("validate_schema", {"d": 1}, source_key="d") == (
        "validate_schema requires 'schema' or 'schema_key'"
    )
    assert await plain_error("json_validate", {"d": 1}, source_key="d", schema_key=3) == (
        "json_validate requires 'schema' or 'schema_key'"
    )


async def test_vs_schema_key_errors() -> None:
    assert await plain_error("validate_schema", {"d": 1}, source_key="d", schema_key="k") == (
        "Key 'k' not found in context"
    )
    message = await plain_error(
        "validate_schema", {"d": 1, "k": "{nope"}, source_key="d", schema_key="k"
    )
    assert message.startswith("Invalid JSON schema string in 'k': ")


async def test_vs_2_invalid_schema_is_plain_error() -> None:
    for bad in [{"type": "strin"}, {"minimum": "x"}, {"pattern": "["}, "text", 5, [1]]:
        message = await plain_error("validate_schema", {"d": 1}, source_key="d", schema=bad)
        assert message.startswith("Invalid JSON schema: "), bad


async def test_vs_2_unknown_meta_schema_rejected() -> None:
    message = await plain_error(
        "validate_schema",
        {"d": 1},
        source_key="d",
        schema={"$schema": "https://example.com/custom"},
    )
    assert message.startswith("Invalid JSON schema: Unknown meta-schema: ")


async def test_vs_2_default_draft_is_2020_12() -> None:
    schema = {"prefixItems": [{"type": "integer"}]}
    caught = await failure("validate_schema", {"d": ["x"]}, source_key="d", schema=schema)
    assert caught.output["validation_errors"][0].endswith(" at /0")
    # draft-07 does not know prefixItems, so the same document passes
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", **schema}
    out = await run("validate_schema", {"d": ["x"]}, source_key="d", schema=draft7)
    assert out["validation_success"] is True


async def test_vs_2_draft_from_schema_uri_with_or_without_fragment() -> None:
    for uri in [
        "http://json-schema.org/draft-04/schema#",
        "https://json-schema.org/draft-04/schema",
    ]:
        schema = {"$schema": uri, "maximum": 5, "exclusiveMaximum": True}
        caught = await failure("validate_schema", {"d": 5}, source_key="d", schema=schema)
        assert caught.output["validation_success"] is False
    # the boolean form is not a valid 2020-12 schema
    message = await plain_error(
        "validate_schema", {"d": 5}, source_key="d", schema={"maximum": 5, "exclusiveMaximum": True}
    )
    assert message.startswith("Invalid JSON schema: ")


async def test_vs_2_format_is_annotation_only() -> None:
    out = await run(
        "validate_schema",
        {"d": "not an email"},
        source_key="d",
        schema={"type": "string", "format": "email"},
    )
    assert out["validation_success"] is True


async def test_vs_boolean_schemas() -> None:
    assert (await run("validate_schema", {"d": 1}, source_key="d", schema=True))[
        "validation_success"
    ]
    caught = await failure("validate_schema", {"d": 1}, source_key="d", schema=False)
    assert caught.output["validation_errors"][0].endswith(" at ")


async def test_vs_local_refs_resolve_remote_refs_are_not_fetched() -> None:
    local = {"$defs": {"id": {"type": "string"}}, "properties": {"id": {"$ref": "#/$defs/id"}}}
    caught = await failure("validate_schema", {"d": {"id": 1}}, source_key="d", schema=local)
    assert caught.output["validation_errors"][0].endswith(" at /id")
    remote = {"$ref": "http://127.0.0.1:9/schema.json"}
    message = await plain_error("validate_schema", {"d": 1}, source_key="d", schema=remote)
    assert message.startswith("Invalid JSON schema: ")


async def test_vs_ref_cycle_is_a_plain_error() -> None:
    cycle = {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}
    message = await plain_error("validate_schema", {"d": 1}, source_key="d", schema=cycle)
    assert message.startswith("Invalid JSON schema: ")


async def test_vs_missing_source() -> None:
    assert await plain_error("validate_schema", {}, source_key="d", schema={}) == (
        "Key 'd' not found in context"
    )
    assert await plain_error("validate_schema", {}, schema={}) == (
        "validate_schema requires 'source_key'"
    )


# -- json_validate -----------------------------------------------------------------------


async def test_vs_1_json_validate_parses_string() -> None:
    out = await run("json_validate", {"p": ORDER_JSON}, source_key="p", schema=ORDER_SCHEMA)
    assert out == {"validation_success": True, "validation_errors": []}


async def test_vs_1_json_validate_string_schema_key() -> None:
    ctx = {"p": ORDER_JSON, "s": '{"type":"object","required":["id"]}'}
    out = await run("json_validate", ctx, source_key="p", schema_key="s")
    assert out["validation_success"] is True


async def test_vs_1_json_validate_invalid_payload() -> None:
    caught = await failure("json_validate", {"p": "{}"}, source_key="p", schema=ORDER_SCHEMA)
    assert caught.output["validation_success"] is False
    assert len(caught.output["validation_errors"]) == 3
    assert str(caught).startswith("Schema validation failed: ")


async def test_vs_1_json_validate_bad_json_is_plain_error() -> None:
    message = await plain_error(
        "json_validate", {"p": "{oops"}, source_key="p", schema=ORDER_SCHEMA
    )
    assert message.startswith("Invalid JSON string in 'p': ")


async def test_vs_1_json_validate_non_string_as_is() -> None:
    out = await run("json_validate", {"p": ORDER}, source_key="p", schema=ORDER_SCHEMA)
    assert out["validation_success"] is True


async def test_vs_integral_float_is_an_integer_since_draft_6() -> None:
    """1.0 parsed from JSON text stays a float (JSON-2) yet is an integer to the schema."""
    out = await run("json_validate", {"p": "1.0"}, source_key="p", schema={"type": "integer"})
    assert out["validation_success"] is True


async def test_example_07_json_validate() -> None:
    out = await run(
        "json_validate",
        {"payload_json": ORDER_JSON},
        source_key="payload_json",
        schema=ORDER_SCHEMA,
    )
    assert out == {"validation_success": True, "validation_errors": []}
    caught = await failure(
        "json_validate", {"payload_json": "{}"}, source_key="payload_json", schema=ORDER_SCHEMA
    )
    assert caught.output["validation_success"] is False
