"""``http_request`` and its fixed-method variants: send, retry on status, publish (semantics.md#http-nodes).

One request = one ``transport.exchange`` (redirects included) bounded by the
step's ``timeout``. Status retries sleep with ``trio.sleep`` inside the step,
so the step's own deadline (ENG-71) still bounds the whole loop.
"""

from __future__ import annotations

from typing import Any

import trio

from ironflow_core import (
    ABSENT,
    NodeError,
    NodeSpec,
    format_seconds,
    parse_rust_f64,
    redact_url,
    redact_urls,
)
from ironflow_nodes_http import transport
from ironflow_nodes_http.encoding import HeaderList, apply_auth, apply_headers, encode_body
from ironflow_nodes_http.options import HttpConfig, RequestOptions, read_options
from ironflow_nodes_http.response import parse_body

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def build_request(ctx: Any, config: HttpConfig, method: str, url: str) -> transport.Outgoing:
    """Headers, auth and body as the client will send them (HTTP-2, HTTP-3)."""
    if method.upper() not in METHODS:
        raise NodeError(f"Unsupported HTTP method: {method}")
    headers = HeaderList()
    url, userinfo_auth = transport.split_userinfo(url)
    if userinfo_auth is not None:
        headers.append("Authorization", userinfo_auth)
    has_content_type = apply_headers(ctx, config.headers, headers)
    apply_auth(ctx, config.auth, headers)
    body = None
    if config.body is not ABSENT:
        body = encode_body(ctx, config.body, config.body_type, has_content_type, headers)
    if not headers.has("accept"):
        headers.append("Accept", "*/*")
    for name, value in ctx.outgoing_headers(url):  # plugin headers (trace context); flow's win
        if not headers.has(name):
            headers.append(name, value)
    return transport.Outgoing(
        method=method.upper(), url=url, headers=tuple(headers.items), body=body
    )


def retry_after_seconds(headers: Any) -> float | None:
    """A non-negative number of seconds from ``Retry-After``; dates and junk are ignored."""
    for name, value in headers:
        if name == "retry-after":
            seconds = parse_rust_f64(value)  # upstream reads seconds as an f64; no HTTP-dates
            return seconds if seconds is not None and seconds >= 0 else None  # NaN fails too
    return None


def retry_delay(options: RequestOptions, retry_after: float | None, retries_done: int) -> float:
    """HTTP-6: Retry-After (when respected) or exponential backoff, capped, at least 0.01 s."""
    backoff = options.status_retry_backoff * 2.0 ** min(retries_done, 1000)
    delay = retry_after if options.respect_retry_after and retry_after is not None else backoff
    return max(min(delay, options.max_retry_after), 0.01)


async def _send_once(
    ctx: Any, request: transport.Outgoing, options: RequestOptions, method: str
) -> transport.Reply:
    target = redact_url(options.url)
    try:
        with trio.fail_after(options.timeout):
            return await transport.exchange(
                ctx.services, request, options.redirects, options.max_body
            )
    except trio.TooSlowError:
        raise NodeError(
            f"HTTP {method} request to {target} failed: operation timed out after "
            f"{format_seconds(options.timeout)}s"
        ) from None
    except transport.BodyTooLarge as exc:
        if exc.declared is not None:
            raise NodeError(
                f"HTTP response body {exc.declared} bytes exceeds limit {exc.limit} "
                "(set IRONFLOW_MAX_HTTP_BODY_BYTES to raise)"
            ) from None
        raise NodeError(
            f"HTTP response body exceeds limit {exc.limit} bytes mid-stream "
            "(set IRONFLOW_MAX_HTTP_BODY_BYTES to raise)"
        ) from None
    except transport.PrivateTargetBlocked:
        raise NodeError(
            f"HTTP request to {target} blocked: target is a private network address "
            "(block_private_network is enabled)"
        ) from None
    except transport.TransportError as exc:
        raise NodeError(
            f"HTTP {method} request to {target} failed: {redact_urls(str(exc))}"
        ) from None


async def perform(ctx: Any, config: HttpConfig, method: str) -> dict[str, Any]:
    """Validate, send (with status retries) and build the ``<k>_*`` outputs."""
    options = read_options(ctx, config)
    request = build_request(ctx, config, method, options.url)
    key = options.output_key
    retries_done = 0
    while True:
        reply = await _send_once(ctx, request, options, method)
        success = 200 <= reply.status <= 299
        if (
            not success
            and reply.status in options.retry_statuses
            and retries_done < options.status_retries
        ):
            delay = retry_delay(options, retry_after_seconds(reply.headers), retries_done)
            retries_done += 1
            await trio.sleep(delay)
            continue
        if options.fail_on_status and not success:
            raise NodeError(
                f"HTTP {method} {redact_url(options.url)} returned status {reply.status}"
            )
        return {
            f"{key}_status": reply.status,
            f"{key}_data": parse_body(reply.body),
            f"{key}_headers": dict(reply.headers),
            f"{key}_success": success,
            f"{key}_attempts": retries_done + 1,
        }


async def run_http_request(ctx: Any, config: HttpConfig) -> dict[str, Any]:
    """The ``http_request`` node: generic HTTP request with configurable method."""
    return await perform(ctx, config, config.method)


def _fixed(method: str) -> Any:
    async def run(ctx: Any, config: HttpConfig) -> dict[str, Any]:
        return await perform(ctx, config, method)

    run.__name__ = f"run_http_{method.lower()}"
    run.__doc__ = f"``http_{method.lower()}``: ``http_request`` with ``method = {method}``."
    return run


NODES: list[NodeSpec] = [
    NodeSpec(
        name="http_request",
        run=run_http_request,
        config=HttpConfig,
        summary="Generic HTTP request with configurable method",
    ),
    NodeSpec(name="http_get", run=_fixed("GET"), config=HttpConfig, summary="HTTP GET request"),
    NodeSpec(name="http_post", run=_fixed("POST"), config=HttpConfig, summary="HTTP POST request"),
    NodeSpec(name="http_put", run=_fixed("PUT"), config=HttpConfig, summary="HTTP PUT request"),
    NodeSpec(
        name="http_delete", run=_fixed("DELETE"), config=HttpConfig, summary="HTTP DELETE request"
    ),
]
