"""``block_private_network`` at the connection: resolve once, check, connect to what was checked.

A check on the URL alone cannot see that ``evil.example`` resolves to
127.0.0.1, and a check that resolves the name and then lets the client resolve
it again can be fooled by a DNS answer that changes in between (rebinding).
So the check sits where the connection is made: a network backend for
httpcore (the layer below httpx's transport) that resolves the host itself,
refuses the connection when **any** answer is not a public address, and opens
the TCP connection to the checked address, never to the name. TLS and the
``Host`` header still use the URL's host name, because httpcore takes them
from the request, not from the socket. Every redirect hop opens its
connections through the same backend, so every hop is checked.

Kept apart from the unguarded client's pool, so a keep-alive connection made
without the check is never reused by a request that asked for it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import trio

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class PrivateAddressBlocked(Exception):
    """The host resolved to an address ``block_private_network`` refuses."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}, a private network address")
        self.host = host
        self.address = address


def is_blocked_address(address: Address) -> bool:
    """Anything but a public unicast address: private, loopback, link-local, CGNAT,
    reserved, multicast, unspecified — and IPv6 forms that embed such an IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in (address.ipv4_mapped, address.sixtofour, _nat64(address)):
            if embedded is not None:
                return is_blocked_address(embedded)
        if address.teredo is not None:
            return True
    return address.is_multicast or not address.is_global


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (one lookup)."""
    answers = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


resolve: Resolver = system_resolve
"""The lookup the guard uses; tests replace it to play a hostile DNS server."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to checked public addresses."""

    def __init__(self) -> None:
        self._inner = httpcore.TrioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve once, refuse if any address is private, then connect to a checked address (no second lookup to rebind)."""
        try:
            addresses = await resolve(host, port)
        except OSError as error:
            raise httpcore.ConnectError(f"could not resolve {host}: {error}") from None
        if not addresses:
            raise httpcore.ConnectError(f"could not resolve {host}")
        for text in addresses:
            if is_blocked_address(ipaddress.ip_address(text.split("%", 1)[0])):
                raise PrivateAddressBlocked(host, text)
        failure: Exception | None = None
        for text in addresses:
            try:
                return await self._inner.connect_tcp(
                    text, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> Any:
        """Always refused: a local socket is never a public address."""
        raise httpcore.ConnectError("unix sockets are not reachable with block_private_network")

    async def sleep(self, seconds: float) -> None:
        """Delegate to trio; httpcore needs it for its retry back-off."""
        await self._inner.sleep(seconds)
