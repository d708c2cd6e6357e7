"""Failure paths and safety fences of the HTTP nodes, against real loopback servers.

Timeouts, refused connections, the redirect policy (HTTP-9), the private
network guard (HTTP-10), the body limit (HTTP-5), cancellation by the step's
deadline (ENG-71/72) and credential hygiene in error texts (ENG-140).
"""

from __future__ import annotations

import socket
import time

import pytest
import trio

from ironflow_core.errors import NodeError

from .loopback import Answer, Seen, json_answer
from .test_http_request import run_node

SECRETS = ("s3cr3t-user", "s3cr3t-pass", "s3cr3t-token", "s3cr3t-path")


def redirect_to(location: str, status: int = 302) -> Answer:
    return Answer(status, [("Location", location)], b"")


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- timeouts and transport errors (HTTP-8) ------------------------------------------------


async def test_http_8_request_timeout_fails_within_timeout_plus_margin(server, make_ctx):
    async def slow(_seen: Seen) -> Answer:
        await trio.sleep(30)
        return json_answer("{}")

    server.route("/slow", slow)
    started = time.monotonic()
    with pytest.raises(NodeError) as info:
        await run_node(make_ctx(), "http_get", {"url": server.url("/slow"), "timeout": 0.3})
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 0.3 + 0.5
    assert str(info.value) == (
        f"HTTP GET request to http://127.0.0.1:{server.port}/[REDACTED] failed: "
        "operation timed out after 0.3s"
    )


async def test_http_8_timeout_covers_a_body_that_never_ends(server, make_ctx, autojump_clock):
    async def trickle():
        while True:
            yield b"x"
            await trio.sleep(1)

    server.route("/trickle", Answer(200, [], trickle()))
    start = trio.current_time()
    with pytest.raises(NodeError, match="operation timed out after 5s"):
        await run_node(make_ctx(), "http_get", {"url": server.url("/trickle"), "timeout": 5})
    assert 5 <= trio.current_time() - start < 5.5


async def test_http_11_connection_refused(make_ctx):
    port = free_port()
    url = f"http://s3cr3t-user:s3cr3t-pass@127.0.0.1:{port}/s3cr3t-path?token=s3cr3t-token"
    with pytest.raises(NodeError) as info:
        await run_node(make_ctx(), "http_post", {"url": url})
    text = str(info.value)
    assert text.startswith(
        f"HTTP POST request to http://127.0.0.1:{port}/[REDACTED]?token=[REDACTED] failed: "
        "connection failed"
    ), text
    assert_no_secrets(text)


async def test_http_8_unsupported_scheme_is_a_transport_error(make_ctx):
    with pytest.raises(NodeError, match=r"^HTTP GET request to ftp://example\.com/x failed: "):
        await run_node(make_ctx(), "http_get", {"url": "ftp://example.com/x"})


# -- credential hygiene (ENG-140, HTTP-11) ----------------------------------------------------


async def test_eng_140_status_error_never_discloses_url_credentials(server, make_ctx):
    server.route("/s3cr3t-path", json_answer("{}", 401))
    url = server.url("/s3cr3t-path?api_key=s3cr3t-token").replace(
        "http://", "http://s3cr3t-user:s3cr3t-pass@"
    )
    with pytest.raises(NodeError) as info:
        await run_node(make_ctx(), "http_get", {"url": url})
    text = str(info.value)
    assert text == (
        f"HTTP GET http://127.0.0.1:{server.port}/[REDACTED]?api_key=[REDACTED] returned status 401"
    )
    assert_no_secrets(text)


async def test_eng_140_redirect_refusal_redacts_both_urls(server, other_server, make_ctx):
    server.route("/start", redirect_to(other_server.url("/s3cr3t-path?sig=s3cr3t-token")))
    url = server.url("/start").replace("http://", "http://s3cr3t-user:s3cr3t-pass@")
    with pytest.raises(NodeError) as info:
        await run_node(make_ctx(), "http_get", {"url": url, "allow_cross_origin_redirects": True})
    text = str(info.value)
    assert "including URL credentials" in text
    assert f"http://127.0.0.1:{other_server.port}/[REDACTED]?sig=[REDACTED]" in text
    assert_no_secrets(text)
    assert other_server.seen == []


# -- redirects (HTTP-9) ------------------------------------------------------------------------


async def test_http_9_same_origin_redirect_followed_with_auth_kept(server, make_ctx):
    server.route("/start", redirect_to("/final"))
    server.route("/final", lambda seen: json_answer(f'{{"auth":"{seen.header("authorization")}"}}'))
    out = await run_node(
        make_ctx(), "http_get", {"url": server.url("/start"), "auth": {"token": "t"}}
    )
    assert out["http_status"] == 200
    assert out["http_data"] == {"auth": "Bearer t"}
    assert [s.target for s in server.seen] == ["/start", "/final"]


async def test_http_9_303_turns_post_into_get_without_body_307_keeps_both(server, make_ctx):
    server.route("/see-other", redirect_to("/echo", 303))
    server.route("/temporary", redirect_to("/echo", 307))
    server.route("/echo", lambda seen: json_answer("{}"))
    ctx = make_ctx()
    await run_node(ctx, "http_post", {"url": server.url("/see-other"), "body": {"a": 1}})
    await run_node(ctx, "http_post", {"url": server.url("/temporary"), "body": {"a": 1}})
    echoes = [s for s in server.seen if s.target == "/echo"]
    assert (echoes[0].method, echoes[0].body, echoes[0].header("content-type")) == (
        "GET",
        b"",
        None,
    )
    assert (echoes[1].method, echoes[1].body) == ("POST", b'{"a":1}')


async def test_http_9_cross_origin_redirect_refused_by_default(server, other_server, make_ctx):
    server.route("/start", redirect_to(other_server.url("/capture")))
    other_server.route("/capture", json_answer("{}"))
    with pytest.raises(NodeError) as info:
        await run_node(make_ctx(), "http_get", {"url": server.url("/start")})
    assert "cross-origin redirects are disabled" in str(info.value)
    assert str(info.value).startswith(f"HTTP GET request to http://127.0.0.1:{server.port}/")
    assert other_server.seen == []


async def test_http_9_http_to_https_same_host_port_is_cross_origin(server, make_ctx):
    server.route("/start", redirect_to(f"https://127.0.0.1:{server.port}/capture"))
    with pytest.raises(NodeError, match="cross-origin redirects are disabled"):
        await run_node(make_ctx(), "http_get", {"url": server.url("/start")})
    assert server.hits("/capture") == 0


async def test_http_9_cross_origin_allowed_when_opted_in_without_referer(
    server, other_server, make_ctx
):
    server.route("/start", redirect_to(other_server.url("/capture")))
    other_server.route(
        "/capture",
        lambda seen: json_answer(f'{{"referer":{seen.header("referer") is not None}}}'.lower()),
    )
    out = await run_node(
        make_ctx(),
        "http_get",
        {
            "url": server.url("/start?api_key=query-secret"),
            "allow_cross_origin_redirects": True,
            "max_redirects": 1,
        },
    )
    assert out["http_status"] == 200
    assert out["http_data"] == {"referer": False}
    assert other_server.hits("/capture") == 1


@pytest.mark.parametrize(
    "extra",
    [
        {"auth": {"type": "api_key", "key": "must-not-leave"}},
        {"headers": {"X-Workflow-Credential": "must-not-leave"}},
        {"body": {"secret": "must-not-leave"}},
    ],
)
async def test_http_9_sensitive_requests_never_cross_origins(server, other_server, make_ctx, extra):
    server.route("/temporary", redirect_to(other_server.url("/capture"), 307))
    other_server.route("/capture", json_answer("{}"))
    config = {"url": server.url("/temporary"), "allow_cross_origin_redirects": True, **extra}
    with pytest.raises(NodeError, match="configured auth, headers, or a body"):
        await run_node(make_ctx(), "http_post", config)
    assert other_server.seen == []


async def test_http_9_max_redirects_bounds_the_chain_and_zero_disables(server, make_ctx):
    server.route("/a", redirect_to("/b"))
    server.route("/b", redirect_to("/c"))
    server.route("/c", json_answer('{"end":true}'))
    ctx = make_ctx()
    out = await run_node(ctx, "http_get", {"url": server.url("/a"), "max_redirects": 2})
    assert out["http_data"] == {"end": True}
    with pytest.raises(NodeError, match="too many redirects"):
        await run_node(ctx, "http_get", {"url": server.url("/a"), "max_redirects": 1})
    out = await run_node(
        ctx, "http_get", {"url": server.url("/a"), "max_redirects": 0, "fail_on_status": False}
    )
    assert out["http_status"] == 302
    assert out["http_headers"]["location"] == "/b"
    with pytest.raises(NodeError, match="returned status 302"):
        await run_node(ctx, "http_get", {"url": server.url("/a"), "max_redirects": 0})


# -- private network guard (HTTP-10) -------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost", "[::1]", "2130706433", "127.1"]
)
async def test_http_10_block_private_network_refuses_before_sending(server, make_ctx, host):
    url = f"http://{host}:{server.port}/s3cr3t-path"
    with pytest.raises(NodeError) as info:
        await run_node(make_ctx(), "http_get", {"url": url, "block_private_network": True})
    assert str(info.value) == (
        f"HTTP request to {url.replace('/s3cr3t-path', '/[REDACTED]')} blocked: target is a "
        "private network address (block_private_network is enabled)"
    )
    assert server.seen == []


async def test_http_10_private_network_allowed_by_default(server, make_ctx):
    server.route("/ok", json_answer("{}"))
    out = await run_node(make_ctx(), "http_get", {"url": server.url("/ok")})
    assert out["http_status"] == 200


def _loopback_hostname() -> str | None:
    """A DNS name of this machine that resolves to 127.0.0.1 (not literal, so not blocked)."""
    name = socket.gethostname()
    try:
        return name if socket.gethostbyname(name) == "127.0.0.1" and name != "localhost" else None
    except OSError:
        return None


@pytest.mark.skipif(_loopback_hostname() is None, reason="hostname does not resolve to 127.0.0.1")
async def test_http_10_a_system_name_resolving_to_loopback_is_blocked(server, make_ctx):
    """The real resolver, no test hook: this machine's own name is 127.0.0.1."""
    host = _loopback_hostname()
    server.route("/start", json_answer("{}"))
    url = f"http://{host}:{server.port}/start"
    with pytest.raises(NodeError, match="blocked: target is a private network address"):
        await run_node(make_ctx(), "http_get", {"url": url, "block_private_network": True})
    assert server.hits("/start") == 0


# -- body limit (HTTP-5) -------------------------------------------------------------------------


async def test_http_5_oversized_content_length_rejected_before_reading(server, make_ctx):
    server.route("/big", Answer(200, [], b"x" * 1000))
    ctx = make_ctx(env={"IRONFLOW_MAX_HTTP_BODY_BYTES": "100"})
    with pytest.raises(NodeError) as info:
        await run_node(ctx, "http_get", {"url": server.url("/big")})
    assert str(info.value) == (
        "HTTP response body 1000 bytes exceeds limit 100 (set IRONFLOW_MAX_HTTP_BODY_BYTES to raise)"
    )


async def test_http_5_streamed_body_stops_at_the_limit(server, make_ctx):
    sent: list[int] = []

    async def endless():
        for _ in range(10_000):
            sent.append(1)
            yield b"y" * 1024

    server.route("/stream", Answer(200, [], endless()))
    ctx = make_ctx(env={"IRONFLOW_MAX_HTTP_BODY_BYTES": "4096"})
    with pytest.raises(NodeError) as info:
        await run_node(ctx, "http_get", {"url": server.url("/stream")})
    assert str(info.value) == (
        "HTTP response body exceeds limit 4096 bytes mid-stream "
        "(set IRONFLOW_MAX_HTTP_BODY_BYTES to raise)"
    )
    assert len(sent) < 10_000  # the client hung up; the server did not stream it all


async def test_http_5_body_at_the_limit_is_accepted(server, make_ctx):
    async def chunks():
        for _ in range(4):
            yield b"z" * 25

    server.route("/exact", Answer(200, [], chunks()))
    ctx = make_ctx(env={"IRONFLOW_MAX_HTTP_BODY_BYTES": "100"})
    out = await run_node(ctx, "http_get", {"url": server.url("/exact")})
    assert out["http_data"] == "z" * 100


# -- cancellation by the step deadline (ENG-71/72) --------------------------------------------


async def test_eng_72_step_deadline_cancels_a_slow_request(server, make_ctx):
    release = trio.Event()

    async def slow(_seen: Seen) -> Answer:
        await release.wait()
        return json_answer("{}")

    server.route("/slow", slow)
    server.route("/ok", json_answer('{"ok":true}'))
    ctx = make_ctx()
    started = time.monotonic()
    with trio.move_on_after(0.2) as scope:
        await run_node(ctx, "http_get", {"url": server.url("/slow"), "timeout": 30})
    elapsed = time.monotonic() - started
    assert scope.cancelled_caught
    assert elapsed < 0.2 + 0.5
    release.set()
    # The run's client is still usable after the cancelled exchange.
    out = await run_node(ctx, "http_get", {"url": server.url("/ok")})
    assert out["http_data"] == {"ok": True}


async def test_eng_71_step_deadline_cuts_a_status_retry_sleep(server, make_ctx, autojump_clock):
    server.route("/r", json_answer("{}", 429, [("Retry-After", "50")]))
    start = trio.current_time()
    with trio.move_on_after(10) as scope:
        await run_node(
            make_ctx(),
            "http_get",
            {"url": server.url("/r"), "retry_statuses": [429], "status_retries": 3},
        )
    assert scope.cancelled_caught
    assert 10 <= trio.current_time() - start < 10.5
    assert server.hits("/r") == 1
