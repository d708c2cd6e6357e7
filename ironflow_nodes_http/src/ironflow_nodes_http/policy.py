"""Where a request may go: the private-network guard and the redirect policy.

Pure functions over already-parsed URL parts, so they never depend on the HTTP
client library (HTTP-9, HTTP-10). Hosts are classified the way the operating
system would connect to them: ``127.1``, ``2130706433`` and ``0x7f.0.0.1``
are all 127.0.0.1 to ``getaddrinfo``, so they are parsed as IPv4 here too.
"""

from __future__ import annotations

import ipaddress
import re

import attrs

DEFAULT_PORTS = {"http": 80, "https": 443}

REFUSED_TOO_MANY = "too many redirects"
REFUSED_PRIVATE = "redirect to a private network address is blocked"
REFUSED_SENSITIVE = (
    "cross-origin redirect refused because the request carries configured auth, "
    "headers, or a body, including URL credentials"
)
REFUSED_CROSS_ORIGIN = (
    "cross-origin redirects are disabled; set allow_cross_origin_redirects=true "
    "for requests without configured auth, headers, or a body"
)

_HEX = re.compile(r"0[xX][0-9a-fA-F]*")
_OCTAL = re.compile(r"0[0-7]+")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")

_V4_PRIVATE = tuple(
    ipaddress.IPv4Network(net)
    for net in (
        "0.0.0.0/8",  # unspecified ("this network"); 0.0.0.0 reaches the local host
        "10.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, including 169.254.169.254 (cloud metadata)
        "172.16.0.0/12",
        "192.168.0.0/16",
    )
)
_V6_PRIVATE = tuple(
    ipaddress.IPv6Network(net) for net in ("::/128", "::1/128", "fc00::/7", "fe80::/10")
)


@attrs.frozen
class Target:
    """The parts of a URL that decide where a connection goes."""

    scheme: str
    host: str
    """Lower-case, IPv6 without brackets."""
    port: int | None
    """Explicit port, or the scheme's default (None for unknown schemes)."""
    has_userinfo: bool = False

    @property
    def origin(self) -> tuple[str, str, int | None]:
        """Scheme, host and port: what decides whether a redirect crosses origins."""
        return (self.scheme, self.host, self.port)


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any form ``inet_aton`` accepts (1-4 parts, hex/octal), else None."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        number = _ipv4_part(part)
        if number is None:
            return None
        numbers.append(number)
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_part(part: str) -> int | None:
    if _HEX.fullmatch(part):
        return int(part[2:], 16) if len(part) > 2 else 0
    if _OCTAL.fullmatch(part):
        return int(part, 8)
    if _DECIMAL.fullmatch(part):
        return int(part, 10)
    return None


def _is_internal_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return _is_internal_ip(mapped)
        return any(address in net for net in _V6_PRIVATE)
    return any(address in net for net in _V4_PRIVATE)


def is_private_host(host: str) -> bool:
    """HTTP-10: ``localhost``, ``*.localhost`` or a literal private/loopback/link-local IP.

    This is the early check on the URL; names are resolved, and every answer
    checked, where the connection is made (``guard.GuardedBackend``).
    """
    name = host.lower().strip("[]")
    if name.endswith("."):
        name = name[:-1]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    if ":" in name:
        try:
            return _is_internal_ip(ipaddress.IPv6Address(name.split("%", 1)[0]))
        except ValueError:
            return False
    v4 = parse_ipv4(name)
    return v4 is not None and _is_internal_ip(v4)


@attrs.frozen
class RedirectPolicy:
    """HTTP-9/10 for one request: which redirect hops may be followed."""

    max_redirects: int = 10
    allow_cross_origin: bool = False
    carries_sensitive_data: bool = False
    block_private_network: bool = False

    def refusal(self, hops_done: int, current: Target, nxt: Target) -> str | None:
        """Why hop number ``hops_done + 1`` (current -> nxt) is refused, or None to follow it."""
        if hops_done >= self.max_redirects:
            return REFUSED_TOO_MANY
        if self.block_private_network and is_private_host(nxt.host):
            return REFUSED_PRIVATE
        if current.origin != nxt.origin:
            if self.carries_sensitive_data:
                return REFUSED_SENSITIVE
            if not self.allow_cross_origin:
                return REFUSED_CROSS_ORIGIN
        return None
