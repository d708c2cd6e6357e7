"""JSON and data-shaping nodes (semantics.md#data-nodes, CND-30, JSON-1/2/5).

Each node runs the way the engine runs it: the step's JSON config is
structured into the node's config class first (so a wrong parameter type must
still load), then the run function gets a real ``NodeContext``.
"""

from __future__ import annotations

from typing import Any

import pytest

from ironflow_core.configs import structure_config
from ironflow_core.errors import NodeError
from ironflow_core.nodes import jsondata
from ironflow_core.registry import build_registry
from ironflow_core.testing import make_registry, node_context

SPECS = {spec.name: spec for spec in jsondata.NODES}
REGISTRY = make_registry()


async def run(node: str, ctx: dict[str, Any], **config: Any) -> dict[str, Any]:
    spec = SPECS[node]
    raw = {"_step_name": "s", **config}
    context = node_context(ctx, registry=REGISTRY, node_type=node, raw_config=raw)
    return dict(await spec.run(context, structure_config(spec.config, raw)))


async def fails(node: str, ctx: dict[str, Any], **config: Any) -> str:
    with pytest.raises(NodeError) as caught:
        await run(node, ctx, **config)
    return str(caught.value)


def test_appendix_b_summaries_and_registration() -> None:
    registry = build_registry(env={}, entry_points=False)
    expected = {
        "json_parse": "Parse a JSON string from context into a value",
        "json_stringify": "Serialize a context value to a JSON string",
        "json_extract_path": (
            "Extract a value from JSON data using a dotted path with optional array indexes"
        ),
        "select_fields": "Select specific fields from a context object",
        "rename_fields": "Rename fields in a context object",
        "data_transform": "Transform data by mapping and renaming fields",
        "data_filter": "Filter array items by a condition",
        "batch": "Split an array into chunks of a specified size",
        "deduplicate": "Remove duplicate items from an array",
    }
    for name, summary in expected.items():
        assert registry.nodes[name].summary == summary


def test_node_4_wrong_types_still_load() -> None:
    """Parameters are checked when the step runs, so a bad one fails only that step."""
    for spec in jsondata.NODES:
        config = structure_config(
            spec.config, {"source_key": 1, "output_key": [], "fields": "x", "size": "abc"}
        )
        assert config is not None


# -- json_parse (JP-1) ------------------------------------------------------------------


async def test_jp_1_parses_object() -> None:
    assert await run("json_parse", {"raw": '{"a": 1}'}, source_key="raw", output_key="v") == {
        "v": {"a": 1}
    }


async def test_jp_1_any_json_type() -> None:
    for text, value in [("[1,2]", [1, 2]), ('"x"', "x"), ("null", None), ("true", True)]:
        out = await run("json_parse", {"raw": text}, source_key="raw", output_key="v")
        assert out == {"v": value}


async def test_json_2_int_and_float_stay_distinct() -> None:
    out = await run("json_parse", {"raw": "[1, 1.0, -3, 2.5e0]"}, source_key="raw", output_key="v")
    assert [type(x) for x in out["v"]] == [int, float, int, float]


async def test_jp_1_integers_beyond_u64_become_floats_like_serde() -> None:
    out = await run(
        "json_parse",
        {"raw": "[18446744073709551615, 18446744073709551616]"},
        source_key="raw",
        output_key="v",
    )
    assert out["v"][0] == 2**64 - 1 and isinstance(out["v"][0], int)
    assert isinstance(out["v"][1], float)


async def test_jp_1_missing_key() -> None:
    assert await fails("json_parse", {}, source_key="raw", output_key="v") == (
        "Key 'raw' not found in context"
    )


async def test_jp_1_value_not_a_string() -> None:
    assert await fails("json_parse", {"raw": {"a": 1}}, source_key="raw", output_key="v") == (
        "Value at 'raw' is not a string"
    )


async def test_jp_1_parse_failure_carries_parser_message() -> None:
    message = await fails("json_parse", {"raw": "{bad"}, source_key="raw", output_key="v")
    assert "line 1 column 2" in message


async def test_jp_1_non_json_constants_and_lone_surrogates_rejected() -> None:
    for text in ["NaN", "[Infinity]", "-Infinity", '"\\ud800"']:
        await fails("json_parse", {"raw": text}, source_key="raw", output_key="v")
    ok = await run("json_parse", {"raw": '"\\ud83d\\ude00"'}, source_key="raw", output_key="v")
    assert ok == {"v": "\U0001f600"}


async def test_jp_1_nesting_limit_like_serde() -> None:
    deep_ok = "[" * 127 + "]" * 127
    await run("json_parse", {"raw": deep_ok}, source_key="raw", output_key="v")
    message = await fails(
        "json_parse", {"raw": "[" * 128 + "]" * 128}, source_key="raw", output_key="v"
    )
    assert "recursion limit exceeded" in message
    message = await fails("json_parse", {"raw": "[" * 100_000}, source_key="raw", output_key="v")
    assert message


async def test_node_4_required_parameters() -> None:
    assert await fails("json_parse", {"raw": "1"}, output_key="v") == (
        "json_parse requires 'source_key'"
    )
    assert await fails("json_parse", {"raw": "1"}, source_key="raw") == (
        "json_parse requires 'output_key'"
    )
    # present but not a string counts as missing
    assert await fails("json_parse", {"raw": "1"}, source_key=5, output_key="v") == (
        "json_parse requires 'source_key'"
    )


# -- json_stringify (JS-1) --------------------------------------------------------------


async def test_js_1_compact_sorted_keys() -> None:
    value = {"b": 1, "a": [1, 2.5, None, True], "é": "/ü"}
    out = await run("json_stringify", {"v": value}, source_key="v", output_key="s")
    assert out == {"s": '{"a":[1,2.5,null,true],"b":1,"é":"/ü"}'}


async def test_js_1_string_is_json_quoted() -> None:
    out = await run("json_stringify", {"v": "abc"}, source_key="v", output_key="s")
    assert out == {"s": '"abc"'}


async def test_json_2_float_keeps_its_point() -> None:
    out = await run("json_stringify", {"v": [3.0, 3]}, source_key="v", output_key="s")
    assert out == {"s": "[3.0,3]"}


async def test_js_1_round_trip() -> None:
    value = {"z": {"y": [1, 2.5, "x"]}, "a": None}
    text = (await run("json_stringify", {"v": value}, source_key="v", output_key="s"))["s"]
    back = await run("json_parse", {"raw": text}, source_key="raw", output_key="v")
    assert back == {"v": value}


async def test_js_1_errors() -> None:
    assert await fails("json_stringify", {}, source_key="v", output_key="s") == (
        "Key 'v' not found in context"
    )
    assert await fails("json_stringify", {"v": 1}, source_key="v") == (
        "json_stringify requires 'output_key'"
    )


# -- json_extract_path (JEP-1..3) -------------------------------------------------------

DOC = {"a": {"b": [{"c": 1}, {"c": 2.5}]}, "items": [[10, 11], [12]], "s": "text"}


async def extract(path: str, source: Any = DOC, **extra: Any) -> Any:
    out = await run(
        "json_extract_path", {"src": source}, source_key="src", path=path, output_key="out", **extra
    )
    assert list(out) == ["out"]
    return out["out"]


async def test_jep_2_dotted_path_with_indexes() -> None:
    assert await extract("a.b[1].c") == 2.5
    assert await extract("a.b[0]") == {"c": 1}
    assert await extract("items[0][1]") == 11
    assert await extract("items[ 1 ].[0]") == 12


async def test_jep_2_empty_segments_skipped() -> None:
    assert await extract("a..b[0].c") == 1
    assert await extract(".a.b[0].c.") == 1


async def test_jep_2_root_array_index() -> None:
    assert await extract("[1]", source=["x", "y"]) == "y"


async def test_jep_2_not_found_cases_give_null() -> None:
    for path in ["a.x", "a.b[2]", "a.b[-1]", "a.b[x]", "a.b[0", "a[0]", "s.x", "items.0", "a.b.c"]:
        assert await extract(path) is None, path


async def test_jep_2_blank_path_selects_whole_source() -> None:
    assert await extract("  ") == DOC


async def test_jep_3_default_when_missing() -> None:
    assert await extract("a.zz", default={"d": 1}) == {"d": 1}
    assert await extract("a.b[0].c", default=99) == 1


async def test_jep_3_required_missing_error() -> None:
    message = await fails(
        "json_extract_path",
        {"src": DOC},
        source_key="src",
        path="a.zz",
        output_key="out",
        required=True,
    )
    assert message == "Path 'a.zz' was not found in 'src'"


async def test_node_5_required_is_lenient() -> None:
    # a string from the boolean vocabulary counts; a JSON number silently means the default
    await fails(
        "json_extract_path",
        {"src": DOC},
        source_key="src",
        path="q",
        output_key="out",
        required=" Yes ",
    )
    assert await extract("q", required=1) is None
    assert await extract("q", required="maybe") is None


async def test_jep_1_parse_json_first() -> None:
    assert await extract("a[1]", source='{"a":[0,{"k":true}]}', parse_json=True) == {"k": True}
    assert await extract("a", source={"a": 5}, parse_json=True) == 5  # non-strings as is
    assert await extract("a", source='{"a":1}') is None  # without parse_json a string is opaque


async def test_jep_1_parse_json_error() -> None:
    message = await fails(
        "json_extract_path",
        {"src": "{oops"},
        source_key="src",
        path="a",
        output_key="out",
        parse_json="true",
    )
    assert message.startswith("json_extract_path failed to parse 'src' as JSON: ")


async def test_jep_required_parameters() -> None:
    for missing in ["source_key", "path", "output_key"]:
        params = {"source_key": "src", "path": "a", "output_key": "out"}
        del params[missing]
        assert await fails("json_extract_path", {"src": DOC}, **params) == (
            f"json_extract_path requires '{missing}'"
        )


# -- select_fields / rename_fields / data_transform --------------------------------------


async def test_sf_1_selects_existing_listed_fields() -> None:
    out = await run(
        "select_fields",
        {"u": {"a": 1, "b": 2, "c": 3}},
        source_key="u",
        output_key="o",
        fields=["c", "a", "missing", 7],
    )
    assert out == {"o": {"a": 1, "c": 3}}


async def test_sf_1_errors() -> None:
    assert (
        await fails("select_fields", {"u": [1]}, source_key="u", output_key="o", fields=["a"])
        == "Value at 'u' is not an object"
    )
    assert (
        await fails("select_fields", {"u": {}}, source_key="u", output_key="o", fields="a")
        == "select_fields requires 'fields' array"
    )
    assert (
        await fails("select_fields", {}, source_key="u", output_key="o", fields=["a"])
        == "Key 'u' not found in context"
    )


async def test_rn_1_old_to_new() -> None:
    out = await run(
        "rename_fields",
        {"u": {"first": "A", "age": 3, "x": 0}},
        source_key="u",
        output_key="o",
        mapping={"first": "name", "x": 5, "absent": "zz"},
    )
    assert out == {"o": {"name": "A", "age": 3, "x": 0}}


async def test_rn_1_collision_later_sorted_key_wins() -> None:
    source = {"b": 2, "a": 1}
    out = await run(
        "rename_fields", {"u": source}, source_key="u", output_key="o", mapping={"a": "b"}
    )
    assert out == {"o": {"b": 2}}
    out = await run(
        "rename_fields", {"u": source}, source_key="u", output_key="o", mapping={"b": "a"}
    )
    assert out == {"o": {"a": 2}}


async def test_rn_1_errors() -> None:
    assert (
        await fails("rename_fields", {"u": {}}, source_key="u", output_key="o", mapping=["a"])
        == "rename_fields requires 'mapping' object"
    )
    assert (
        await fails("rename_fields", {"u": "s"}, source_key="u", output_key="o", mapping={})
        == "Value at 'u' is not an object"
    )


async def test_dt_1_object_new_from_old() -> None:
    out = await run(
        "data_transform",
        {"u": {"first_name": "A", "yrs": 3, "z": 1}},
        source_key="u",
        output_key="o",
        mapping={"name": "first_name", "age": "yrs", "gone": "nope", "bad": 1},
    )
    assert out == {"o": {"name": "A", "age": 3}}


async def test_dt_1_array_items_mapped_independently() -> None:
    out = await run(
        "data_transform",
        {"u": [{"n": 1}, "scalar", {"m": 2}]},
        source_key="u",
        output_key="o",
        mapping={"id": "n"},
    )
    assert out == {"o": [{"id": 1}, {}, {}]}


async def test_dt_1_errors() -> None:
    assert (
        await fails("data_transform", {"u": 5}, source_key="u", output_key="o", mapping={})
        == "Value at 'u' must be an object or array"
    )
    assert await fails("data_transform", {"u": {}}, source_key="u", output_key="o") == (
        "data_transform requires 'mapping' object (new_name -> old_name)"
    )


# -- data_filter (DF-1, CND-30, JSON-5) --------------------------------------------------

PEOPLE = [
    {"name": "a", "age": 30, "tag": "red-ish", "opt": None},
    {"name": "b", "age": 17.5, "tag": 5},
    {"name": "c", "age": "40", "opt": 1},
    "not an object",
    {"name": "d", "age": 1.0},
]


async def keep(op: str, field: str = "age", items: Any = PEOPLE, **extra: Any) -> list[Any]:
    out = await run(
        "data_filter", {"xs": items}, source_key="xs", output_key="o", field=field, op=op, **extra
    )
    assert out["o_count"] == len(out["o"])
    assert set(out) == {"o", "o_count"}
    return out["o"]


async def test_df_1_eq() -> None:
    assert await keep("eq", value=30) == [PEOPLE[0]]


async def test_json_5_int_and_float_not_equal() -> None:
    assert await keep("eq", value=1) == []
    assert await keep("eq", value=1.0) == [PEOPLE[4]]
    assert await keep("eq", items=[{"age": True}, {"age": 1}], value=True) == [{"age": True}]


async def test_json_5_objects_equal_regardless_of_key_order() -> None:
    items = [{"v": {"a": 1, "b": [1, {"c": 2}]}}, {"v": {"a": 1, "b": [1, {"c": 2.0}]}}]
    assert await keep("eq", field="v", items=items, value={"b": [1, {"c": 2}], "a": 1}) == [
        items[0]
    ]


async def test_cnd_30_neq_excludes_missing_field() -> None:
    assert [p["name"] for p in await keep("neq", value=30)] == ["b", "c", "d"]


async def test_cnd_30_numeric_ops_need_two_numbers() -> None:
    assert [p["name"] for p in await keep("gt", value=17.5)] == ["a"]
    assert [p["name"] for p in await keep("gte", value=17.5)] == ["a", "b"]
    assert [p["name"] for p in await keep("lt", value=18)] == ["b", "d"]
    assert [p["name"] for p in await keep("lte", value=1)] == ["d"]
    assert await keep("gt", value="10") == []  # string values never compare numerically
    assert await keep("gt", items=[{"age": True}], value=0) == []


async def test_cnd_30_exists_and_not_exists() -> None:
    assert [p["name"] for p in await keep("exists", field="opt")] == ["c"]
    names = [p if isinstance(p, str) else p["name"] for p in await keep("not_exists", field="opt")]
    assert names == ["a", "b", "not an object", "d"]


async def test_cnd_30_contains_needs_two_strings() -> None:
    assert [p["name"] for p in await keep("contains", field="tag", value="red")] == ["a"]
    assert await keep("contains", field="tag", value=5) == []


async def test_cnd_30_missing_value_excludes_everything() -> None:
    assert await keep("eq") == []
    assert await keep("neq") == []


async def test_cnd_30_explicit_null_value_is_compared() -> None:
    assert [p["name"] for p in await keep("eq", field="opt", value=None)] == ["a"]


async def test_cnd_30_unknown_op_excludes_all_without_error() -> None:
    assert await keep("between", value=1) == []


async def test_df_1_errors() -> None:
    assert await fails("data_filter", {"xs": []}, source_key="xs", output_key="o", field="f") == (
        "data_filter requires 'op' (eq, neq, gt, lt, gte, lte, contains, exists)"
    )
    assert await fails("data_filter", {"xs": []}, source_key="xs", output_key="o", op="eq") == (
        "data_filter requires 'field'"
    )
    assert (
        await fails("data_filter", {"xs": {}}, source_key="xs", output_key="o", field="f", op="eq")
        == "Value at 'xs' is not an array"
    )


# -- batch (BA-1) ------------------------------------------------------------------------


async def test_ba_1_chunks() -> None:
    out = await run("batch", {"xs": [1, 2, 3, 4, 5]}, source_key="xs", output_key="b", size=2)
    assert out == {"b": [[1, 2], [3, 4], [5]], "b_count": 3}
    out = await run("batch", {"xs": [1, 2]}, source_key="xs", output_key="b", size=5)
    assert out == {"b": [[1, 2]], "b_count": 1}


async def test_ba_1_empty_source() -> None:
    out = await run("batch", {"xs": []}, source_key="xs", output_key="b", size=3)
    assert out == {"b": [], "b_count": 0}


async def test_ba_1_size_forms() -> None:
    for size in ["2", " 2 ", 2.0, "${ctx.n}"]:
        out = await run(
            "batch", {"xs": [1, 2, 3], "n": 2}, source_key="xs", output_key="b", size=size
        )
        assert out["b_count"] == 2


async def test_ba_1_size_errors() -> None:
    base = {"source_key": "xs", "output_key": "b"}
    ctx = {"xs": [1]}
    assert await fails("batch", ctx, **base, size=0) == "batch 'size' must be greater than 0"
    bad = "'size' must be a non-negative whole number in u64 range"
    for size in ["abc", -1, 1.5, True]:
        assert await fails("batch", ctx, **base, size=size) == bad
    assert await fails("batch", ctx, **base) == "batch requires 'size' (positive integer)"
    assert await fails("batch", {"xs": "s"}, **base, size=1) == "Value at 'xs' is not an array"


# -- deduplicate (DD-1) ------------------------------------------------------------------


async def test_dd_1_whole_item_identity_uses_sorted_compact_json() -> None:
    items = [{"a": 1, "b": 2}, {"b": 2, "a": 1}, 1, 1.0, 1, "1"]
    out = await run("deduplicate", {"xs": items}, source_key="xs", output_key="u")
    assert out == {"u": [{"a": 1, "b": 2}, 1, 1.0, "1"], "u_removed": 2}


async def test_dd_1_by_key_first_wins() -> None:
    items = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 1, "v": "c"}, {"id": 1.0}]
    out = await run("deduplicate", {"xs": items}, source_key="xs", output_key="u", key="id")
    assert out == {"u": [items[0], items[1], items[3]], "u_removed": 1}


async def test_dd_1_items_missing_key_collapse_into_first() -> None:
    items = [{"v": 1}, {"id": ""}, {"v": 2}, "x", {"id": None}]
    out = await run("deduplicate", {"xs": items}, source_key="xs", output_key="u", key="id")
    assert out == {"u": [{"v": 1}, {"id": ""}, {"id": None}], "u_removed": 2}


async def test_dd_1_non_string_key_ignored() -> None:
    out = await run(
        "deduplicate", {"xs": [{"a": 1}, {"a": 2}]}, source_key="xs", output_key="u", key=5
    )
    assert out == {"u": [{"a": 1}, {"a": 2}], "u_removed": 0}


async def test_dd_1_errors() -> None:
    assert await fails("deduplicate", {"xs": []}, source_key="xs") == (
        "deduplicate requires 'output_key'"
    )
    assert await fails("deduplicate", {}, source_key="xs", output_key="u") == (
        "Key 'xs' not found in context"
    )


# -- upstream examples (semantics.md#acceptance) replayed node by node --------------------------------------


async def test_example_07_data_pipeline() -> None:
    import hashlib

    ctx: dict[str, Any] = {
        "orders": [
            {"id": "A1", "amount": 100, "customer_name": "Alice", "status": "completed"},
            {"id": "A2", "amount": 50, "customer_name": "Bob", "status": "pending"},
            {"id": "A3", "amount": 200, "customer_name": "Carol", "status": "completed"},
            {"id": "A1", "amount": 100, "customer_name": "Alice", "status": "completed"},
            {"id": "A4", "amount": 75, "customer_name": "Dave", "status": "completed"},
        ]
    }
    ctx |= await run(
        "data_filter",
        ctx,
        source_key="orders",
        field="status",
        op="eq",
        value="completed",
        output_key="completed_orders",
    )
    ctx |= await run(
        "data_transform",
        ctx,
        source_key="completed_orders",
        mapping={"order_id": "id", "total": "amount", "buyer": "customer_name"},
        output_key="transformed",
    )
    ctx |= await run(
        "deduplicate", ctx, source_key="transformed", key="order_id", output_key="unique_orders"
    )
    ctx |= await run("json_stringify", ctx, source_key="unique_orders", output_key="orders_json")
    ctx |= await run("batch", ctx, source_key="unique_orders", size=3, output_key="batches")
    assert ctx["completed_orders_count"] == 4
    assert len(ctx["unique_orders"]) == 3 and ctx["unique_orders_removed"] == 1
    assert ctx["orders_json"] == (
        '[{"buyer":"Alice","order_id":"A1","total":100},'
        '{"buyer":"Carol","order_id":"A3","total":200},'
        '{"buyer":"Dave","order_id":"A4","total":75}]'
    )
    assert hashlib.sha256(ctx["orders_json"].encode()).hexdigest() == (
        "12452f16b6376b3210b0992a3eb37178797c400e98bd2aa35a649d738b308948"
    )
    assert ctx["batches_count"] == 1


async def test_example_02_transform_pipeline() -> None:
    users = [
        {"name": "Alice", "age": 25, "status": "active"},
        {"name": "Bob", "age": 19, "status": "inactive"},
        {"name": "Carol", "age": 32, "status": "active"},
        {"name": "Dave", "age": 41, "status": "pending"},
        {"name": "Eve", "age": 28, "status": "active"},
    ]
    config = {"host": "localhost", "port": 5432}
    ctx: dict[str, Any] = {
        "users": users,
        "tags": [{"tag": "a"}, {"tag": "a"}, {"tag": "b"}],
        "config": config,
    }
    ctx |= await run(
        "data_filter", ctx, source_key="users", field="age", op="gt", value=20, output_key="adults"
    )
    ctx |= await run(
        "data_transform",
        ctx,
        source_key="adults",
        mapping={"full_name": "name", "years": "age"},
        output_key="transformed",
    )
    ctx |= await run(
        "rename_fields",
        ctx,
        source_key="config",
        mapping={"db_host": "host", "db_port": "port"},
        output_key="renamed_config",
    )
    ctx |= await run("batch", ctx, source_key="users", size=2, output_key="batches")
    ctx |= await run("deduplicate", ctx, source_key="tags", output_key="unique_tags")
    assert ctx["adults_count"] == 4
    assert [u["years"] for u in ctx["transformed"]] == [25, 32, 41, 28]
    assert set(ctx["transformed"][0]) == {"full_name", "years"}
    assert ctx["renamed_config"] == config  # new→old mapping passed to rename_fields (RN-1)
    assert ctx["batches_count"] == 3
    assert ctx["unique_tags"] == [{"tag": "a"}, {"tag": "b"}] and ctx["unique_tags_removed"] == 1


async def test_example_02_filter_and_batch() -> None:
    users = [
        {"name": n, "email": f"{n.lower()}@example.com", "status": s}
        for n, s in [
            ("Alice", "active"),
            ("Bob", "inactive"),
            ("Carol", "active"),
            ("Dave", "active"),
        ]
    ]
    ctx: dict[str, Any] = {"users": users}
    ctx |= await run(
        "data_filter",
        ctx,
        source_key="users",
        field="status",
        op="eq",
        value="active",
        output_key="active_users",
    )
    ctx |= await run(
        "deduplicate", ctx, source_key="active_users", key="email", output_key="unique_users"
    )
    ctx |= await run("batch", ctx, source_key="unique_users", size=2, output_key="batches")
    assert [u["name"] for u in ctx["active_users"]] == ["Alice", "Carol", "Dave"]
    assert ctx["active_users_count"] == 3 and ctx["unique_users_removed"] == 0
    assert [[u["name"] for u in b] for b in ctx["batches"]] == [["Alice", "Carol"], ["Dave"]]
    assert ctx["batches_count"] == 2


async def test_example_02_json_operations() -> None:
    raw = '\n{"name":"Alice","email":"alice@example.com","age":30,"role":"admin"}\n            '
    ctx: dict[str, Any] = {"raw_json": raw}
    ctx |= await run("json_parse", ctx, source_key="raw_json", output_key="parsed")
    ctx |= await run(
        "select_fields",
        ctx,
        source_key="parsed",
        fields=["name", "email"],
        output_key="user_summary",
    )
    ctx |= await run("json_stringify", ctx, source_key="user_summary", output_key="result_json")
    assert ctx["parsed"] == {
        "age": 30,
        "email": "alice@example.com",
        "name": "Alice",
        "role": "admin",
    }
    assert ctx["result_json"] == '{"email":"alice@example.com","name":"Alice"}'
    await fails(
        "json_parse", {"raw_json": "not valid JSON"}, source_key="raw_json", output_key="parsed"
    )
