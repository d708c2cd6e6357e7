"""HTTP-9/HTTP-10 policy vectors: private hosts and redirect hop decisions."""

from __future__ import annotations

import ipaddress

import pytest

from ironflow_nodes_http.policy import (
    REFUSED_CROSS_ORIGIN,
    REFUSED_PRIVATE,
    REFUSED_SENSITIVE,
    REFUSED_TOO_MANY,
    RedirectPolicy,
    Target,
    is_private_host,
    parse_ipv4,
)


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST",
        "api.localhost",
        "localhost.",
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.5",
        "172.16.9.9",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "[::1]",
        "::",
        "fd00::1",
        "fc00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.5",
        "::ffff:169.254.169.254",
        "::ffff:7f00:1",
        # Forms getaddrinfo reads as IPv4 literals.
        "2130706433",
        "127.1",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "127.0.0.1.",
    ],
)
def test_http_10_private_hosts(host):
    assert is_private_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "8.8.8.8",
        "93.184.216.34",
        "172.32.0.1",
        "::ffff:8.8.8.8",
        "2001:4860:4860::8888",
        "localhost.example.com",
        "10.example.com",
        "08.1",  # not a valid octal part: a DNS name, not checked
    ],
)
def test_http_10_public_hosts_and_dns_names(host):
    assert not is_private_host(host)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("16909060", "1.2.3.4"),
        ("1.131844", "1.2.3.4"),
        ("1.2.772", "1.2.3.4"),
        ("0x1.0x2.0x3.0x4", "1.2.3.4"),
        ("01.02.03.04", "1.2.3.4"),
        ("1.2.3.256", None),
        ("1.2.3.4.5", None),
        ("1.2.3.x", None),
        ("1_0.0.0.1", None),
    ],
)
def test_ipv4_number_forms(text, expected):
    parsed = parse_ipv4(text)
    assert parsed == (ipaddress.IPv4Address(expected) if expected else None)


A = Target("http", "a.example", 80)


def test_http_9_same_origin_followed_even_with_sensitive_data():
    policy = RedirectPolicy(carries_sensitive_data=True)
    assert policy.refusal(0, A, Target("http", "a.example", 80)) is None


@pytest.mark.parametrize(
    "other",
    [
        Target("https", "a.example", 443),
        Target("https", "a.example", 80),
        Target("http", "b.example", 80),
        Target("http", "a.example", 8080),
    ],
)
def test_http_9_origin_changes(other):
    assert RedirectPolicy().refusal(0, A, other) == REFUSED_CROSS_ORIGIN
    assert RedirectPolicy(allow_cross_origin=True).refusal(0, A, other) is None
    sensitive = RedirectPolicy(allow_cross_origin=True, carries_sensitive_data=True)
    assert sensitive.refusal(0, A, other) == REFUSED_SENSITIVE


def test_http_9_hop_budget_and_private_hops():
    policy = RedirectPolicy(max_redirects=2, block_private_network=True)
    assert policy.refusal(1, A, A) is None
    assert policy.refusal(2, A, A) == REFUSED_TOO_MANY
    assert policy.refusal(0, A, Target("http", "10.1.2.3", 80)) == REFUSED_PRIVATE
