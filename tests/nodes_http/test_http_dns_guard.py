"""``block_private_network`` resolves names and connects to what it checked (beyond HTTP-10).

The attacks: a host name that resolves to a loopback address, asked for
directly or reached through a redirect, and a name whose DNS answer changes
between a check and a connection (rebinding). A hostile DNS server is played
by replacing the guard's resolver; the "internal" service listens on
127.0.0.2, and the "public" one on 127.0.0.1, which these tests alone treat as
a public address so that a real loopback server can stand for the internet.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from ironflow_core.configs import structure_config
from ironflow_core.errors import NodeError
from ironflow_nodes_http import guard

from .loopback import LoopbackServer, json_answer

PUBLIC_STANDIN = ipaddress.IPv4Address("127.0.0.1")


@pytest.fixture
async def internal(nursery: Any) -> LoopbackServer:
    srv = LoopbackServer(host="127.0.0.2")
    await nursery.start(srv.serve)
    srv.route("/admin", json_answer('{"secret": "internal"}'))
    return srv


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``dns[name] = [answers...]`` (a list of lists is served one per lookup)."""
    table: dict[str, Any] = {}
    lookups: list[str] = []

    async def hostile_resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        answer = table[host]
        if answer and isinstance(answer[0], list):
            return answer.pop(0)
        return answer

    monkeypatch.setattr(guard, "resolve", hostile_resolve)
    table["_lookups"] = lookups
    return table


@pytest.fixture
def loopback_one_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    original = guard.is_blocked_address
    monkeypatch.setattr(
        guard, "is_blocked_address", lambda address: address != PUBLIC_STANDIN and original(address)
    )


async def get(make_ctx: Any, url: str, **extra: Any) -> dict[str, Any]:
    ctx = make_ctx()
    spec = ctx.services.registry.node("http_get")
    config = structure_config(spec.config, {"_step_name": "s", "url": url, **extra})
    return dict(await spec.run(ctx, config))


def blocked(url: str) -> str:
    return (
        f"HTTP request to {url} blocked: target is a private network address "
        "(block_private_network is enabled)"
    )


async def test_a_name_resolving_to_loopback_is_refused_before_sending(make_ctx, internal, dns):
    dns["internal.example"] = ["127.0.0.2"]
    url = f"http://internal.example:{internal.port}/admin"
    with pytest.raises(NodeError) as info:
        await get(make_ctx, url, block_private_network=True)
    assert str(info.value) == blocked(url.replace("/admin", "/[REDACTED]"))
    assert internal.seen == []


@pytest.mark.parametrize("answers", [
    ["10.1.2.3"], ["169.254.169.254"], ["100.64.0.1"], ["::1"], ["::ffff:127.0.0.2"],
    ["fd00::1"], ["64:ff9b::7f00:2"], ["2002:7f00:2::1"], ["224.0.0.1"], ["0.0.0.0"],
    ["203.0.113.9", "127.0.0.2"],  # one private answer among public ones is enough
], ids=lambda answers: ",".join(answers))
async def test_any_private_answer_is_refused(make_ctx, internal, dns, answers):
    dns["mixed.example"] = answers
    url = f"http://mixed.example:{internal.port}/"
    with pytest.raises(NodeError, match="blocked: target is a private network address"):
        await get(make_ctx, url, block_private_network=True)
    assert internal.seen == []


async def test_a_redirect_to_a_name_resolving_to_loopback_is_refused(
    make_ctx, server, internal, dns, loopback_one_is_public
):
    dns["public.example"] = ["127.0.0.1"]
    dns["internal.example"] = ["127.0.0.2"]
    server.route("/start", lambda _seen: _redirect(f"http://internal.example:{internal.port}/admin"))
    with pytest.raises(NodeError) as info:
        await get(
            make_ctx, f"http://public.example:{server.port}/start",
            block_private_network=True, allow_cross_origin_redirects=True,
        )
    assert "redirect to a private network address is blocked" in str(info.value)
    assert server.hits("/start") == 1
    assert internal.seen == []


async def test_rebinding_cannot_slip_in_between_check_and_connect(
    make_ctx, nursery, server, dns, loopback_one_is_public
):
    """The first answer is public, every later one private: only the checked one is used."""
    server.route("/", json_answer('{"where": "public"}'))
    # the internal service listens on the same port number, so a second lookup would reach it
    internal = LoopbackServer(host="127.0.0.2", port=server.port)
    await nursery.start(internal.serve)
    internal.route("/", json_answer('{"where": "internal"}'))
    dns["rebind.example"] = [["127.0.0.1"]] + [["127.0.0.2"] for _ in range(10)]

    out = await get(make_ctx, f"http://rebind.example:{server.port}/", block_private_network=True)
    assert out["http_data"] == {"where": "public"}
    assert dns["_lookups"] == ["rebind.example"]
    assert internal.seen == []


async def test_the_host_header_keeps_the_name_while_the_socket_uses_the_checked_address(
    make_ctx, server, dns, loopback_one_is_public
):
    seen: list[str | None] = []

    def record(request: Any) -> Any:
        seen.append(request.header("host"))
        return json_answer("{}")

    server.route("/h", record)
    dns["named.example"] = ["127.0.0.1"]
    await get(make_ctx, f"http://named.example:{server.port}/h", block_private_network=True)
    assert seen == [f"named.example:{server.port}"]


async def test_with_the_check_off_a_name_reaches_its_address(make_ctx, server):
    """The default: no guard, the system resolver, upstream's behaviour."""
    server.route("/ok", json_answer('{"ok": true}'))
    out = await get(make_ctx, f"http://localhost:{server.port}/ok")
    assert out["http_data"] == {"ok": True}


async def test_guarded_requests_never_share_a_pool_with_unguarded_ones(make_ctx):
    """A keep-alive connection opened without the check is never reused by one that asked."""
    from ironflow_nodes_http import transport

    services = make_ctx().services
    guarded = transport._client(services, guarded=True)
    assert guarded is transport._client(services, guarded=True)
    assert guarded is not transport._client(services, guarded=False)


def _redirect(location: str) -> Any:
    from .loopback import Answer

    return Answer(302, [("Location", location)], b"")


@pytest.fixture
def self_signed(tmp_path):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=tls.example", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


async def test_https_sends_the_url_host_as_sni_while_connecting_to_the_checked_address(
    make_ctx, nursery, dns, loopback_one_is_public, self_signed
):
    import ssl

    import trio

    names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*self_signed)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)

    async def handle(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, context, server_side=True)
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError:
            pass  # the client refuses our self-signed certificate: expected
        finally:
            await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    nursery.start_soon(trio.serve_listeners, handle, listeners)
    dns["tls.example"] = ["127.0.0.1"]
    with pytest.raises(NodeError, match="failed: connection failed"):  # untrusted cert
        await get(make_ctx, f"https://tls.example:{port}/", block_private_network=True)
    assert names == ["tls.example"]
    assert dns["_lookups"] == ["tls.example"]
