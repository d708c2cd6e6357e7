"""The only module that knows about httpx: one client per run, one exchange per call.

The client library may change; everything above this module speaks in
``Outgoing``/``Reply`` records and plain strings. httpx is imported inside the
functions, so importing the plugin stays cheap (``ironflow --help``).

An exchange sends a request, follows redirects by hand under a
``RedirectPolicy`` (PY-7: the client itself never follows, never reads proxy
settings from the environment, never keeps cookies) and streams the final
body under a byte cap (HTTP-5). Timeouts are the caller's trio deadlines.
A request with ``block_private_network`` goes through a second client whose
connections are opened by ``guard.GuardedBackend`` (resolve once, refuse a
private answer, connect to the checked address), on every hop.

Why the hops are followed here and not by httpx's ``follow_redirects`` with a
request hook that vets each hop: httpx's loop cannot keep four of our
guarantees. It reads each intermediate redirect body whole into memory
(``aread``), so a 302 with an endless body escapes the byte cap (HTTP-5);
with ``max_redirects=0`` it raises instead of handing back the 3xx response,
which a step must be able to route on (HTTP-9); it keeps PUT/DELETE on a
301/302 and drops a configured ``Cookie`` header on same-origin hops, where
the upstream engine turns every non-HEAD 301/302/303 into a body-less GET
and keeps same-origin headers; and ``max_redirects`` is a property of the
shared per-run client, not of one request. The loop below is the policy
transport's job done in one place: every hop goes through
``RedirectPolicy.refusal`` and, when guarded, the connection guard.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ironflow_nodes_http.policy import DEFAULT_PORTS, REFUSED_PRIVATE, RedirectPolicy, Target

if TYPE_CHECKING:
    import httpx

    from ironflow_core import RunServices

_CLIENT_KEY = "ironflow_nodes_http.client"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CONTENT_HEADERS = frozenset(
    {"content-type", "content-length", "content-encoding", "transfer-encoding"}
)
_CROSS_ORIGIN_STRIPPED = frozenset(
    {"authorization", "cookie", "proxy-authorization", "www-authenticate"}
)

Headers = tuple[tuple[str, str], ...]


@attrs.frozen
class Outgoing:
    """One HTTP request as the transport sends it."""

    method: str
    url: str
    headers: Headers
    body: bytes | None = None


@attrs.frozen
class Reply:
    """One HTTP response as the transport received it (body capped)."""

    status: int
    headers: Headers
    """Lower-case names in arrival order; a value that is not visible ASCII is ``""``."""
    body: bytes


class TransportError(Exception):
    """The exchange could not complete; the text is the detail (may name URLs, redact it)."""


class PrivateTargetBlocked(Exception):
    """The first hop's host resolved to a private address (``block_private_network``)."""


class BodyTooLarge(Exception):
    """The response body is over the byte cap (``declared`` = its Content-Length, if known)."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        super().__init__(limit, declared)
        self.limit = limit
        self.declared = declared


def parse_target(url: str) -> Target | None:
    """Where ``url`` would connect, parsed exactly as the client will parse it."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    return _target(parsed)


def _target(url: httpx.URL) -> Target:
    scheme = url.scheme.lower()
    return Target(
        scheme=scheme,
        host=url.host.lower(),
        port=url.port if url.port is not None else DEFAULT_PORTS.get(scheme),
        has_userinfo=bool(url.userinfo),
    )


def split_userinfo(url: str) -> tuple[str, str | None]:
    """Move URL user-info into a Basic ``Authorization`` value: (url without it, header value)."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return url, None
    if not parsed.userinfo:
        return url, None
    token = base64.b64encode(f"{parsed.username}:{parsed.password}".encode()).decode("ascii")
    return str(parsed.copy_with(username=None, password=None)), f"Basic {token}"


def _client(services: RunServices, *, guarded: bool) -> httpx.AsyncClient:
    """The run's client (one guarded, one not), created on first use, closed by the run."""
    key = f"{_CLIENT_KEY}.guarded" if guarded else _CLIENT_KEY
    client = services.scratch.get(key)
    if client is None:
        from http.cookiejar import DefaultCookiePolicy

        import httpx

        cookies = httpx.Cookies()
        cookies.jar.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        limits = httpx.Limits(
            max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
        )
        client = httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=None,
            cookies=cookies,
            limits=limits,
            transport=_guarded_transport(limits) if guarded else None,
        )
        services.scratch[key] = client
        services.cleanups.append(client.aclose)
    return client


def _guarded_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's own transport over a connection pool whose network backend is the guard."""
    import httpcore
    import httpx

    from ironflow_nodes_http.guard import GuardedBackend

    transport = httpx.AsyncHTTPTransport(trust_env=False, limits=limits)
    # httpx builds its pool without a way to pass a network backend; the pool is
    # rebuilt with the same settings plus the guard.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(),
    )
    return transport


async def exchange(
    services: RunServices, request: Outgoing, policy: RedirectPolicy, max_body: int
) -> Reply:
    """Send ``request``, follow allowed redirects, return the final response with its body."""
    import httpx

    from ironflow_nodes_http.guard import PrivateAddressBlocked

    client = _client(services, guarded=policy.block_private_network)
    method, headers, body = request.method, list(request.headers), request.body
    try:
        url = httpx.URL(request.url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise TransportError(f"invalid URL: {exc}") from None
    hops = 0
    while True:
        try:
            outgoing = httpx.Request(method, url, headers=headers, content=body)
            response = await client.send(outgoing, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TransportError(_describe(exc)) from None
        except PrivateAddressBlocked as exc:
            if hops == 0:
                raise PrivateTargetBlocked(str(exc)) from None
            raise TransportError(f"redirect to {url} refused: {REFUSED_PRIVATE}") from None
        try:
            nxt = _redirect_location(response)
            if nxt is None or policy.max_redirects == 0:
                return await _read(response, max_body)
            reason = policy.refusal(hops, _target(url), _target(nxt))
            if reason is not None:
                raise TransportError(f"redirect to {nxt} refused: {reason}")
            if nxt.scheme not in DEFAULT_PORTS:
                raise TransportError(f"redirect to {nxt} refused: not an http(s) URL")
        finally:
            await response.aclose()
        if response.status_code in (301, 302, 303):
            method = "GET" if method != "HEAD" else method
            body = None
            headers = [(k, v) for k, v in headers if k.lower() not in _CONTENT_HEADERS]
        if _target(url).origin != _target(nxt).origin:
            headers = [(k, v) for k, v in headers if k.lower() not in _CROSS_ORIGIN_STRIPPED]
        url = nxt
        hops += 1


def _redirect_location(response: httpx.Response) -> httpx.URL | None:
    """The absolute next URL of a redirect response; None when it is not one we can follow."""
    import httpx

    if response.status_code not in _REDIRECT_STATUSES:
        return None
    location = response.headers.get("location")
    if location is None:
        return None
    try:
        nxt = response.request.url.join(location)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    return nxt.copy_with(fragment=None) if nxt.fragment else nxt


async def _read(response: httpx.Response, max_body: int) -> Reply:
    import httpx

    declared = _content_length(response.headers.get_list("content-length"))
    if declared is not None and declared > max_body:
        raise BodyTooLarge(max_body, declared)
    chunks: list[bytes] = []
    size = 0
    try:
        # Raw bytes: no transparent decompression, so the cap bounds what arrives.
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > max_body:
                raise BodyTooLarge(max_body)
            chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise TransportError(f"failed to read the response body: {_describe(exc)}") from None
    return Reply(
        status=response.status_code,
        headers=tuple(_text_header(name, value) for name, value in response.headers.raw),
        body=b"".join(chunks),
    )


def _content_length(values: Sequence[str]) -> int | None:
    if len(values) != 1 or not values[0].strip().isdigit():
        return None
    return int(values[0].strip())


def _text_header(name: bytes, value: bytes) -> tuple[str, str]:
    visible = all(32 <= b < 127 or b == 9 for b in value)
    return name.decode("latin-1").lower(), value.decode("ascii") if visible else ""


def _describe(exc: Any) -> str:
    import httpx

    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {text}"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return text
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {text}"
    if isinstance(exc, httpx.TransportError):
        return f"connection error: {text}"
    return text
