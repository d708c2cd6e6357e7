"""Pure parts of the Redis store: key names (ST-41..43), REDIS_URL parsing and the
Redis settings (CLI-13/14)."""

from __future__ import annotations

import pytest

from ironflow_core.errors import ConfigError
from ironflow_core.registry import build_registry
from ironflow_core.stores.cursor import order_key
from ironflow_core.stores.select import open_store, store_settings
from ironflow_store_redis.address import parse_redis_url
from ironflow_store_redis.keys import Keys, member_run_id, ordering_member, run_segment
from ironflow_store_redis.settings import redis_settings


# ------------------------------------------------------------------ ST-41..43
@pytest.mark.parametrize(
    ("run_id", "segment"),
    [
        ("run-1", "run-1"),
        ("tenant_1-run_42", "tenant_1-run_42"),
        ("3f2b8c1e-5d4a-4f6b-9c2d-1e0f3a4b5c6d", "3f2b8c1e-5d4a-4f6b-9c2d-1e0f3a4b5c6d"),
        ("index", "~696e646578"),
        ("Index", "Index"),
        ("", "~"),
        ("a.b", "~612e62"),
        ("ü", "~c3bc"),
    ],
)
def test_st_41_run_key_segment(run_id, segment):
    assert run_segment(run_id) == segment


def test_st_42_key_names():
    keys = Keys("ironflow:")
    assert keys.run("run-1") == "ironflow:runs:run-1"
    assert keys.index == "ironflow:runs:index"
    assert keys.members == "ironflow:run_catalog:v1:members"
    assert keys.all == "ironflow:run_catalog:v1:all"
    assert keys.status("running") == "ironflow:run_catalog:v1:status:running"
    assert keys.lease_expiry == "ironflow:run_leases:v1:expiry"


def test_st_43_vector():
    assert ordering_member("2026-01-01T00:00:00Z", "r") == "1:8006474846204000:r"
    assert ordering_member(None, "r") == "0:r"
    # Truncated to whole microseconds, offsets normalised to UTC.
    assert ordering_member("2026-01-01T00:00:00.000000999Z", "r") == "1:8006474846204000:r"
    assert ordering_member("2026-01-01T01:00:00+01:00", "r") == "1:8006474846204000:r"


def test_st_43_member_order_is_st_20_order_including_negative_times():
    runs = [
        ("a", "1969-12-31T23:59:59Z"),
        ("b", "1900-01-01T00:00:00Z"),
        ("c", "1970-01-01T00:00:00Z"),
        ("d", "2026-01-01T00:00:00.5Z"),
        ("e", "2026-01-01T00:00:00.5Z"),
        ("f", None),
        ("g", None),
        ("h", "2262-01-01T00:00:00Z"),
    ]
    by_member = sorted(runs, key=lambda r: ordering_member(r[1], r[0]).encode(), reverse=True)
    by_contract = sorted(runs, key=lambda r: order_key(r[1], r[0]), reverse=True)
    assert by_member == by_contract
    assert [r[0] for r in by_member] == ["h", "e", "d", "c", "a", "b", "g", "f"]


@pytest.mark.parametrize(
    ("member", "run_id"),
    [("1:8006474846204000:run-1", "run-1"), ("0:run-1", "run-1"), ("0:", None),
     ("2:x", None), ("1:short:x", None), ("1:8006474846204000:", None)],
)
def test_member_run_id(member, run_id):
    assert member_run_id(member) == run_id


# ------------------------------------------------------------ CLI-13 REDIS_URL
def test_cli_13_redis_url_defaults_and_display():
    address = parse_redis_url("redis://127.0.0.1:6379")
    assert (address.host, address.port, address.db) == ("127.0.0.1", 6379, 0)
    assert address.display == "redis://127.0.0.1:6379/0"
    assert parse_redis_url("redis://cache").display == "redis://cache:6379/0"


def test_cli_13_redis_url_credentials_db_and_options():
    address = parse_redis_url(
        "redis://user:p%40ss@host:7000/3?socket_timeout=2.5&socket_connect_timeout=1"
        "&max_connections=4&unknown=1"
    )
    assert (address.username, address.password, address.db) == ("user", "p@ss", 3)
    assert (address.command_timeout, address.connect_timeout, address.max_connections) == (
        2.5, 1.0, 4
    )
    assert address.display == "redis://host:7000/3"
    assert "p@ss" not in repr(address) and "user" not in address.display
    assert parse_redis_url("redis://:secret@host").password == "secret"
    assert parse_redis_url("redis://host/1?db=2").db == 2


def test_cli_13_unix_and_tls_urls():
    unix = parse_redis_url("unix:///run/redis.sock?db=5")
    assert (unix.path, unix.db, unix.display) == ("/run/redis.sock", 5, "unix:///run/redis.sock (db 5)")
    assert parse_redis_url("unix:///run/redis.sock").display == "unix:///run/redis.sock"
    tls = parse_redis_url("rediss://[::1]:6380/0?ssl_cert_reqs=none")
    assert (tls.host, tls.tls_verify, tls.display) == ("::1", False, "rediss://[::1]:6380/0")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://user:secret@host", "use redis://, rediss:// or unix://"),
        ("redis://user:secret@host:notaport", "Port could not be cast"),
        ("redis://user:secret@host/abc", "the database number must be an integer"),
        ("redis://user:secret@host?socket_timeout=0", "socket_timeout must be a positive"),
        ("redis://user:secret@host?max_connections=0", "max_connections must be an integer"),
        ("unix://user:secret@", "needs a socket path"),
    ],
)
def test_cli_14_invalid_redis_url_is_a_config_error_without_secrets(url, reason):
    with pytest.raises(ConfigError, match=r"^Invalid REDIS_URL") as caught:
        parse_redis_url(url)
    assert reason in str(caught.value)
    assert "secret" not in str(caught.value)


# ------------------------------------------------------ CLI-13/14 settings
def test_cli_13_redis_settings_env_then_config():
    settings = redis_settings(store_settings(
        {"REDIS_URL": "redis://env:6379", "REDIS_TTL": "60"},
        config={"redis_url": "redis://yaml", "redis_prefix": "p:", "redis_ttl": 5},
    ))
    assert (settings.url, settings.prefix, settings.ttl_seconds) == ("redis://env:6379", "p:", 60)
    settings = redis_settings(store_settings({}, config={"redis_ttl": 99_999_999_999}))
    assert (settings.url, settings.prefix, settings.ttl_seconds) == (None, None, 99_999_999_999)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "Redis TTL must be greater than zero"),
        ("100000000000", "Redis TTL must not exceed 99999999999 seconds"),
        ("ten", "REDIS_TTL must be a positive integer"),
        ("-5", "REDIS_TTL must be a positive integer"),
        ("1.5", "REDIS_TTL must be a positive integer"),
    ],
)
def test_cli_14_invalid_redis_ttl_is_fatal(value, message):
    registry = build_registry({})
    with pytest.raises(ConfigError) as info:
        open_store(registry, {"IRONFLOW_STORE": "redis", "REDIS_TTL": value})
    assert str(info.value) == message


def test_cli_14_invalid_redis_settings_in_config_are_fatal():
    for config, message in (
        ({"redis_ttl": True}, "REDIS_TTL must be a positive integer"),
        ({"redis_ttl": 0}, "Redis TTL must be greater than zero"),
        ({"redis_url": 5}, "redis_url must be a string"),
        ({"redis_prefix": ["p"]}, "redis_prefix must be a string"),
    ):
        with pytest.raises(ConfigError) as info:
            redis_settings(store_settings({}, config=config))
        assert str(info.value) == message
