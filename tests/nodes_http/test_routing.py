"""``if_http_status`` (semantics.md#http-routing) and ``if_body_contains`` (semantics.md#http-routing) vectors."""

from __future__ import annotations

import pytest

from ironflow_core.errors import NodeError

from .test_http_request import run_node

# -- if_http_status -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "route", "klass"),
    [
        (200, "success", "2xx"),
        (204, "success", "2xx"),
        (404, "error", "4xx"),
        (503, "error", "5xx"),
    ],
)
async def test_ihs_3_default_routes_and_outputs(make_ctx, status, route, klass):
    ctx = make_ctx({"http_status": status}, step="check")
    out = await run_node(ctx, "if_http_status", {"status_key": "http_status"})
    assert out == {
        "_route_check": route,
        "_status_code_check": status,
        "_status_class_check": klass,
    }


async def test_ihs_custom_success_and_error_routes(make_ctx):
    config = {"status_key": "s", "success_route": "ok", "error_route": "bad"}
    out = await run_node(make_ctx({"s": 201}, step="r"), "if_http_status", config)
    assert out["_route_r"] == "ok"
    out = await run_node(make_ctx({"s": 500}, step="r"), "if_http_status", config)
    assert out["_route_r"] == "bad"


async def test_ihs_2_route_map_exact_then_class_then_default(make_ctx):
    routes = {"404": "not_found", "4xx": "client_error", "default": "other", "500": 7}
    config = {"status_key": "s", "routes": routes}
    for status, expected in [
        (404, "not_found"),
        (429, "client_error"),
        (200, "other"),
        (500, "other"),
    ]:
        out = await run_node(make_ctx({"s": status}, step="r"), "if_http_status", config)
        assert out["_route_r"] == expected, status


async def test_ihs_2_route_map_falls_back_to_default_route_then_error_route(make_ctx):
    out = await run_node(
        make_ctx({"s": 302}, step="r"),
        "if_http_status",
        {"status_key": "s", "routes": {"2xx": "fine"}, "default_route": "fallback"},
    )
    assert out["_route_r"] == "fallback"
    out = await run_node(
        make_ctx({"s": 302}, step="r"),
        "if_http_status",
        {"status_key": "s", "routes": {"2xx": "fine"}, "error_route": "oops"},
    )
    assert out["_route_r"] == "oops"


async def test_ihs_status_key_is_a_simple_path_and_strings_parse(make_ctx):
    ctx = make_ctx({"resp": {"meta": {"code": "201"}}}, step="r")
    out = await run_node(ctx, "if_http_status", {"status_key": "ctx.resp.meta.code"})
    assert out["_status_code_r"] == 201
    assert out["_route_r"] == "success"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "s must be a number or numeric string"),
        ([200], "s must be a number or numeric string"),
        (None, "s must be a number or numeric string"),
        ("abc", "s must be a valid status number string"),
        (" 200", "s must be a valid status number string"),
        ("70000", "s must be a valid status number string"),
        (70000, "s value must fit in u16"),
        (-1, "s value must fit in u16"),
        (200.0, "s value must fit in u16"),
    ],
)
async def test_ihs_1_bad_status_values(make_ctx, value, message):
    with pytest.raises(NodeError, match=f"^{message}$"):
        await run_node(make_ctx({"s": value}), "if_http_status", {"status_key": "s"})


async def test_ihs_1_missing_key_and_missing_param(make_ctx):
    with pytest.raises(NodeError, match=r"^Key 'http_status' not found in context$"):
        await run_node(make_ctx(), "if_http_status", {"status_key": "http_status"})
    with pytest.raises(NodeError, match=r"^if_http_status requires 'status_key'$"):
        await run_node(make_ctx(), "if_http_status", {})


# -- if_body_contains -------------------------------------------------------------------------


async def test_ibc_3_case_sensitive_match_and_outputs(make_ctx):
    ctx = make_ctx({"body": "Hello World"}, step="inspect")
    out = await run_node(ctx, "if_body_contains", {"source_key": "body", "pattern": "World"})
    assert out == {"_route_inspect": "true", "_contains_inspect": True}
    out = await run_node(ctx, "if_body_contains", {"source_key": "body", "pattern": "world"})
    assert out == {"_route_inspect": "false", "_contains_inspect": False}


async def test_ibc_2_case_insensitive_unicode(make_ctx):
    ctx = make_ctx({"body": "STRASSE ÄRGER"}, step="i")
    out = await run_node(
        ctx,
        "if_body_contains",
        {"source_key": "body", "pattern": "ärger", "case_sensitive": "no"},
    )
    assert out["_contains_i"] is True


async def test_ibc_1_non_string_values_are_searched_as_compact_json(make_ctx):
    ctx = make_ctx({"http_data": {"url": "https://httpbin.org/get", "n": [1, 2]}}, step="i")
    out = await run_node(
        ctx,
        "if_body_contains",
        {"source_key": "http_data", "pattern": '"n":[1,2]', "true_route": "yes"},
    )
    assert out["_route_i"] == "yes"
    out = await run_node(
        ctx, "if_body_contains", {"source_key": "ctx.http_data.url", "pattern": "httpbin.org"}
    )
    assert out["_contains_i"] is True


async def test_ibc_2_empty_pattern_never_matches(make_ctx):
    out = await run_node(
        make_ctx({"b": "anything"}, step="i"),
        "if_body_contains",
        {"source_key": "b", "pattern": "", "false_route": "nope"},
    )
    assert out == {"_route_i": "nope", "_contains_i": False}


async def test_ibc_pattern_is_not_interpolated(make_ctx):
    ctx = make_ctx({"b": "literal ${ctx.x} here", "x": "X"}, step="i")
    out = await run_node(ctx, "if_body_contains", {"source_key": "b", "pattern": "${ctx.x}"})
    assert out["_contains_i"] is True


async def test_ibc_1_missing_source(make_ctx):
    ctx = make_ctx(step="i")
    out = await run_node(ctx, "if_body_contains", {"source_key": "nope", "pattern": "x"})
    assert out == {"_route_i": "false", "_contains_i": False}
    with pytest.raises(NodeError, match=r"^if_body_contains requires 'nope' to exist in context$"):
        await run_node(
            ctx, "if_body_contains", {"source_key": "nope", "pattern": "x", "required": True}
        )


async def test_ibc_null_value_is_present_and_searched_as_null(make_ctx):
    out = await run_node(
        make_ctx({"b": None}, step="i"),
        "if_body_contains",
        {"source_key": "b", "pattern": "null", "required": True},
    )
    assert out["_contains_i"] is True


async def test_ibc_required_params(make_ctx):
    with pytest.raises(NodeError, match=r"^if_body_contains requires 'source_key'$"):
        await run_node(make_ctx(), "if_body_contains", {"pattern": "x"})
    with pytest.raises(NodeError, match=r"^if_body_contains requires 'pattern'$"):
        await run_node(make_ctx(), "if_body_contains", {"source_key": "b"})
