"""Pure parts of the Redis store: key names (ST-41..43), REDIS_URL parsing, the RESP codec."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ironflow_core.errors import ConfigError
from ironflow_core.stores.cursor import order_key
from ironflow_store_redis.client import parse_redis_url
from ironflow_store_redis.keys import Keys, member_run_id, ordering_member, run_segment
from ironflow_store_redis.resp import (
    ProtocolError,
    RedisReplyError,
    RespConnection,
    encode_command,
)


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
    assert (unix.path, unix.db, unix.display) == ("/run/redis.sock", 5, "unix:///run/redis.sock?db=5")
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
    with pytest.raises(ConfigError, match="^Invalid REDIS_URL") as caught:
        parse_redis_url(url)
    assert reason in str(caught.value)
    assert "secret" not in str(caught.value)


# ------------------------------------------------------------------ RESP2
def test_encode_command_is_a_resp_array_of_bulk_strings():
    assert encode_command(["SET", "k", "é", 12, b"\x00"]) == (
        b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xa9\r\n$2\r\n12\r\n$1\r\n\x00\r\n"
    )


async def reply_to(data: bytes, *, chunk: int | None = None) -> object:
    client, server = trio.testing.memory_stream_pair()
    conn = RespConnection(client)

    async def serve() -> None:
        await server.receive_some()
        if chunk is None:
            await server.send_all(data)
        else:
            for i in range(0, len(data), chunk):
                await server.send_all(data[i : i + chunk])
                await trio.sleep(0)

    outcome: list = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        try:
            outcome.append(await conn.call(["X"]))
        except Exception as exc:  # re-raised outside the nursery, unwrapped
            outcome.append(exc)
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


async def test_resp_replies_decode_to_python_values():
    data = b"*6\r\n+OK\r\n:-42\r\n$5\r\nh\xc3\xa9\r\n\r\n$-1\r\n*0\r\n*1\r\n-ERR inner\r\n"
    for chunk in (None, 1, 3):
        reply = await reply_to(data, chunk=chunk)
        assert reply[:5] == ["OK", -42, "hé\r\n", None, []]  # CRLF inside a bulk string
        assert isinstance(reply[5][0], RedisReplyError)  # nested errors are values


async def test_resp_error_reply_raises_with_its_code():
    with pytest.raises(RedisReplyError) as caught:
        await reply_to(b"-NOSCRIPT No matching script.\r\n")
    assert caught.value.code == "NOSCRIPT"


async def test_resp_garbage_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        await reply_to(b"?what\r\n")
    with pytest.raises(ProtocolError):
        await reply_to(b"$3\r\nabcde\r\n")
