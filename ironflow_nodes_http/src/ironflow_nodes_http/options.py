"""The HTTP step's configuration, and its validation before any network I/O (HTTP-1).

Every field is ``Any`` because upstream accepts any JSON shape at load time and
decides at run time (a non-string ``output_key`` means the default, a numeric
parameter may be a ``"${ctx.n}"`` string); the checks below give the
contract's exact messages.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from ironflow_core import (
    ABSENT,
    BoolParam,
    CountParam,
    JsonValue,
    NodeError,
    NumberParam,
    lenient,
    lenient_positive_int,
    redact_url,
    strict_bool,
    strict_float,
    strict_u64,
)
from ironflow_nodes_http.policy import RedirectPolicy, is_private_host
from ironflow_nodes_http.transport import parse_target

MAX_STATUS_RETRIES = 100
MAX_REDIRECTS = 100
MIN_RETRY_DELAY = 0.01
DEFAULT_MAX_BODY = 52_428_800
_DURATION_LIMIT = float(2**64)
_STATUS_TEXT = re.compile(r"\+?[0-9]+")




@attrs.frozen
class HttpConfig:
    """``nodes.http_request{...}`` and the fixed-method variants (semantics.md#http-nodes)."""

    url: str | None = lenient()
    method: str = lenient("GET")
    headers: JsonValue = None
    auth: JsonValue = None
    body: JsonValue = ABSENT
    body_type: JsonValue = None
    timeout: NumberParam = None
    output_key: str = lenient("http")
    fail_on_status: BoolParam = None
    retry_statuses: JsonValue = None
    status_retries: CountParam = None
    max_status_retries: CountParam = None
    status_retry_backoff: NumberParam = None
    respect_retry_after: BoolParam = None
    max_retry_after: NumberParam = None
    max_redirects: CountParam = None
    allow_cross_origin_redirects: JsonValue = None
    block_private_network: BoolParam = None


@attrs.frozen
class RequestOptions:
    """Validated settings of one HTTP step (everything but headers and body)."""

    url: str
    timeout: float
    output_key: str
    fail_on_status: bool
    retry_statuses: frozenset[int]
    status_retries: int
    status_retry_backoff: float
    respect_retry_after: bool
    max_retry_after: float
    redirects: RedirectPolicy
    max_body: int


def _duration(value: float, label: str, *, positive: bool = False) -> float:
    if positive and value <= 0:
        raise NodeError(f"{label} must be greater than zero seconds")
    if value < 0:
        raise NodeError(f"{label} must be a finite, non-negative number of seconds")
    if value >= _DURATION_LIMIT:
        raise NodeError(f"{label} is too large to represent as a duration")
    return value


def _retry_statuses(ctx: Any, value: Any) -> frozenset[int]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise NodeError("'retry_statuses' must be an array of HTTP status codes")
    codes: set[int] = set()
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float, str)):
            raise NodeError("retry_statuses values must be numbers or numeric strings")
        if isinstance(item, float):
            code = -1  # upstream reads status numbers as integers only
        elif isinstance(item, str):
            text = ctx.interpolate(item)
            code = int(text) if _STATUS_TEXT.fullmatch(text) else -1
        else:
            code = item
        if not 100 <= code <= 999:
            raise NodeError("retry_statuses values must be valid HTTP status codes")
        codes.add(code)
    return frozenset(codes)


def carries_sensitive_data(config: HttpConfig, url: str) -> bool:
    """HTTP-9: auth, any string header, URL user-info or a body pin redirects to the origin."""
    has_auth = isinstance(config.auth, dict) and bool(config.auth)
    has_headers = isinstance(config.headers, dict) and any(
        isinstance(value, str) for value in config.headers.values()
    )
    target = parse_target(url)
    has_userinfo = target is not None and target.has_userinfo
    return has_auth or has_headers or has_userinfo or config.body is not ABSENT


def read_options(ctx: Any, config: HttpConfig) -> RequestOptions:
    """Validate every parameter in upstream's order; raise ``NodeError`` on the first problem."""
    if config.url is None:
        raise NodeError("HTTP node requires 'url' parameter")
    url = ctx.interpolate(config.url)
    timeout = _duration(
        strict_float(ctx, "timeout", config.timeout, 30.0), "HTTP timeout", positive=True
    )
    fail_on_status = strict_bool(ctx, "fail_on_status", config.fail_on_status, True)
    retry_statuses = _retry_statuses(ctx, config.retry_statuses)
    if config.status_retries is not None:
        retries = strict_u64(ctx, "status_retries", config.status_retries, 0)
    else:
        retries = strict_u64(ctx, "max_status_retries", config.max_status_retries, 0)
    if retries > MAX_STATUS_RETRIES:
        raise NodeError(
            f"HTTP status retry count is too large (max {MAX_STATUS_RETRIES}); "
            "use workflow retries for a separately bounded outer policy"
        )
    backoff = _duration(
        strict_float(ctx, "status_retry_backoff", config.status_retry_backoff, 1.0),
        "HTTP status_retry_backoff",
    )
    respect_retry_after = strict_bool(ctx, "respect_retry_after", config.respect_retry_after, True)
    max_retry_after = _duration(
        strict_float(ctx, "max_retry_after", config.max_retry_after, 60.0),
        "HTTP max_retry_after",
    )
    if retries > 0:
        for name, seconds in (
            ("status_retry_backoff", backoff),
            ("max_retry_after", max_retry_after),
        ):
            if seconds < MIN_RETRY_DELAY:
                raise NodeError(
                    f"HTTP {name} must be at least {MIN_RETRY_DELAY} seconds "
                    "when status retries are enabled"
                )
    max_redirects = strict_u64(ctx, "max_redirects", config.max_redirects, 10)
    if max_redirects > MAX_REDIRECTS:
        raise NodeError(f"HTTP redirect count is too large (max {MAX_REDIRECTS})")
    allow_cross_origin = strict_bool(
        ctx, "allow_cross_origin_redirects", config.allow_cross_origin_redirects, False
    )
    sensitive = carries_sensitive_data(config, url)
    block_private = strict_bool(ctx, "block_private_network", config.block_private_network, False)
    if block_private:
        check_not_private(url)
    return RequestOptions(
        url=url,
        timeout=timeout,
        output_key=config.output_key,
        fail_on_status=fail_on_status,
        retry_statuses=retry_statuses,
        status_retries=retries,
        status_retry_backoff=backoff,
        respect_retry_after=respect_retry_after,
        max_retry_after=max_retry_after,
        redirects=RedirectPolicy(
            max_redirects=max_redirects,
            allow_cross_origin=allow_cross_origin,
            carries_sensitive_data=sensitive,
            block_private_network=block_private,
        ),
        max_body=lenient_positive_int(
            ctx.services.env, "IRONFLOW_MAX_HTTP_BODY_BYTES", DEFAULT_MAX_BODY
        ),
    )


def check_not_private(url: str) -> None:
    """HTTP-10 on the first hop (redirect hops are checked by the redirect policy)."""
    target = parse_target(url)
    if target is not None and is_private_host(target.host):
        raise NodeError(
            f"HTTP request to {redact_url(url)} blocked: target is a private network "
            "address (block_private_network is enabled)"
        )
