"""HTTP nodes against a real loopback server: requests, bodies, auth, statuses (semantics.md#http-nodes)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import trio

from ironflow_core.configs import structure_config
from ironflow_core.errors import NodeError
from ironflow_nodes_http import request_node, response, routing

from .loopback import Answer, Seen, json_answer

SPECS = {spec.name: spec for spec in [*request_node.NODES, *routing.NODES]}


async def run_node(ctx: Any, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Structure the config as the loader would, then run the node."""
    spec = SPECS[name]
    return await spec.run(ctx, structure_config(spec.config, {"_step_name": "x", **config}))


def echo(seen: Seen) -> Answer:
    """Reply with what was received, so tests assert on the server's view."""
    payload = {
        "method": seen.method,
        "target": seen.target,
        "headers": dict(seen.headers),
        "body": seen.body.decode(),
    }
    return json_answer(json.dumps(payload))


# -- HTTP-11 vectors ------------------------------------------------------------


async def test_http_11_get_json_response(server, make_ctx):
    server.route("/hello", json_answer('{"message":"hello"}'))
    out = await run_node(make_ctx(), "http_get", {"url": server.url("/hello")})
    assert out["http_status"] == 200
    assert out["http_data"] == {"message": "hello"}
    assert out["http_success"] is True
    assert out["http_attempts"] == 1
    assert out["http_headers"]["content-type"] == "application/json"
    assert set(out) == {"http_status", "http_data", "http_headers", "http_success", "http_attempts"}


async def test_http_11_429_without_fail_on_status_publishes_outputs(server, make_ctx):
    server.route("/limited", json_answer('{"error":"slow down"}', 429, [("Retry-After", "7")]))
    out = await run_node(
        make_ctx(),
        "http_get",
        {"url": server.url("/limited"), "fail_on_status": False, "output_key": "provider"},
    )
    assert out["provider_status"] == 429
    assert out["provider_success"] is False
    assert out["provider_headers"]["retry-after"] == "7"
    assert out["provider_data"] == {"error": "slow down"}
    assert "http_status" not in out


async def test_http_11_status_retry_then_success(server, make_ctx):
    answers = [
        json_answer("{}", 429, [("Retry-After", "0")]),
        json_answer('{"ok":true}'),
    ]
    server.route("/flaky", lambda _seen: answers.pop(0))
    out = await run_node(
        make_ctx(),
        "http_get",
        {
            "url": server.url("/flaky"),
            "retry_statuses": [429],
            "status_retries": 1,
            "output_key": "provider",
        },
    )
    assert out["provider_status"] == 200
    assert out["provider_attempts"] == 2
    assert server.hits("/flaky") == 2


# -- HTTP-4: response shape ------------------------------------------------------


async def test_http_4_data_falls_back_to_raw_text_and_empty_body_is_empty_string(server, make_ctx):
    server.route("/text", Answer(200, [("Content-Type", "text/plain")], b"plain words"))
    server.route("/empty", Answer(204))
    server.route("/nan", Answer(200, [], b"NaN"))
    ctx = make_ctx()
    assert (await run_node(ctx, "http_get", {"url": server.url("/text")}))["http_data"] == (
        "plain words"
    )
    assert (await run_node(ctx, "http_get", {"url": server.url("/empty")}))["http_data"] == ""
    # NaN is not JSON (JSON-3): it stays text.
    assert (await run_node(ctx, "http_get", {"url": server.url("/nan")}))["http_data"] == "NaN"


async def test_http_4_invalid_utf8_is_replaced_and_headers_lowercased_last_wins(server, make_ctx):
    server.route(
        "/odd",
        Answer(
            200,
            [("X-Twice", "first"), ("X-Twice", "second"), ("X-Binary", "caf\xe9")],
            b'"\xff"',
        ),
    )
    out = await run_node(make_ctx(), "http_get", {"url": server.url("/odd")})
    assert out["http_data"] == "\ufffd"
    assert out["http_headers"]["x-twice"] == "second"
    assert out["http_headers"]["x-binary"] == ""
    assert all(name == name.lower() for name in out["http_headers"])


async def test_http_4_json_integers_and_floats_stay_distinct(server, make_ctx):
    server.route("/nums", json_answer('{"i":3,"f":3.0,"big":123456789012345678901234567890}'))
    out = await run_node(make_ctx(), "http_get", {"url": server.url("/nums")})
    data = out["http_data"]
    assert data["i"] == 3 and type(data["i"]) is int
    assert type(data["f"]) is float
    assert type(data["big"]) is float  # beyond u64, as upstream's serde_json reads it


# -- methods ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "method"),
    [("http_get", "GET"), ("http_post", "POST"), ("http_put", "PUT"), ("http_delete", "DELETE")],
)
async def test_http_fixed_method_nodes_ignore_their_method_key(server, make_ctx, node, method):
    server.route("/echo", echo)
    out = await run_node(make_ctx(), node, {"url": server.url("/echo"), "method": "PATCH"})
    assert out["http_data"]["method"] == method


async def test_http_request_method_is_case_insensitive_and_defaults_to_get(server, make_ctx):
    server.route("/echo", echo)
    ctx = make_ctx()
    out = await run_node(ctx, "http_request", {"url": server.url("/echo"), "method": "patch"})
    assert out["http_data"]["method"] == "PATCH"
    out = await run_node(ctx, "http_request", {"url": server.url("/echo")})
    assert out["http_data"]["method"] == "GET"


async def test_http_request_unsupported_method(server, make_ctx):
    with pytest.raises(NodeError, match=r"^Unsupported HTTP method: TRACE$"):
        await run_node(make_ctx(), "http_request", {"url": server.url("/"), "method": "TRACE"})
    assert server.seen == []


# -- headers and auth (HTTP-2) --------------------------------------------------------


async def test_http_headers_values_interpolated_names_literal(server, make_ctx):
    server.route("/echo", echo)
    ctx = make_ctx({"tenant": "acme", "n": 5})
    out = await run_node(
        ctx,
        "http_get",
        {
            "url": server.url("/echo"),
            "headers": {"X-Tenant": "${ctx.tenant}", "X-Count": "${ctx.n}", "X-Skip": 42},
        },
    )
    headers = out["http_data"]["headers"]
    assert headers["x-tenant"] == "acme"
    assert headers["x-count"] == "5"
    assert "x-skip" not in headers
    assert "referer" not in headers


async def test_http_invalid_header_name_or_value_fails_before_io(server, make_ctx):
    ctx = make_ctx({"evil": "a\r\nInjected: 1"})
    with pytest.raises(NodeError, match="Invalid HTTP header name 'Bad Name'"):
        await run_node(ctx, "http_get", {"url": server.url("/"), "headers": {"Bad Name": "x"}})
    with pytest.raises(NodeError, match="Invalid value for HTTP header 'X-Evil'") as info:
        await run_node(
            ctx, "http_get", {"url": server.url("/"), "headers": {"X-Evil": "${ctx.evil}"}}
        )
    assert "Injected" not in str(info.value)
    assert server.seen == []


async def test_http_2_bearer_token_interpolated(server, make_ctx):
    server.route("/echo", echo)
    ctx = make_ctx({"token": "demo-token"})
    out = await run_node(
        ctx, "http_get", {"url": server.url("/echo"), "auth": {"token": "${ctx.token}"}}
    )
    assert out["http_data"]["headers"]["authorization"] == "Bearer demo-token"


async def test_http_2_basic_credentials_not_interpolated(server, make_ctx):
    server.route("/echo", echo)
    out = await run_node(
        make_ctx({"u": "x"}),
        "http_get",
        {
            "url": server.url("/echo"),
            "auth": {"type": "basic", "username": "user", "password": "${ctx.u}"},
        },
    )
    expected = base64.b64encode(b"user:${ctx.u}").decode()
    assert out["http_data"]["headers"]["authorization"] == f"Basic {expected}"


async def test_http_2_basic_without_password_and_url_userinfo(server, make_ctx):
    server.route("/echo", echo)
    ctx = make_ctx()
    out = await run_node(
        ctx, "http_get", {"url": server.url("/echo"), "auth": {"type": "basic", "username": "u"}}
    )
    assert (
        out["http_data"]["headers"]["authorization"] == "Basic " + base64.b64encode(b"u:").decode()
    )
    url = server.url("/echo").replace("http://", "http://user:pass@")
    out = await run_node(ctx, "http_get", {"url": url})
    assert out["http_data"]["headers"]["authorization"] == (
        "Basic " + base64.b64encode(b"user:pass").decode()
    )


async def test_http_2_api_key_default_and_custom_header(server, make_ctx):
    server.route("/echo", echo)
    ctx = make_ctx({"key": "k-123"})
    out = await run_node(
        ctx,
        "http_get",
        {"url": server.url("/echo"), "auth": {"type": "api_key", "key": "${ctx.key}"}},
    )
    assert out["http_data"]["headers"]["x-api-key"] == "k-123"
    out = await run_node(
        ctx,
        "http_get",
        {"url": server.url("/echo"), "auth": {"type": "api_key", "key": "k", "header": "X-Token"}},
    )
    assert out["http_data"]["headers"]["x-token"] == "k"


async def test_http_2_unknown_auth_type_adds_nothing(server, make_ctx):
    server.route("/echo", echo)
    out = await run_node(
        make_ctx(),
        "http_get",
        {"url": server.url("/echo"), "auth": {"type": "digest", "token": "t"}},
    )
    assert "authorization" not in out["http_data"]["headers"]


# -- bodies (HTTP-3, INT-10) ------------------------------------------------------------


async def test_http_3_json_body_recursive_interpolation_sorted_compact(server, make_ctx):
    server.route("/echo", echo)
    ctx = make_ctx({"n": 5, "name": "Ada"})
    out = await run_node(
        ctx,
        "http_post",
        {
            "url": server.url("/echo"),
            "body": {"z": "${ctx.n}", "a": ["${ctx.name}", 1, True, {"${ctx.name}": 2.5}]},
        },
    )
    seen = out["http_data"]
    assert seen["body"] == '{"a":["Ada",1,true,{"${ctx.name}":2.5}],"z":"5"}'
    assert seen["headers"]["content-type"] == "application/json"


async def test_http_3_json_body_keeps_caller_content_type_and_goes_with_get(server, make_ctx):
    server.route("/echo", echo)
    out = await run_node(
        make_ctx(),
        "http_get",
        {
            "url": server.url("/echo"),
            "headers": {"content-type": "application/vnd.api+json"},
            "body": [1, "two"],
        },
    )
    seen = out["http_data"]
    assert seen["method"] == "GET"
    assert seen["body"] == '[1,"two"]'
    assert seen["headers"]["content-type"] == "application/vnd.api+json"


async def test_http_3_form_body_sorted_percent_encoded(server, make_ctx):
    server.route("/echo", echo)
    ctx = make_ctx({"scope": "demo scope"})
    out = await run_node(
        ctx,
        "http_post",
        {
            "url": server.url("/echo"),
            "body_type": "form",
            "body": {
                "scope": "${ctx.scope}",
                "grant_type": "client_credentials",
                "flag": True,
                "n": 3,
                "none": None,
                "list": [1, "a b"],
                "é&=": "~ok-_.",
            },
        },
    )
    seen = out["http_data"]
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen["body"] == (
        "flag=true&grant_type=client_credentials&list=%5B1%2C%22a%20b%22%5D&n=3&none="
        "&scope=demo%20scope&%C3%A9%26%3D=~ok-_."
    )


async def test_http_3_form_requires_object_and_respects_configured_content_type(server, make_ctx):
    server.route("/echo", echo)
    ctx = make_ctx()
    with pytest.raises(NodeError, match=r"^body_type='form' requires 'body' to be an object$"):
        await run_node(
            ctx, "http_post", {"url": server.url("/echo"), "body_type": "form", "body": "x"}
        )
    out = await run_node(
        ctx,
        "http_post",
        {
            "url": server.url("/echo"),
            "body_type": "form",
            "headers": {"CONTENT-TYPE": "application/x-custom"},
            "body": {"a": "b"},
        },
    )
    assert out["http_data"]["headers"]["content-type"] == "application/x-custom"
    assert out["http_data"]["body"] == "a=b"


async def test_http_3_text_body(server, make_ctx):
    server.route("/echo", echo)
    ctx = make_ctx({"who": "world"})
    out = await run_node(
        ctx,
        "http_put",
        {"url": server.url("/echo"), "body_type": "text", "body": "hello ${ctx.who}"},
    )
    assert out["http_data"]["body"] == "hello world"
    assert out["http_data"]["headers"]["content-type"] == "text/plain; charset=utf-8"
    out = await run_node(
        ctx,
        "http_put",
        {"url": server.url("/echo"), "body_type": "text", "body": {"b": 1, "a": None}},
    )
    assert out["http_data"]["body"] == '{"a":null,"b":1}'


async def test_http_3_unsupported_body_type(server, make_ctx):
    with pytest.raises(
        NodeError, match=r"^Unsupported body_type 'xml'\. Expected one of: json, form, text$"
    ):
        await run_node(
            make_ctx(), "http_post", {"url": server.url("/"), "body_type": "xml", "body": "x"}
        )
    assert server.seen == []


# -- statuses (HTTP-7) --------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 500])
async def test_http_7_non_2xx_fails_by_default_without_output(server, make_ctx, status):
    server.route("/bad", json_answer("{}", status))
    with pytest.raises(NodeError) as info:
        await run_node(make_ctx(), "http_get", {"url": server.url("/bad")})
    port = server.port
    assert (
        str(info.value) == f"HTTP GET http://127.0.0.1:{port}/[REDACTED] returned status {status}"
    )
    assert not hasattr(info.value, "output")


@pytest.mark.parametrize("status", [404, 500])
async def test_http_7_fail_on_status_false_returns_outputs(server, make_ctx, status):
    server.route("/bad", json_answer('{"e":1}', status))
    out = await run_node(
        make_ctx(), "http_get", {"url": server.url("/bad"), "fail_on_status": "no"}
    )
    assert out["http_status"] == status
    assert out["http_success"] is False
    assert out["http_data"] == {"e": 1}


async def test_http_7_fail_on_status_interpolated(server, make_ctx):
    server.route("/bad", json_answer("{}", 503))
    out = await run_node(
        make_ctx({"strict": "false"}),
        "http_get",
        {"url": server.url("/bad"), "fail_on_status": "${ctx.strict}"},
    )
    assert out["http_status"] == 503


# -- status retries (HTTP-6) -----------------------------------------------------------------


async def test_http_6_retry_after_is_honoured_in_virtual_time(server, make_ctx, autojump_clock):
    answers = [json_answer("{}", 503, [("Retry-After", "7")]), json_answer('{"ok":1}')]
    server.route("/r", lambda _seen: answers.pop(0))
    start = trio.current_time()
    out = await run_node(
        make_ctx(),
        "http_get",
        {"url": server.url("/r"), "retry_statuses": ["503"], "status_retries": 3},
    )
    elapsed = trio.current_time() - start
    assert out["http_attempts"] == 2
    assert 7 <= elapsed < 7.5


async def test_http_6_retry_after_capped_by_max_retry_after(server, make_ctx, autojump_clock):
    answers = [json_answer("{}", 429, [("Retry-After", "3600")]), json_answer("{}")]
    server.route("/r", lambda _seen: answers.pop(0))
    start = trio.current_time()
    await run_node(
        make_ctx(),
        "http_get",
        {
            "url": server.url("/r"),
            "retry_statuses": [429],
            "status_retries": 1,
            "max_retry_after": 2,
        },
    )
    assert 2 <= trio.current_time() - start < 2.5


async def test_http_6_exponential_backoff_when_retry_after_ignored(
    server, make_ctx, autojump_clock
):
    server.route("/r", json_answer("{}", 500, [("Retry-After", "100")]))
    start = trio.current_time()
    out = await run_node(
        make_ctx(),
        "http_get",
        {
            "url": server.url("/r"),
            "retry_statuses": [500],
            "max_status_retries": 3,
            "status_retry_backoff": 0.5,
            "respect_retry_after": False,
            "fail_on_status": False,
        },
    )
    # 0.5 + 1 + 2 seconds, then the last 500 is returned.
    assert 3.5 <= trio.current_time() - start < 4
    assert out["http_attempts"] == 4
    assert out["http_status"] == 500
    assert server.hits("/r") == 4


async def test_http_6_http_date_retry_after_falls_back_to_backoff(server, make_ctx, autojump_clock):
    answers = [
        json_answer("{}", 429, [("Retry-After", "Wed, 21 Oct 2037 07:28:00 GMT")]),
        json_answer("{}"),
    ]
    server.route("/r", lambda _seen: answers.pop(0))
    start = trio.current_time()
    await run_node(
        make_ctx(),
        "http_get",
        {"url": server.url("/r"), "retry_statuses": [429], "status_retries": 1},
    )
    assert 1 <= trio.current_time() - start < 1.5


async def test_http_6_status_not_listed_is_not_retried(server, make_ctx):
    server.route("/r", json_answer("{}", 502))
    with pytest.raises(NodeError, match="returned status 502"):
        await run_node(
            make_ctx(),
            "http_get",
            {"url": server.url("/r"), "retry_statuses": [503], "status_retries": 5},
        )
    assert server.hits("/r") == 1


async def test_http_6_retried_request_resends_the_same_body(server, make_ctx):
    bodies: list[bytes] = []

    def handler(seen: Seen) -> Answer:
        bodies.append(seen.body)
        return json_answer("{}", 429 if len(bodies) == 1 else 200, [("Retry-After", "0")])

    server.route("/r", handler)
    await run_node(
        make_ctx(),
        "http_post",
        {"url": server.url("/r"), "body": {"a": 1}, "retry_statuses": [429], "status_retries": 1},
    )
    assert bodies == [b'{"a":1}', b'{"a":1}']


# -- validation before any I/O (HTTP-1) ------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, r"^HTTP node requires 'url' parameter$"),
        ({"url": 5}, r"^HTTP node requires 'url' parameter$"),
        ({"timeout": 0}, r"^HTTP timeout must be greater than zero seconds$"),
        ({"timeout": "abc"}, r"^'timeout' must be a finite number$"),
        ({"fail_on_status": "maybe"}, r"^'fail_on_status' must be a boolean$"),
        ({"status_retries": 101}, r"^HTTP status retry count is too large \(max 100\); "),
        ({"status_retries": "many"}, r"^'status_retries' must be a non-negative whole number"),
        ({"max_status_retries": -1}, r"^'max_status_retries' must be a non-negative whole"),
        (
            {"status_retries": 1, "status_retry_backoff": 0},
            r"^HTTP status_retry_backoff must be at least 0\.01 seconds when status retries are enabled$",
        ),
        (
            {"status_retries": 1, "max_retry_after": 0.001},
            r"^HTTP max_retry_after must be at least 0\.01 seconds",
        ),
        (
            {"status_retry_backoff": -1},
            r"^HTTP status_retry_backoff must be a finite, non-negative",
        ),
        ({"max_redirects": 101}, r"^HTTP redirect count is too large \(max 100\)$"),
        ({"max_redirects": "many"}, r"^'max_redirects' must be a non-negative whole number"),
        ({"allow_cross_origin_redirects": "sure"}, r"^'allow_cross_origin_redirects' must be"),
        ({"block_private_network": "tru"}, r"^'block_private_network' must be a boolean$"),
        ({"respect_retry_after": 2}, r"^'respect_retry_after' must be a boolean$"),
        ({"retry_statuses": 429}, r"^'retry_statuses' must be an array of HTTP status codes$"),
        ({"retry_statuses": [99]}, r"^retry_statuses values must be valid HTTP status codes$"),
        ({"retry_statuses": [1000]}, r"^retry_statuses values must be valid HTTP status codes$"),
        ({"retry_statuses": ["${ctx.big}"]}, r"^retry_statuses values must be valid HTTP status"),
        ({"retry_statuses": [True]}, r"^retry_statuses values must be numbers or numeric strings$"),
    ],
)
async def test_http_1_parameters_rejected_before_network_io(server, make_ctx, config, message):
    needs_url = bool(config) and "url" not in config
    full = {"url": server.url("/"), **config} if needs_url else config
    with pytest.raises(NodeError, match=message):
        await run_node(make_ctx({"big": 65535}), "http_get", full)
    assert server.seen == []


async def test_http_1_whole_float_retry_count_and_string_numbers_accepted(server, make_ctx):
    server.route("/ok", json_answer("{}"))
    out = await run_node(
        make_ctx({"n": "2"}),
        "http_get",
        {
            "url": server.url("/ok"),
            "status_retries": "${ctx.n}",
            "max_redirects": 15.0,
            "timeout": "5",
            "retry_statuses": ["429", 503],
        },
    )
    assert out["http_status"] == 200


async def test_http_url_is_interpolated(server, make_ctx):
    server.route("/users/42", json_answer('{"id":42}'))
    ctx = make_ctx({"base": server.base, "user": {"id": 42}})
    out = await run_node(ctx, "http_get", {"url": "${ctx.base}/users/${ctx.user.id}"})
    assert out["http_data"] == {"id": 42}


async def test_http_client_is_shared_per_run_and_closed_by_cleanups(server, make_ctx):
    server.route("/ok", json_answer("{}"))
    ctx = make_ctx()
    await run_node(ctx, "http_get", {"url": server.url("/ok")})
    await run_node(ctx, "http_get", {"url": server.url("/ok")})
    clients = [v for k, v in ctx.services.scratch.items() if "client" in k]
    assert len(clients) == 1
    assert len(ctx.services.cleanups) == 1
    await ctx.services.cleanups[0]()
    assert clients[0].is_closed
    ctx.services.cleanups.clear()


async def test_http_many_concurrent_requests_share_the_client(server, make_ctx):
    server.route("/ok", json_answer('{"ok":true}'))
    ctx = make_ctx()
    results: list[int] = []

    async def one() -> None:
        out = await run_node(ctx, "http_get", {"url": server.url("/ok")})
        results.append(out["http_status"])

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(one)
    assert results == [200] * 50


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a":[1,2.5,null,true]}', {"a": [1, 2.5, None, True]}),
        (b" 42 ", 42),
        (b"", ""),
        (b"1e400", "1e400"),  # out of float range: not JSON for serde_json
        (b"Infinity", "Infinity"),
        (b'"\\ud800"', '"\\ud800"'),  # a lone surrogate is not valid JSON text
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b"{broken", "{broken"),
    ],
)
def test_http_4_body_parsing_vectors(raw, expected):
    assert response.parse_body(raw) == expected
