"""JSON and data-shaping nodes (semantics.md#data-nodes): parse, stringify, extract, reshape, filter.

Every config field is typed ``Any``: upstream checks parameters when the step
runs, with the exact wording of NODE-4 (a required string that is present but
not a string counts as missing), so the checks live in the run functions and a
flow with a wrong parameter still loads and fails only its own step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ironflow_core import jsonutil
from ironflow_core._compat.numbers import serde_int_text
from ironflow_core._compat.whitespace import RUST_WHITESPACE
from ironflow_core.configs import lenient, run_required
from ironflow_core.errors import NodeError
from ironflow_core.params import (
    ABSENT,
    BoolParam,
    CountParam,
    JsonValue,
    lenient_bool,
    required_str,
    source_value,
    strict_u64,
)
from ironflow_core.specs import NodeSpec

if TYPE_CHECKING:
    from ironflow_core.context import NodeContext

# -- shared parameter and source helpers (also used by csvdata and schema) --------------


def source_array(ctx: Mapping[str, Any], key: str) -> list[Any]:
    """The context value at ``key``, which must be an array (NODE-3)."""
    value = source_value(ctx, key)
    if not isinstance(value, list):
        raise NodeError(f"Value at '{key}' is not an array")
    return value


def source_object(ctx: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The context value at ``key``, which must be an object (NODE-3)."""
    value = source_value(ctx, key)
    if not isinstance(value, dict):
        raise NodeError(f"Value at '{key}' is not an object")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


MAX_NESTING = 127
"""serde_json refuses the 128th nested array/object ("recursion limit exceeded")."""


def parse_json_text(text: str) -> Any:
    """Parse strict JSON as serde_json does; raise ``ValueError`` with the reason.

    Python's parser also accepts ``NaN``/``Infinity``, lone surrogate escapes and
    nesting deeper than serde's limit; those are refused here so a value parsed
    by a node can always be stored and printed.
    """
    try:
        value = jsonutil.loads_strict(
            text, max_depth=None, parse_int=serde_int_text, parse_float=float
        )
    except jsonutil.JsonNestingError:
        raise ValueError("recursion limit exceeded") from None
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if surrogates or text.count("[") + text.count("{") > MAX_NESTING:
        _check_parsed(value, surrogates)
    return value


def _check_parsed(value: Any, surrogates: bool) -> None:
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if surrogates and not _encodable(item):
                raise ValueError("lone surrogate in string escape")
            continue
        if not isinstance(item, (list, dict)):
            continue
        if depth >= MAX_NESTING:
            raise ValueError("recursion limit exceeded")
        if isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        else:
            stack.extend((child, depth + 1) for child in item)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_equal(left: Any, right: Any) -> bool:
    """JSON-5 equality: ``1`` and ``1.0`` differ, booleans are not numbers, key order is moot."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, int) and isinstance(right, int):
        return left == right
    if isinstance(left, float) and isinstance(right, float):
        return left == right
    if isinstance(left, str) and isinstance(right, str):
        return left == right
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(v, right[k]) for k, v in left.items())
    return False


# -- json_parse / json_stringify --------------------------------------------------------


@attrs.frozen
class JsonParseConfig:
    """``json_parse``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)


async def json_parse(ctx: NodeContext, config: JsonParseConfig) -> dict[str, Any]:
    """The ``json_parse`` node: parse a JSON string from context into a value."""
    source_key = required_str("json_parse", "source_key", config.source_key)
    output_key = required_str("json_parse", "output_key", config.output_key)
    text = source_value(ctx, source_key)
    if not isinstance(text, str):
        raise NodeError(f"Value at '{source_key}' is not a string")
    try:
        parsed = parse_json_text(text)
    except ValueError as exc:
        raise NodeError(str(exc)) from None
    return {output_key: parsed}


@attrs.frozen
class JsonStringifyConfig:
    """``json_stringify``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)


async def json_stringify(ctx: NodeContext, config: JsonStringifyConfig) -> dict[str, Any]:
    """The ``json_stringify`` node: serialize a context value to a JSON string."""
    source_key = required_str("json_stringify", "source_key", config.source_key)
    output_key = required_str("json_stringify", "output_key", config.output_key)
    return {output_key: jsonutil.dumps(source_value(ctx, source_key))}


# -- json_extract_path -------------------------------------------------------------------


@attrs.frozen
class JsonExtractPathConfig:
    """``json_extract_path``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    path: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)
    required: BoolParam = None
    default: Any = None
    parse_json: BoolParam = None


_INDEX = re.compile(r"\+?[0-9]+")


def resolve_json_path(value: Any, path: str) -> tuple[bool, Any]:
    """JEP-2: ``a.b[0].c``; returns ``(found, value)``.

    A segment runs to the next ``.`` or ``[``; ``[n]`` indexes an array; empty
    segments are skipped; the wrong container or an unclosed ``[`` is not found.
    """
    current = value
    index, length = 0, len(path)
    while index < length:
        start = index
        while index < length and path[index] not in ".[":
            index += 1
        if index > start:
            if not isinstance(current, dict) or path[start:index] not in current:
                return False, None
            current = current[path[start:index]]
        if index < length and path[index] == "[":
            close = path.find("]", index + 1)
            if close < 0:
                return False, None
            text = path[index + 1 : close].strip(RUST_WHITESPACE)
            if not _INDEX.fullmatch(text) or not isinstance(current, list):
                return False, None
            position = int(text)
            if position >= len(current):
                return False, None
            current = current[position]
            index = close + 1
        if index < length and path[index] == ".":
            index += 1
    return True, current


async def json_extract_path(ctx: NodeContext, config: JsonExtractPathConfig) -> dict[str, Any]:
    """The ``json_extract_path`` node: extract a value from JSON data using a dotted path with optional array indexes."""
    source_key = required_str("json_extract_path", "source_key", config.source_key)
    path = required_str("json_extract_path", "path", config.path)
    output_key = required_str("json_extract_path", "output_key", config.output_key)
    parse_json = lenient_bool(ctx, config.parse_json, False)
    required = lenient_bool(ctx, config.required, False)
    source = source_value(ctx, source_key)
    if parse_json and isinstance(source, str):
        try:
            source = parse_json_text(source)
        except ValueError as exc:
            raise NodeError(
                f"json_extract_path failed to parse '{source_key}' as JSON: {exc}"
            ) from None
    if not path.strip(RUST_WHITESPACE):
        return {output_key: source}
    found, value = resolve_json_path(source, path)
    if not found:
        if required:
            raise NodeError(f"Path '{path}' was not found in '{source_key}'")
        value = config.default
    return {output_key: value}


# -- select_fields / rename_fields / data_transform --------------------------------------


@attrs.frozen
class SelectFieldsConfig:
    """``select_fields``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)
    fields: Any = None


async def select_fields(ctx: NodeContext, config: SelectFieldsConfig) -> dict[str, Any]:
    """The ``select_fields`` node: select specific fields from a context object."""
    source_key = required_str("select_fields", "source_key", config.source_key)
    output_key = required_str("select_fields", "output_key", config.output_key)
    if not isinstance(config.fields, list):
        raise NodeError("select_fields requires 'fields' array")
    source = source_object(ctx, source_key)
    selected = {
        name: source[name] for name in config.fields if isinstance(name, str) and name in source
    }
    return {output_key: selected}


@attrs.frozen
class RenameFieldsConfig:
    """``rename_fields``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)
    mapping: Any = None


async def rename_fields(ctx: NodeContext, config: RenameFieldsConfig) -> dict[str, Any]:
    """RN-1: mapping is old → new; on a name clash the later source key (sorted) wins."""
    source_key = required_str("rename_fields", "source_key", config.source_key)
    output_key = required_str("rename_fields", "output_key", config.output_key)
    mapping = config.mapping
    if not isinstance(mapping, dict):
        raise NodeError("rename_fields requires 'mapping' object")
    source = source_object(ctx, source_key)
    renamed: dict[str, Any] = {}
    for old_name in sorted(source):
        new_name = mapping.get(old_name)
        renamed[new_name if isinstance(new_name, str) else old_name] = source[old_name]
    return {output_key: renamed}


@attrs.frozen
class DataTransformConfig:
    """``data_transform``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)
    mapping: Any = None


def _apply_mapping(item: Any, mapping: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {}
    return {
        new_name: item[old_name]
        for new_name, old_name in sorted(mapping.items())
        if isinstance(old_name, str) and old_name in item
    }


async def data_transform(ctx: NodeContext, config: DataTransformConfig) -> dict[str, Any]:
    """DT-1: mapping is new → old, the opposite direction from ``rename_fields``."""
    source_key = required_str("data_transform", "source_key", config.source_key)
    output_key = required_str("data_transform", "output_key", config.output_key)
    mapping = config.mapping
    if not isinstance(mapping, dict):
        raise NodeError("data_transform requires 'mapping' object (new_name -> old_name)")
    source = source_value(ctx, source_key)
    if isinstance(source, list):
        result: Any = [_apply_mapping(item, mapping) for item in source]
    elif isinstance(source, dict):
        result = _apply_mapping(source, mapping)
    else:
        raise NodeError(f"Value at '{source_key}' must be an object or array")
    return {output_key: result}


# -- data_filter (CND-30) ----------------------------------------------------------------


@attrs.frozen
class DataFilterConfig:
    """``data_filter``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)
    field: str | None = run_required(lenient=True)
    op: str | None = lenient()
    value: JsonValue = ABSENT
    """Absent and JSON null differ: ``eq`` against null keeps items whose field is null."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(left: Any, right: Any) -> tuple[float, float] | None:
    if not (_is_number(left) and _is_number(right)):
        return None
    try:
        return float(left), float(right)
    except OverflowError:
        return None


_NUMERIC_OPS = {
    "gt": lambda a, b: a > b,
    "lt": lambda a, b: a < b,
    "gte": lambda a, b: a >= b,
    "lte": lambda a, b: a <= b,
}


def filter_match(item: Any, field: str, op: str, expected: Any) -> bool:
    """CND-30: one item-level test; unknown operators exclude every item."""
    present = isinstance(item, dict) and field in item
    actual = item[field] if present else None
    if op == "exists":
        return present and actual is not None
    if op == "not_exists":
        return actual is None
    if not present or expected is ABSENT:
        return False
    if op == "eq":
        return json_equal(actual, expected)
    if op == "neq":
        return not json_equal(actual, expected)
    if op in _NUMERIC_OPS:
        pair = _numbers(actual, expected)
        return pair is not None and _NUMERIC_OPS[op](*pair)
    if op == "contains":
        return isinstance(actual, str) and isinstance(expected, str) and expected in actual
    return False


async def data_filter(ctx: NodeContext, config: DataFilterConfig) -> dict[str, Any]:
    """The ``data_filter`` node: filter array items by a condition."""
    source_key = required_str("data_filter", "source_key", config.source_key)
    output_key = required_str("data_filter", "output_key", config.output_key)
    field = required_str("data_filter", "field", config.field)
    if config.op is None:
        raise NodeError("data_filter requires 'op' (eq, neq, gt, lt, gte, lte, contains, exists)")
    items = source_array(ctx, source_key)
    kept = [item for item in items if filter_match(item, field, config.op, config.value)]
    return {output_key: kept, f"{output_key}_count": len(kept)}


# -- batch / deduplicate -----------------------------------------------------------------


@attrs.frozen
class BatchConfig:
    """``batch``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)
    size: CountParam = None


async def batch(ctx: NodeContext, config: BatchConfig) -> dict[str, Any]:
    """The ``batch`` node: split an array into chunks of a specified size."""
    source_key = required_str("batch", "source_key", config.source_key)
    output_key = required_str("batch", "output_key", config.output_key)
    if config.size is None:
        raise NodeError("batch requires 'size' (positive integer)")
    size = strict_u64(ctx, "size", config.size, 0)
    if size == 0:
        raise NodeError("batch 'size' must be greater than 0")
    items = source_array(ctx, source_key)
    chunks = [items[start : start + size] for start in range(0, len(items), size)]
    return {output_key: chunks, f"{output_key}_count": len(chunks)}


@attrs.frozen
class DeduplicateConfig:
    """``deduplicate``'s parameters, as the flow's table gives them."""

    source_key: str | None = run_required(lenient=True)
    output_key: str | None = run_required(lenient=True)
    key: str | None = lenient()


def _identity(item: Any, key: str | None) -> str:
    if key is None:
        return jsonutil.dumps(item)
    if isinstance(item, dict) and key in item:
        return jsonutil.dumps(item[key])
    return ""  # DD-1 quirk: every item lacking the field collapses into the first one


async def deduplicate(ctx: NodeContext, config: DeduplicateConfig) -> dict[str, Any]:
    """The ``deduplicate`` node: remove duplicate items from an array."""
    source_key = required_str("deduplicate", "source_key", config.source_key)
    output_key = required_str("deduplicate", "output_key", config.output_key)
    items = source_array(ctx, source_key)
    seen: set[str] = set()
    unique = []
    for item in items:
        identity = _identity(item, config.key)
        if identity not in seen:
            seen.add(identity)
            unique.append(item)
    return {output_key: unique, f"{output_key}_removed": len(items) - len(unique)}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="json_parse",
        run=json_parse,
        config=JsonParseConfig,
        summary="Parse a JSON string from context into a value",
    ),
    NodeSpec(
        name="json_stringify",
        run=json_stringify,
        config=JsonStringifyConfig,
        summary="Serialize a context value to a JSON string",
    ),
    NodeSpec(
        name="json_extract_path",
        run=json_extract_path,
        config=JsonExtractPathConfig,
        summary="Extract a value from JSON data using a dotted path with optional array indexes",
    ),
    NodeSpec(
        name="select_fields",
        run=select_fields,
        config=SelectFieldsConfig,
        summary="Select specific fields from a context object",
    ),
    NodeSpec(
        name="rename_fields",
        run=rename_fields,
        config=RenameFieldsConfig,
        summary="Rename fields in a context object",
    ),
    NodeSpec(
        name="data_transform",
        run=data_transform,
        config=DataTransformConfig,
        summary="Transform data by mapping and renaming fields",
    ),
    NodeSpec(
        name="data_filter",
        run=data_filter,
        config=DataFilterConfig,
        summary="Filter array items by a condition",
    ),
    NodeSpec(
        name="batch",
        run=batch,
        config=BatchConfig,
        summary="Split an array into chunks of a specified size",
    ),
    NodeSpec(
        name="deduplicate",
        run=deduplicate,
        config=DeduplicateConfig,
        summary="Remove duplicate items from an array",
    ),
]
