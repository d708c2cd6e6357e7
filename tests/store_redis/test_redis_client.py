"""``RedisClient`` on its own: trio-native connections, pipelines, cancellation, Pub/Sub."""

from __future__ import annotations

import socket

import pytest
import trio

from ironflow_core.errors import StoreUnavailableError
from ironflow_store_redis.address import parse_redis_url
from ironflow_store_redis.client import RedisClient, RedisReplyError, pairs

from .conftest import RedisServer, ReplyGate


def client_for(url: str) -> RedisClient:
    return RedisClient(parse_redis_url(url))


async def test_replies_keep_their_resp_shapes(redis_url):
    client = client_for(redis_url)
    assert await client.call("SET", "k", "v", "NX") == "OK"
    assert await client.call("SET", "k", "w", "NX") is None
    assert await client.call("HSET", "h", "a", "1", "b", "2") == 2
    assert pairs(await client.call("HGETALL", "h")) == {"a": "1", "b": "2"}
    assert await client.call("HMGET", "h", "a", "zz") == ["1", None]
    assert await client.call("XLEN", "no-stream") == 0
    await client.aclose()


async def test_text_that_is_not_utf8_round_trips_as_surrogates(redis_url, redis_client):
    client = client_for(redis_url)
    redis_client.set("raw", b"\xff\xfeok")
    assert await client.call("GET", "raw") == "\udcff\udcfeok"
    await client.call("SET", "back", "\udcff\udcfeok")
    assert redis_client.strlen("back") == 4  # the two raw bytes again, not their UTF-8 escapes
    await client.aclose()


async def test_pipeline_replies_come_in_order(redis_url):
    client = client_for(redis_url)
    replies = await client.pipeline([
        ("SET", "n", 1), ("INCR", "n"), ("GET", "n"), ("RPUSH", "l", "a", "b"),
        ("LRANGE", "l", 0, -1), ("GET", "missing"),
    ])
    assert replies == ["OK", 2, "2", 2, ["a", "b"], None]
    assert client.calls == 6
    assert await client.pipeline([]) == []
    await client.aclose()


async def test_an_error_reply_in_a_pipeline_is_raised_once_every_reply_is_read(redis_url):
    client = client_for(redis_url + "?max_connections=1")
    with pytest.raises(RedisReplyError) as caught:
        await client.pipeline([("SET", "s", "text"), ("LPUSH", "s", "x"), ("SET", "after", "1")])
    assert caught.value.code == "WRONGTYPE"
    # Commands after the error still ran (a pipeline is no transaction)...
    assert await client.call("GET", "after") == "1"
    # ...and the connection carries no unread reply: each command gets its own.
    assert await client.call("GET", "s") == "text"
    await client.aclose()


async def test_a_command_cancelled_while_redis_holds_it_leaves_the_pool_in_step(
    redis_url, redis_client
):
    client = client_for(redis_url + "?max_connections=1")
    await client.call("PING")
    with trio.move_on_after(30) as timeout:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.call, "BLPOP", "queue", 0)  # blocks in Redis
            while not any(c.get("cmd") == "blpop" for c in redis_client.client_list()):
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        # The cancelled BLPOP's connection was closed: Redis drops the waiter...
        while any(c.get("cmd") == "blpop" for c in redis_client.client_list()):
            await trio.sleep(0.01)
    assert not timeout.cancelled_caught
    # ...so the pushed item stays in the list for the next command, which gets
    # its own reply on a new connection.
    redis_client.rpush("queue", "item")
    assert await client.call("LPOP", "queue") == "item"
    assert await client.call("PING") == "PONG"
    await client.aclose()


async def test_a_restart_between_commands_is_invisible_and_nothing_is_sent_twice(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    client = client_for(server.url)
    try:
        assert await client.call("INCR", "n") == 1
        server.kill()
        server.start()  # same port, empty: the pooled connection is closed
        assert await client.call("INCR", "n") == 1  # sent once, on a new connection
    finally:
        await client.aclose()
        server.kill()


async def test_a_connection_lost_mid_command_is_reported_not_retried():
    commands, connections = [], []

    async def answer_nothing(stream) -> None:  # type: ignore[no-untyped-def]
        connections.append(stream)
        commands.append(await stream.receive_some())
        await stream.aclose()  # the server goes away before replying

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, answer_nothing, 0)
        port = listeners[0].socket.getsockname()[1]
        client = client_for(f"redis://127.0.0.1:{port}/0")
        with pytest.raises(StoreUnavailableError) as caught:
            await client.call("INCR", "n")
        assert str(caught.value) == (
            f"cannot reach Redis at redis://127.0.0.1:{port}/0: connection closed by the server")
        assert caught.value.__cause__ is None
        assert len(connections) == 1 and commands == [b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"]
        nursery.cancel_scope.cancel()


async def test_a_server_that_accepts_no_connection_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    # Fill the accept queue; the kernel then drops further connection attempts.
    fillers = [socket.socket() for _ in range(4)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    client = client_for(f"redis://127.0.0.1:{port}/0?socket_connect_timeout=0.3")
    try:
        with pytest.raises(StoreUnavailableError, match=(
            f"^cannot reach Redis at redis://127.0.0.1:{port}/0: no connection within 0.3 s$"
        )):
            await client.call("PING")
    finally:
        await client.aclose()
        for filler in fillers:
            filler.close()
        listener.close()


async def test_a_timed_out_command_leaves_the_pool_in_step(redis_server):
    async with ReplyGate(redis_server.port) as gate:
        client = client_for(f"redis://127.0.0.1:{gate.port}/0?max_connections=1&socket_timeout=0.3")
        await client.call("SET", "k", "first")
        gate.hold()
        with pytest.raises(StoreUnavailableError, match=(
            f"^cannot reach Redis at redis://127.0.0.1:{gate.port}/0: no reply within 0.3 s$"
        )):
            await client.call("GET", "k")
        gate.release()
        # The timed-out connection was closed: its late reply answers nothing.
        assert await client.call("SET", "k", "second") == "OK"
        assert await client.call("GET", "k") == "second"
        assert gate.upstream.count(b"GET") == 2  # nothing was sent again
        await client.aclose()


async def test_a_subscription_receives_what_is_published(redis_url, redis_client):
    client = client_for(redis_url)
    subscription = await client.subscribe("news")
    try:
        assert redis_client.publish("other", "not for us") == 0
        assert redis_client.publish("news", "first") == 1
        await client.call("PUBLISH", "news", "second")  # the pool works beside it
        assert await subscription.receive() == "first"
        assert await subscription.receive() == "second"
    finally:
        subscription.close()
    await client.aclose()
